"""Sequence-length warm-up (Li et al. 2021, arXiv 2108.06084; MosaicML Composer's
``SeqLengthWarmup``, whose parameter names it takes): the length curriculum on a schedule fixed
in advance instead of one driven by the training error.

Sequences are cut to ``min_seq_length`` steps at first; the length then grows, doubling (the
paper's lengths) or by ``step_size`` steps (Composer's), to ``max_seq_length`` (null: whole
sequences), each length held for an equal share of the first ``duration`` training points, and
stays there. ``duration`` is in points (an integer > 1) or, as in Composer, a fraction of the
run's budget (a number in (0, 1]). Stages are logged and saved as the other curricula's.
"""

from __future__ import annotations

from numbers import Integral, Real

from isl.core.checks import positive_int
from isl.curricula.base import Curriculum

DOUBLE = "double"


class LengthWarmup(Curriculum):
    def __init__(self, min_seq_length: int = 2, max_seq_length: int | None = None,
                 step_size: int | str = DOUBLE, duration: float = 60000, window: str = "points"):
        # No RMSE window: threshold, min_points and window are never read (window is taken so
        # that setup=original, which sets it for every curriculum, composes with this one).
        super().__init__(window=window)
        if isinstance(min_seq_length, bool) or not isinstance(min_seq_length, Integral) or min_seq_length < 2:
            raise ValueError(f"curriculum.min_seq_length must be an integer >= 2, got {min_seq_length!r}")
        self.min_seq_length = int(min_seq_length)
        self.max_seq_length = positive_int("curriculum.max_seq_length", max_seq_length,
                                           none="null (whole sequences)")
        if self.max_seq_length is not None and self.max_seq_length < self.min_seq_length:
            raise ValueError(f"curriculum.max_seq_length must be >= curriculum.min_seq_length "
                             f"({self.min_seq_length}) or null (whole sequences), got {max_seq_length!r}")
        if step_size != DOUBLE and (isinstance(step_size, bool) or not isinstance(step_size, Integral)
                                    or step_size < 1):
            raise ValueError(f"curriculum.step_size must be {DOUBLE!r} or a positive integer, got {step_size!r}")
        self.step_size = step_size if step_size == DOUBLE else int(step_size)
        if isinstance(duration, bool) or not isinstance(duration, Real) or not duration > 0 \
                or (duration > 1 and duration != int(duration)):
            raise ValueError("curriculum.duration must be training points (an integer > 1) or a fraction "
                             f"of budget.points (a number in (0, 1]), got {duration!r}")
        self.duration = duration
        self.duration_points: int | None = None  # fixed at the first start, kept by a resumed run

    # --- the schedule ----------------------------------------------------------------------------
    def lengths(self, datamodule) -> list[int | None]:
        """The length of each stage; None: whole sequences."""
        full = datamodule.longest
        end = full if self.max_seq_length is None else min(self.max_seq_length, full)
        lengths, n = [], self.min_seq_length
        while n < end:
            lengths.append(n)
            n = 2 * n if self.step_size == DOUBLE else n + self.step_size
        return lengths + [None if end == full else end]

    def num_stages(self, datamodule) -> int:
        return len(self.lengths(datamodule))

    def scheduled_stage(self, points: int, datamodule) -> int:
        """The stage at ``points`` training points: stage k from k / (stages - 1) of the duration."""
        last = self.num_stages(datamodule) - 1
        return min(last, points * last // self.duration_points) if last else 0

    def apply(self, datamodule) -> None:
        length = self.lengths(datamodule)[self.stage]
        datamodule.curriculum.max_length = None if length is None else datamodule.rows(length)

    def describe(self, datamodule) -> str:
        length = self.lengths(datamodule)[self.stage]
        return "full length" if length is None else f"length {length}"

    # --- the mechanism: by points, not by the error ----------------------------------------------
    def on_train_start(self, trainer, module) -> None:
        if self.duration_points is None:
            self.duration_points = self._points(trainer)
        super().on_train_start(trainer, module)

    def _points(self, trainer) -> int:
        if self.duration > 1:
            return int(self.duration)
        # The budget is the points schedule's (isl.training.callbacks, which imports the curricula: found
        # by its attribute).
        budgets = {c.budget for c in trainer.callbacks if isinstance(getattr(c, "budget", None), int)}
        if len(budgets) != 1:
            raise ValueError(f"curriculum.duration={self.duration} is a fraction of the run's budget, "
                             "but the trainer has no points schedule (isl.training.callbacks.PointsSchedule) "
                             "to take it from: give the duration in points")
        return max(round(self.duration * budgets.pop()), 1)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        stage = self.scheduled_stage(module.points_processed, trainer.datamodule)
        if stage > self.stage:  # one batch may cross several stages' starts: it enters the last
            last = self.num_stages(trainer.datamodule) - 1
            self.step_to(stage, trainer, module,
                         f"schedule: {last} steps over {self.duration_points:,} points")

    def state_dict(self) -> dict:
        return {**super().state_dict(), "duration_points": self.duration_points}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.duration_points = state["duration_points"]
