"""Incremental Sequence Learning (de Jong 2016): train on the first ``start_length`` steps of
every sequence, doubling the length at each step up until sequences are used whole. A length
counts rows or targets as ``data.count`` says."""

from __future__ import annotations

from isl.curricula.base import Curriculum, doubled, doubling_stages


class Length(Curriculum):
    def __init__(self, threshold: float = 4.0, min_points: int = 5000, start_length: int = 2,
                 window: str = "points"):
        super().__init__(threshold, min_points, window)
        if isinstance(start_length, bool) or not isinstance(start_length, int) or start_length < 2:
            raise ValueError(f"curriculum.start_length must be an integer >= 2, got {start_length!r}")
        self.start_length = start_length

    def num_stages(self, datamodule) -> int:
        return doubling_stages(self.start_length, datamodule.longest)

    def length(self, datamodule) -> int | None:
        """The stage's length; None (whole sequences) at the last stage."""
        return doubled(self.start_length, self.stage, self.num_stages(datamodule))

    def apply(self, datamodule) -> None:
        length = self.length(datamodule)
        datamodule.curriculum.max_length = None if length is None else datamodule.rows(length)

    def describe(self, datamodule) -> str:
        length = self.length(datamodule)
        return "full length" if length is None else f"length {length}"
