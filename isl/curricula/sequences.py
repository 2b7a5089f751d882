"""Sequence curriculum: start with the first ``start_sequences`` training sequences and double
their number at each step up until all are used. Its RMSE window is ``window_factor`` (50)
points per sequence in use, instead of ``min_points``: a window that grows with the data."""

from __future__ import annotations

from isl.curricula.base import Curriculum, doubled, doubling_stages


class Sequences(Curriculum):
    def __init__(self, threshold: float = 4.0, min_points: int = 5000, start_sequences: int = 10,
                 window_factor: int = 50):
        super().__init__(threshold, min_points)
        for key, value in (("start_sequences", start_sequences), ("window_factor", window_factor)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"curriculum.{key} must be a positive integer, got {value!r}")
        self.start_sequences, self.window_factor = start_sequences, window_factor

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
