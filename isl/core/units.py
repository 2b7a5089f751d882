"""Input units of the pen offsets: what a network sees is (pixels - shift) / scale, per
coordinate. The data sets shift and scale (isl.data.scaling); models and tools convert with
these two functions."""

from __future__ import annotations


def to_units(xy, shift, scale):
    """Pixels -> input units, per coordinate: (xy - shift) / scale."""
    return (xy - shift) / scale


def to_pixels(xy, shift, scale):
    """Input units -> pixels, per coordinate: xy * scale + shift (the inverse of ``to_units``)."""
    return xy * scale + shift
