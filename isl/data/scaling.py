"""How the input units of the pen offsets (isl.core.units) are set from the training data:
``data.scaling``."""

from __future__ import annotations

import numpy as np

from isl.data.sequences import StrokeSet

SCALINGS = ("range", "std", "fixed")


def offset_units(train: StrokeSet, scaling: str, offset_min: float = -22.6,
                 offset_range: float = 55.2) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale), each (2,) in pixels, of ``scaling`` for the training offsets ``train``.
    Row 0 of each sequence (the start point) is not an offset: it is converted alike, not counted.

    - ``range``: the paper's code (utils.py DataLoader), (x - rangemin) / rangelen with one range
      for dx and dy, computed on our training offsets: offsets in [0, 1];
    - ``fixed``: the same with the numbers the paper's code ran with (train.py: -22.6 and 55.2,
      from the full MNIST stroke set);
    - ``std``: unit spread per coordinate, no shift.
    """
    if scaling == "fixed":
        return np.full(2, offset_min), np.full(2, offset_range)
    is_offset = np.ones(len(train.steps), bool)
    is_offset[train.starts[:-1]] = False
    offsets = train.steps[is_offset, :2].astype(np.float64)
    if scaling == "range":
        low, high = offsets.min(), offsets.max()
        return np.full(2, low), np.full(2, high - low)
    return np.zeros(2), offsets.std(axis=0)

