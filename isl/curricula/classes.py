"""Class curriculum: start with digit 0 only and double the number of classes at each step up
(0; 0-1; 0-3; 0-7; all ten)."""

from __future__ import annotations

from isl.curricula.base import Curriculum

ALL = 10


class Classes(Curriculum):
    def num_stages(self, datamodule) -> int:
        return len(self._counts())

    @staticmethod
    def _counts() -> list[int]:
        counts = [1]
        while counts[-1] < ALL:
            counts.append(min(2 * counts[-1], ALL))
        return counts  # 1, 2, 4, 8, 10

    def apply(self, datamodule) -> None:
        datamodule.curriculum.classes = range(self._counts()[self.stage])

    def describe(self, datamodule) -> str:
        n = self._counts()[self.stage]
        return "digit 0" if n == 1 else f"digits 0-{n - 1}"
