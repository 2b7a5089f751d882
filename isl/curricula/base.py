"""What every curriculum shares: a sliding window of training RMSE and stepping up on it."""

from __future__ import annotations

import logging
import math
from collections import deque

import lightning as L

from isl.core.checks import positive_int
from isl.models.metrics import rmse_per_coordinate

log = logging.getLogger(__name__)


def doubling_stages(start: int, full: int) -> int:
    """Stages of a curriculum that doubles from ``start``: until ``start * 2**k`` covers
    ``full``, then one last stage with everything."""
    return max(math.ceil(math.log2(full / start)), 0) + 1


def doubled(start: int, stage: int, stages: int) -> int | None:
    """The amount at ``stage`` of such a curriculum; None (everything) at its last stage."""
    return None if stage >= stages - 1 else start * 2 ** stage


# How the training RMSE a curriculum steps up on is windowed: the last ``window_points()``
# points, by batches (isl), or the paper's code's ring of sequences (train.py, stats_train_inc):
# the last ceil(window_points() / min(L, mean length)) sequences, L the stage's length, counted
# once they hold window_points() coordinates, i.e. half as many points (its "points" count dx and
# dy apart); the mean length is in rows, the original's avgseqlength.
WINDOWS = ("points", "sequences")


class Curriculum(L.Callback):
    """Steps up when the training RMSE over the last ``window_points()`` training points
    (``min_points`` unless a subclass says otherwise; windowed as ``window`` says, see WINDOWS)
    falls below ``threshold`` pixels, then starts a new window.

    The RMSE is that of points sampled from the predicted mixture, per coordinate (the paper's
    measure: squared dx and dy errors over 2 x points), the same ``train/rmse_sampled`` the run
    logs. Subclasses say how many stages there are and what stage ``k`` means for the
    DataModule's curriculum state.
    """

    def __init__(self, threshold: float = 4.0, min_points: int = 5000, window: str = "points"):
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or threshold <= 0:
            raise ValueError(f"curriculum.threshold must be a number > 0 (pixels), got {threshold!r}")
        if window not in WINDOWS:
            raise ValueError(f"curriculum.window must be one of {WINDOWS}, got {window!r}")
        self.threshold = float(threshold)
        self.min_points = positive_int("curriculum.min_points", min_points)
        self.window_by = window
        self.stage = 0
        self.window: deque[tuple[float, int]] = deque()  # (sum of squared errors, points) per batch
        self.window_sums = [0.0, 0]

    # --- what a curriculum defines -------------------------------------------------------------
    def num_stages(self, datamodule) -> int:
        """How many stages; the last one is the full task, after which nothing changes."""
        return 1

    def apply(self, datamodule) -> None:
        """Set ``datamodule.curriculum`` for ``self.stage``."""

    def window_points(self, datamodule) -> int:
        return self.min_points

    def length(self, datamodule) -> int | None:
        """The stage's sequence length (``data.count``); None: whole sequences."""
        return None

    def describe(self, datamodule) -> str:
        """A few words on the current stage, for the progress bar and the log."""
        return f"stage {self.stage}"

    # --- the mechanism ---------------------------------------------------------------------------
    @property
    def rmse(self) -> float | None:
        sq, n = self.window_sums
        return rmse_per_coordinate(sq, n) if n else None

    def on_train_start(self, trainer, module) -> None:
        self.apply(trainer.datamodule)
        if module.points_processed == 0:  # a resumed run has its stage logged already
            self._record(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        datamodule = trainer.datamodule
        if self.stage >= self.num_stages(datamodule) - 1:
            return
        needed = self.window_points(datamodule)
        if self.window_by == "points":
            self._add([module.last_batch_error()])
            while len(self.window) > 1 and self.window_sums[1] - self.window[0][1] >= needed:
                self._drop()
            ready = self.window_sums[1] >= needed
        else:
            self._add(module.last_sequence_errors())
            length = min(self.length(datamodule) or math.inf, datamodule.train.lengths.mean())
            while len(self.window) > math.ceil(needed / length):
                self._drop()
            ready = 2 * self.window_sums[1] >= needed
        if ready and self.rmse < self.threshold:
            rmse = self.rmse
            self.window.clear()
            self.window_sums = [0.0, 0]
            self.step_to(self.stage + 1, trainer, module, f"training RMSE {rmse:.3f} < {self.threshold:.3g}")

    def step_to(self, stage: int, trainer, module, why: str) -> None:
        """Enter ``stage``: set the DataModule for it, say so and log it by points."""
        self.stage = stage
        self.apply(trainer.datamodule)
        log.info("Curriculum step up at %s points (%s): %s", f"{module.points_processed:,}", why,
                 self.describe(trainer.datamodule))
        self._record(trainer, module)

    def _add(self, errors) -> None:
        for sq, n in errors:
            self.window.append((sq, n))
            self.window_sums[0] += sq
            self.window_sums[1] += n

    def _drop(self) -> None:
        old_sq, old_n = self.window.popleft()
        self.window_sums[0] -= old_sq
        self.window_sums[1] -= old_n

    def _record(self, trainer, module) -> None:
        module.write_metrics({"curriculum/stage": float(self.stage)})

    def state_dict(self) -> dict:
        return {"stage": self.stage, "window": list(self.window), "window_sums": list(self.window_sums)}

    def load_state_dict(self, state: dict) -> None:
        self.stage = state["stage"]
        self.window = deque(tuple(w) for w in state["window"])
        self.window_sums = list(state["window_sums"])
