"""The curriculum state a DataModule serves from, and the batch sampler that obeys it.

The state has three knobs: ``max_length`` (use the first L steps of each sequence),
``classes`` (allowed digits) and ``num_sequences`` (the first N training sequences of those
classes). Curriculum callbacks change it while training runs; the sampler reads it at every
batch, so a change takes effect from the next batch drawn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

ALL_CLASSES = tuple(range(10))
BATCH_BY = ("sequences", "points")
KNOBS = ("max_length", "classes", "num_sequences")


def _checked(name: str, value):
    if name == "classes":
        value = tuple(sorted({int(c) for c in value}))
        if not value or any(c not in ALL_CLASSES for c in value):
            raise ValueError(f"curriculum classes must be a non-empty subset of 0-9, got {value!r}")
    elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                or value < 1):
        raise ValueError(f"curriculum {name} must be a positive integer or None (all), got {value!r}")
    return value if value is None or name == "classes" else int(value)


@dataclass
class CurriculumState:
    """Assigning a knob validates it and, if the value changes, bumps ``version``."""

    max_length: int | None = None            # None: full length
    classes: tuple[int, ...] = ALL_CLASSES
    num_sequences: int | None = None         # None: every training sequence
    version: int = field(default=0, compare=False)

    def __setattr__(self, name, value):
        if name in KNOBS:
            value = _checked(name, value)
            if name in self.__dict__ and self.__dict__[name] != value:
                self.__dict__["version"] += 1
        object.__setattr__(self, name, value)

    @property
    def selection(self) -> tuple:
        """What decides which sequences are eligible (not how much of each is used)."""
        return self.classes, self.num_sequences

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key in KNOBS:
            setattr(self, key, state[key])
        self.version = state["version"]


def check_batching(by: str, size: int) -> None:
    if by not in BATCH_BY:
        raise ValueError(f"batching.by must be one of {BATCH_BY}, got {by!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batching.size must be a positive integer, got {size!r}")


class CurriculumBatchSampler:
    """An endless, seeded stream of batches of sequence indices under a CurriculumState.

    Each pass visits every eligible sequence exactly once in a fresh random order; the last
    batch of a pass may be smaller (nothing is dropped). ``by="sequences"`` puts ``size``
    sequences in a batch; ``by="points"`` as many as fit ``size`` (curriculum-truncated)
    points, and never fewer than one. A change of the eligible set starts a new pass.
    Training length is a budget of points, not epochs, hence endless.
    """

    def __init__(self, lengths: np.ndarray, labels: np.ndarray, state: CurriculumState,
                 by: str = "sequences", size: int = 50, seed: int = 0):
        check_batching(by, size)
        self.lengths, self.labels, self.state = lengths, labels, state
        self.by, self.size, self.seed = by, size, seed
        self.epoch = -1
        self.selection = None
        self.queue = np.zeros(0, dtype=np.int64)  # what remains of this pass, in order

    def eligible(self) -> np.ndarray:
        idx = np.flatnonzero(np.isin(self.labels, self.state.classes))
        if len(idx) == 0:
            raise ValueError(f"no training sequence has a class in {self.state.classes}")
        return idx[:self.state.num_sequences]

    def _new_pass(self) -> None:
        self.epoch += 1
        self.selection = self.state.selection
        rng = np.random.default_rng((self.seed, self.epoch))
        self.queue = rng.permutation(self.eligible())

    def truncated_lengths(self, indices: np.ndarray) -> np.ndarray:
        if self.state.max_length is None:
            return self.lengths[indices]
        return np.minimum(self.lengths[indices], self.state.max_length)

    def next_batch(self) -> np.ndarray:
        if self.selection != self.state.selection or len(self.queue) == 0:
            self._new_pass()
        if self.by == "sequences":
            n = self.size
        else:
            fits = np.cumsum(self.truncated_lengths(self.queue[:self.size])) <= self.size
            n = max(int(fits.sum()), 1)
        batch, self.queue = self.queue[:n], self.queue[n:]
        return batch

    def give_back(self, indices: np.ndarray, epoch: int) -> None:
        """Return a batch drawn in pass ``epoch`` but not used (drawn ahead before the state
        changed), so no sequence is skipped in this pass. A finished pass takes nothing back."""
        if epoch == self.epoch:
            self.queue = np.concatenate([np.asarray(indices, dtype=np.int64), self.queue])

    def __iter__(self):
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "queue": self.queue.tolist(),
                "selection": None if self.selection is None else [list(self.selection[0]),
                                                                    self.selection[1]]}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.queue = np.asarray(state["queue"], dtype=np.int64)
        sel = state["selection"]
        self.selection = None if sel is None else (tuple(sel[0]), sel[1])
