"""MNIST image -> pen-stroke sequence, following the pipeline that made the published set.

Per image (de Jong 2016, "MNIST digits stroke sequence data"; the original is C++/OpenCV for
steps 1-2 and R for 3-7, github edwin-de-jong/mnist-digits-as-stroke-sequences):
1. threshold at the highest level that keeps the image's topology and at least half its ink;
2. thin with Zhang & Suen (1984), as the original's thinning library ran it;
3. drop specks: 8-connected components of 1 or 2 pixels;
4. start at the endpoint (<= 1 neighbour) nearest the top-left corner by row + column;
5. order the skeleton into a path by nearest-neighbour tours, where a move costs
   |dx|^3 + |dy|^3, which strongly prefers unit steps to jumps;
6. split into strokes at jumps (more than one pixel in x or y): those are pen lifts;
7. encode as rows ``dx dy eos eod`` (see isl.data.sequences).

Measured against 147 published test digits (bench/fidelity.py): the visited pixels are the
same for all of them; about 90% of the sequences are identical row for row, the rest differ in
the order of visits where the original broke ties with R's random-number generator.
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import ndimage

from isl.data.sequences import StrokeSet

# Bump when the output for a given image may change: cached builds are keyed by it.
BUILDER_VERSION = 2

THRESHOLD_STEP = 25
THRESHOLD_MAX = 250
THRESHOLDS = np.arange(0, THRESHOLD_MAX, THRESHOLD_STEP)  # 0, 25, ..., 225


def _stacked(structure: np.ndarray) -> np.ndarray:
    """A 3-D structure that connects pixels within a slice only, to label many images at once."""
    return np.stack([np.zeros_like(structure), structure, np.zeros_like(structure)])


FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)
EIGHT_CONNECTED = ndimage.generate_binary_structure(2, 2)
_STACKED = (_stacked(FOUR_CONNECTED), _stacked(EIGHT_CONNECTED))


def _components_per_slice(masks: np.ndarray, structure: np.ndarray) -> np.ndarray:
    labels = ndimage.label(masks, structure)[0].reshape(len(masks), -1)
    # Labels are numbered in scan order, so slice k holds the labels after those of slices < k.
    seen = np.maximum.accumulate(labels.max(axis=1))
    return np.diff(seen, prepend=0)


def choose_threshold(image: np.ndarray) -> int:
    """Step 1: the last threshold before binarising ``pixel > t`` changes the digit's shape.

    Try t = 0, 25, 50, ...; stop at the first t whose foreground has a different number of
    4- or 8-connected components than the unthresholded foreground (pixel > 0), or keeps
    fewer than half of its pixels, or reaches 250; use the previous t. All candidate
    thresholds are labelled in one call per connectivity.
    """
    masks = image[None] > THRESHOLDS[:, None, None]
    ink = masks.sum(axis=(1, 2))
    changed = 2 * ink < ink[0]
    for structure in _STACKED:
        counts = _components_per_slice(masks, structure)
        changed |= counts != counts[0]
    first = np.flatnonzero(changed)
    stop = THRESHOLDS[first[0]] if len(first) else THRESHOLD_MAX
    return max(int(stop) - THRESHOLD_STEP, 0)


def _zhang_suen_tables() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two Zhang-Suen sub-iterations, indexed by the 8-neighbour code.

    Bit k of the code is neighbour P(k+2) in Zhang & Suen's numbering (P2 = north, then
    clockwise). A pixel is deleted when 2 <= B <= 6 neighbours are set, there is exactly one
    0->1 transition A around it, and P2*P4*P6 = P4*P6*P8 = 0 (first sub-iteration) or
    P2*P4*P8 = P2*P6*P8 = 0 (second).
    """
    codes = np.arange(256)
    p = [(codes >> k) & 1 for k in range(8)]  # p[0] = P2 ... p[7] = P9
    b = sum(p)
    a = sum((p[k] == 0) & (p[(k + 1) % 8] == 1) for k in range(8))
    base = (b >= 2) & (b <= 6) & (a == 1)
    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
    first = base & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = base & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return first, second


_ZS_TABLES = _zhang_suen_tables()
# Weights that turn the 3x3 neighbourhood into that code: P2 (north) = 1, P3 (north-east) = 2, ...
_ZS_WEIGHTS = np.array([[128, 1, 2],
                        [64, 0, 4],
                        [32, 16, 8]], dtype=np.int32)


# The published set was thinned by Ramey's "voronoi" library, whose Zhang-Suen pass never
# deletes image-border pixels and stops after two iterations (each of two sub-iterations).
# With both, the skeletons of 147 published test digits are reproduced pixel for pixel.
ZS_ITERATIONS = 2


