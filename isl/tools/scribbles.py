"""Pen-like scribbles: smooth random walks of single-pixel steps, in the published row form.

They are the negative examples the digit scorer (``isl.tools.score``) learns to reject: strokes with
the local look of a digit's (one pixel per step, 15-70 points, mostly one stroke, inside the box
where MNIST digits lie) but no digit's shape. The walk keeps a heading and steps to the
8-neighbour nearest to it; the heading turns by a constant curvature plus Gaussian noise, so a
walk ranges from a near-straight line through arcs and spirals to a wiggle. Every walk draws its
own curvature, noise, length and box, and a third of them add a second stroke after a pen lift,
so that no single kind of walk is all the scorer ever sees of non-digits.
"""

from __future__ import annotations

import numpy as np

# The 8 neighbour steps (dx, dy) in order of angle: index k is the step nearest to k * 45 degrees.
NEIGHBOURS = np.array([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)])


def _walk(rng: np.random.Generator, length: int, low: int, high: int) -> np.ndarray:
    """``length`` absolute points of one walk that stays within [low, high] in x and y."""
    curvature = rng.uniform(-0.3, 0.3)      # radians per step
    noise = rng.uniform(0.05, 0.8)          # standard deviation of the heading's change per step
    flip = rng.uniform(0.0, 0.05)           # chance per step that the curvature changes sign
    heading = rng.uniform(0, 2 * np.pi)
    point = rng.integers(low + 2, high - 1, size=2)
    points = [point]
    for _ in range(length - 1):
        if rng.random() < flip:
            curvature = -curvature
        heading += curvature + noise * rng.standard_normal()
        step = NEIGHBOURS[int(np.round(heading / (np.pi / 4))) % 8]
        if not low <= point[0] + step[0] <= high:   # bounce off the box's walls
            heading = np.pi - heading
            step = step * (-1, 1)
        if not low <= point[1] + step[1] <= high:
            heading = -heading
            step = step * (1, -1)
        point = point + step
        points.append(point)
    return np.array(points)


def scribble(rng: np.random.Generator) -> np.ndarray:
    """One scribble as an int (T, 4) array of rows ``dx dy eos eod``: the start point, one row
    per step, a pen-lift row between strokes, the end row ``0 0 1 1``."""
    margin = int(rng.integers(2, 7))
    low, high = 1 + margin, 28 - margin
    total = int(rng.integers(15, 71))
    strokes = 1 if rng.random() < 2 / 3 else 2
    cut = int(rng.integers(5, total - 4)) if strokes == 2 else total
    rows, last = [], np.zeros(2, dtype=np.int64)
    for length in (cut, total - cut)[:strokes]:
        points = _walk(rng, length, low, high)
        if rows:
            rows.append((0, 0, 1, 0))
        rows.extend((*xy, 0, 0) for xy in np.diff(points, axis=0, prepend=[last]))
        last = points[-1]
    rows.append((0, 0, 1, 1))
    return np.array(rows, dtype=np.int64)


def scribbles(n: int, seed: int) -> list[np.ndarray]:
    """``n`` scribbles, the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    return [scribble(rng) for _ in range(n)]
