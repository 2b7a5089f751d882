"""How generated digits begin (``isl.tools.generate``): each one's start point drawn from those of
the training digits, or the first rows of real test digits to prime it with. Both read the data."""

from __future__ import annotations

import numpy as np


def training_starts(n: int, rng: np.random.Generator, source=None, classes=None) -> np.ndarray:
    """``n`` start points (x, y; 1-based pixels), each drawn at random from the start points of
    ``source``'s training sequences (default: the MNIST build, ``local_mnist()``); with
    ``classes`` (n digits), sequence i's from the training digits of class ``classes[i]``: a 1
    and a 0 start in different places, and a network asked for one needs its start."""
    from isl.data.sources import local_mnist

    train = (source or local_mnist()).load("train")
    starts = train.steps[train.starts[:-1], :2].astype(np.float32)
    if classes is None:
        return starts[rng.integers(len(starts), size=n)]
    classes = np.asarray(classes)
    picked = np.empty((n, 2), dtype=np.float32)
    for digit in np.unique(classes):
        pool = starts[train.labels == digit]
        if not len(pool):
            raise ValueError(f"the training sequences hold no digit {digit} to take a start point from")
        where = np.flatnonzero(classes == digit)
        picked[where] = pool[rng.integers(len(pool), size=len(where))]
    return picked


def real_prefixes(k: int, n: int, source=None) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``k`` rows (never the end row) of the first ``n`` test digits, and their labels,
    from ``source`` (default: the MNIST build, ``local_mnist()``)."""
    from isl.data.sources import local_mnist

    test = (source or local_mnist()).load("test", n)
    if len(test) < n:
        raise ValueError(f"the test split holds only {len(test)} digits, asked to prime {n}")
    prefixes = [test.sequence(i)[:min(k, len(test.sequence(i)) - 1)].astype(np.float32) for i in range(n)]
    return prefixes, test.labels[:n]