def zhang_suen(binary: np.ndarray, iterations: int | None = ZS_ITERATIONS) -> np.ndarray:
    """Step 2: thin a binary image (Zhang & Suen 1984, parallel form), as the published set was.

    ``iterations=None`` thins until nothing changes (the textbook algorithm).
    """
    img = binary.astype(np.int32)
    interior = np.zeros(img.shape, bool)
    interior[1:-1, 1:-1] = True
    done, changed = 0, True
    while changed and (iterations is None or done < iterations):
        changed, done = False, done + 1
        for table in _ZS_TABLES:
            code = ndimage.correlate(img, _ZS_WEIGHTS, mode="constant")
            delete = interior & (img == 1) & table[code]
            if delete.any():
                img[delete] = 0
                changed = True
    return img.astype(bool)


def skeleton(image: np.ndarray) -> np.ndarray:
    """Steps 1-3: the thinned, de-specked binary skeleton of a grey-level image."""
    thin = zhang_suen(image > choose_threshold(image))
    labels, n = ndimage.label(thin, EIGHT_CONNECTED)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    return thin & (sizes[labels] > 2)


TOUR_REPETITIONS = 10  # solve_TSP(method = "nn", control = list(repetitions = 10)) in R


def trace(skel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Steps 4-5: skeleton pixels as (row, col) in drawing order.

    As the published pipeline (R package TSP, ``extractStrokes_TSP.R``): nearest-neighbour
    tours from the start with ties broken at random, repeated 10 times, keeping the shortest
    closed tour (the first on a tie). All repetitions advance together, one step at a time.
    """
    pixels = np.argwhere(skel)  # row-major order
    n = len(pixels)
    if n == 0:
        return pixels
    neighbours = ndimage.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8),
                                  mode="constant")[skel] - 1
    # Start at the endpoint with the smallest row + column, the first in row-major order on a
    # tie; with no endpoint (a loop), at the pixel of smallest row + column and then column.
    ends = np.flatnonzero(neighbours <= 1)
    if len(ends):
        start = ends[np.argmin(pixels[ends].sum(axis=1))]
    else:
        start = np.lexsort((pixels[:, 1], pixels.sum(axis=1)))[0]

    cost = (np.abs(pixels[:, None, :] - pixels[None, :, :]) ** 3).sum(axis=2).astype(np.float64)
    reps = np.arange(TOUR_REPETITIONS)
    tours = np.empty((TOUR_REPETITIONS, n), dtype=np.int64)
    tours[:, 0] = start
    # Costs are integers, so noise below 1/2 only picks at random among the tied minima.
    scores = 0.5 * rng.random((n, TOUR_REPETITIONS, n))
    scores[:, :, start] = np.inf
    for k in range(1, n):
        step = scores[k]
        step += cost[tours[:, k - 1]]
        tours[:, k] = choice = step.argmin(axis=1)
        scores[k + 1:, reps, choice] = np.inf  # visited
    closed = cost[tours, np.roll(tours, -1, axis=1)].sum(axis=1)
    return pixels[tours[np.argmin(closed)]]


def encode(path: np.ndarray) -> np.ndarray:
    """Steps 6-7: a (row, col) path as rows ``dx dy eos eod`` in 1-based image coordinates."""
    if len(path) == 0:
        raise ValueError("empty skeleton: the image has no ink to trace")
    xy = path[:, ::-1] + 1                                 # x = column + 1, y = row + 1
    moves = np.diff(xy, axis=0)
    jumps = np.abs(moves).max(axis=1) > 1                  # a jump starts a new stroke,
    jumps[-1:] = False  # except into the last point: the published pipeline never lifts the
    lifts = np.flatnonzero(jumps)  # pen there (extractStrokes_TSP.R tests i < nrpoints - 1)
    rows = np.zeros((len(xy) + len(lifts) + 1, 4), dtype=np.int64)
    rows[0, :2] = xy[0]
    # Each jump is preceded by a pen-lift row '0 0 1 0'; shift later moves down accordingly.
    move_rows = 1 + np.arange(len(moves)) + np.searchsorted(lifts, np.arange(len(moves)), side="right")
    rows[move_rows, :2] = moves
    rows[lifts + 1 + np.arange(len(lifts)), 2] = 1
    rows[-1, 2:] = 1
    return rows


def image_to_sequence(image: np.ndarray) -> np.ndarray:
    # Seeded by the image itself: the same image always gives the same sequence.
    rng = np.random.default_rng(zlib.crc32(image.tobytes()))
    return encode(trace(skeleton(image), rng))


def _build_chunk(images: np.ndarray) -> StrokeSet:
    return StrokeSet.from_sequences([image_to_sequence(im) for im in images],
                                    np.zeros(len(images), np.uint8))


def build(images: np.ndarray, labels: np.ndarray, workers: int | None = None) -> StrokeSet:
    """Build the sequences of a whole split, spread over ``workers`` processes (default: all cores)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(images) < 1000:
        parts = [_build_chunk(images)]
    else:
        # Chunks come back as three arrays each: pickling 60,000 small arrays would cost more.
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_build_chunk, np.array_split(images, workers * 8)))
    lengths = np.concatenate([p.lengths for p in parts])
    return StrokeSet(np.concatenate([p.steps for p in parts]),
                     np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                     np.asarray(labels, np.uint8))
