"""Sequence curriculum: start with the first ``start_sequences`` training sequences and double
their number at each step up until all are used. Its RMSE window is ``window_factor`` (50)
points per sequence in use: a window that grows with the data (it takes no ``min_points``)."""

from __future__ import annotations

from isl.core.checks import positive_int
from isl.curricula.base import Curriculum, doubled, doubling_stages


class Sequences(Curriculum):
    def __init__(self, threshold: float = 4.0, start_sequences: int = 10, window_factor: int = 50,
                 window: str = "points"):
        super().__init__(threshold, window=window)
        self.start_sequences = positive_int("curriculum.start_sequences", start_sequences)
        self.window_factor = positive_int("curriculum.window_factor", window_factor)

    def num_stages(self, datamodule) -> int:
        return doubling_stages(self.start_sequences, len(datamodule.train))

    def count(self, datamodule) -> int | None:
        """The stage's number of sequences; None (all) at the last stage."""
        return doubled(self.start_sequences, self.stage, self.num_stages(datamodule))

    def apply(self, datamodule) -> None:
        datamodule.curriculum.num_sequences = self.count(datamodule)

    def window_points(self, datamodule) -> int:
        return self.window_factor * (self.count(datamodule) or len(datamodule.train))

    def describe(self, datamodule) -> str:
        count = self.count(datamodule)
        return "all sequences" if count is None else f"{count} sequences"
