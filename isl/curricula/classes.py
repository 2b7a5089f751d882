"""Class curriculum: start with one digit and double the number of classes at each step up
(by default 0; 0-1; 0-3; 0-7; all ten), in the order ``order`` lists them."""

from __future__ import annotations

from isl.curricula.base import Curriculum, doubled, doubling_stages

DIGITS = tuple(range(10))


class Classes(Curriculum):
    def __init__(self, threshold: float = 4.0, min_points: int = 5000, order=DIGITS,
                 window: str = "points"):
        super().__init__(threshold, min_points, window)
        order = list(order)
        if sorted(order) != list(DIGITS) or any(isinstance(c, bool) for c in order):
            raise ValueError("curriculum.order must list each digit 0-9 exactly once (the order "
                             f"classes are added in), got {order!r}")
        self.order = [int(c) for c in order]

    def num_stages(self, datamodule) -> int:
        return doubling_stages(1, len(DIGITS))

    def _count(self) -> int:
        return doubled(1, self.stage, self.num_stages(None)) or len(DIGITS)

    def apply(self, datamodule) -> None:
        datamodule.curriculum.classes = self.order[:self._count()]

    def describe(self, datamodule) -> str:
        digits = sorted(self.order[:self._count()])
        if digits == list(range(digits[0], digits[-1] + 1)):
            return f"digit {digits[0]}" if len(digits) == 1 else f"digits {digits[0]}-{digits[-1]}"
        return "digits " + ",".join(map(str, digits))
