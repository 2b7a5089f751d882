"""The in-memory form of a stroke-sequence split, and the error every data reader raises.

A sequence is an int array of shape (T, 4) with rows ``dx dy eos eod`` exactly as in the
published files: row 0 is the start point (1-based x = column + 1, y = row + 1), every later
row the offset from the previous point, a pen lift is ``0 0 1 0`` and the last row ``0 0 1 1``.
A split concatenates its sequences into one array plus start offsets (CSR layout), so a
70,000-sequence split is three numpy arrays rather than 70,000 objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEP_DTYPE = np.int8  # |offsets| <= 28 on a 28x28 image; the start point is <= 28 too


class DataFormatError(ValueError):
    """A data file is malformed. The message names the file and, where there is one, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


def check_sequence(steps: np.ndarray, source: str | Path) -> None:
    """Raise DataFormatError unless ``steps`` is a well-formed (T, 4) stroke sequence."""
    if steps.ndim != 2 or steps.shape[1] != 4:
        raise DataFormatError(source, f"expected 4 columns per step, got shape {steps.shape}")
    if len(steps) < 2:
        raise DataFormatError(source, "empty sequence: needs a start point and an end marker")
    if tuple(steps[-1, 2:]) != (1, 1):
        raise DataFormatError(source, "no end-of-digit marker: the last row must be '0 0 1 1'",
                              line=len(steps))
    ends = np.flatnonzero(steps[:-1, 3])
    if len(ends):
        raise DataFormatError(source, "end-of-digit marker before the last row", line=int(ends[0]) + 1)
    flags = steps[:, 2:]
    if ((flags != 0) & (flags != 1)).any():
        bad = int(np.flatnonzero(((flags != 0) & (flags != 1)).any(axis=1))[0])
        raise DataFormatError(source, "end-of-stroke/end-of-digit flags must be 0 or 1", line=bad + 1)
    # Pen-lift and end rows carry no offset in the published set; its points.txt relies on it.
    moved = np.flatnonzero((steps[:, 2] == 1) & (steps[:, :2] != 0).any(axis=1))
    if len(moved):
        raise DataFormatError(source, "a pen-lift/end row must have dx = dy = 0", line=int(moved[0]) + 1)


@dataclass(frozen=True)
class StrokeSet:
    """All sequences of one split: ``steps[starts[i]:starts[i+1]]`` is sequence i, ``labels[i]`` its digit."""

    steps: np.ndarray   # (total_steps, 4) STEP_DTYPE
    starts: np.ndarray  # (n + 1,) int64, starts[0] == 0, starts[-1] == total_steps
    labels: np.ndarray  # (n,) uint8 in 0..9

    def __post_init__(self):
        if self.starts.ndim != 1 or len(self.starts) != len(self.labels) + 1:
            raise ValueError(f"starts has {len(self.starts)} entries for {len(self.labels)} labels")
        if len(self.starts) and (self.starts[0] != 0 or self.starts[-1] != len(self.steps)):
            raise ValueError("starts must run from 0 to the number of steps")

    @classmethod
    def from_sequences(cls, sequences: list[np.ndarray], labels) -> StrokeSet:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        steps = (np.concatenate(sequences).astype(STEP_DTYPE) if sequences
                 else np.zeros((0, 4), STEP_DTYPE))
        return cls(steps, starts, np.asarray(labels, dtype=np.uint8))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def sequence(self, i: int) -> np.ndarray:
        return self.steps[self.starts[i]:self.starts[i + 1]]

    def head(self, n: int) -> StrokeSet:
        """The first ``n`` sequences (the paper's experiments use the first 10,000 / 5,000)."""
        n = min(n, len(self))
        return StrokeSet(self.steps[:self.starts[n]], self.starts[:n + 1], self.labels[:n])

    def points(self, i: int) -> np.ndarray:
        """Absolute 1-based (x, y) pen positions of sequence i, one per row."""
        return np.cumsum(self.sequence(i)[:, :2].astype(np.int64), axis=0)
