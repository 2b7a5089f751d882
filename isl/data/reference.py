"""Reference levels: what trivial predictors score on a test set, by the definitions of the
run's own test metrics, so that a trained model's numbers can be read against them.

Targets are what ``SequenceMDN.evaluate`` scores: every row after the first of each test
sequence (truncated to ``max_length`` rows), as (dx, dy) offsets in pixels with the pen flags.

- ``zero_rmse``: always predict no movement (0, 0).
- ``repeat_last_rmse``: predict the previous offset (0 before the first: row 0 is the start
  point, not an offset).
- ``mean_rmse``: predict the training offsets' mean.
- ``empirical_sample_rmse``: *sample* from the training offsets' distribution, ignoring
  context, in expectation: the level of ``test/rmse_sampled``, which carries sampling noise
  that an expected-value RMSE does not.
- ``empirical_bits_per_point``: -log2 P(step) per point under the training set's step
  distribution without context (offset cells counted with add-one smoothing over the cells
  seen in training, the two flags by their rates): the level of ``test/bits_per_point``.
- ``empirical_nll_px``: the same predictor as a density in pixels (uniform within each 1-px
  cell), in nats per point: the level of ``test/nll_px``. A density can exceed it without
  bound by piling onto grid points; the discretised score cannot.

All RMSEs are per coordinate, sqrt(sum of squared dx, dy errors / 2n), as ``test/rmse_*``.
"""

from __future__ import annotations

import math

import numpy as np

from isl.data.sequences import StrokeSet


def targets(strokes: StrokeSet, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (n, 2) in pixels, previous offsets (n, 2), flags (n, 2)) of every scored row."""
    rows, previous = [], []
    for i in range(len(strokes)):
        seq = strokes.sequence(i)[:max_length].astype(np.float64)
        rows.append(seq[1:])
        prev = seq[:-1, :2].copy()
        prev[0] = 0.0                        # before the first offset: nothing to repeat
        previous.append(prev)
    rows = np.concatenate(rows)
    return rows[:, :2], np.concatenate(previous), rows[:, 2:]


def _rmse(error: np.ndarray) -> float:
    return float(np.sqrt((error ** 2).sum() / (2 * len(error))))


def _bernoulli_bits(rate: float, flags: np.ndarray) -> float:
    rate = min(max(rate, 1e-6), 1 - 1e-6)
    return float(-(flags * math.log2(rate) + (1 - flags) * math.log2(1 - rate)).sum())


def reference_levels(train: StrokeSet, test: StrokeSet, max_length: int = 100) -> dict[str, float]:
    """The reference levels of ``test`` (see the module docstring), from ``train``'s statistics."""
    train_xy, _, train_flags = targets(train, max_length)
    xy, previous, flags = targets(test, max_length)
    mean = train_xy.mean(axis=0)
    # E_X[(X - y)^2] per coordinate, X from the training offsets: Var X + (E X - y)^2.
    sampled = train_xy.var(axis=0) + (mean - xy) ** 2
    cells, counts = np.unique(train_xy.astype(np.int64), axis=0, return_counts=True)
    probability = dict(zip(map(tuple, cells), (counts + 1) / (counts.sum() + len(cells))))
    unseen = 1 / (counts.sum() + len(cells))
    offset_bits = -sum(math.log2(probability.get(cell, unseen)) for cell in map(tuple, xy.astype(np.int64)))
    flag_bits = sum(_bernoulli_bits(train_flags[:, k].mean(), flags[:, k]) for k in range(2))
    n = len(xy)
    bits = (offset_bits + flag_bits) / n
    return {"test_sequences": len(test), "test_points": n,
            "zero_rmse": _rmse(xy), "repeat_last_rmse": _rmse(xy - previous), "mean_rmse": _rmse(xy - mean),
            "empirical_sample_rmse": float(np.sqrt(sampled.sum() / (2 * n))),
            "empirical_bits_per_point": bits, "empirical_nll_px": bits * math.log(2)}


def for_datamodule(dm) -> dict[str, float]:
    """The reference levels of the test subset a StrokeDataModule evaluates on (set up or not)."""
    return reference_levels(dm.source.load("train", dm.num_train), dm.source.load("test", dm.num_test),
                            dm.max_length)
