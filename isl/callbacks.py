"""Callbacks that run a training job by sequence points processed, the paper's unit."""

from __future__ import annotations

import time

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from isl.curricula import Curriculum


class PointsSchedule(L.Callback):
    """Evaluates on the test subset every ``eval_every`` training points (and at the start and
    the end), and stops training once ``budget`` points have been processed."""

    def __init__(self, budget: int, eval_every: int):
        for key, value in (("budget.points", budget), ("budget.eval_every", eval_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        self.budget, self.eval_every = budget, eval_every
        self.next_eval = 0
        self.started = None
        self.elapsed = 0.0  # wall seconds of earlier attempts (a resumed run)
        self.last_metrics: dict[str, float] = {}

    def _evaluate(self, trainer, module) -> None:
        start = time.perf_counter()
        metrics = module.evaluate(trainer.datamodule.test_dataloader())
        metrics["time/eval_sec"] = time.perf_counter() - start
        metrics["time/wall_sec"] = self.elapsed + time.perf_counter() - self.started
        module.write_metrics(metrics)
        self.last_metrics = metrics
        self.next_eval = (module.points_processed // self.eval_every + 1) * self.eval_every

    def on_train_start(self, trainer, module) -> None:
        self.started = time.perf_counter()
        if module.points_processed >= self.budget:  # resumed from the checkpoint taken at the end
            trainer.should_stop = True
        elif module.points_processed >= self.next_eval:
            self._evaluate(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        done = module.points_processed >= self.budget
        if done or module.points_processed >= self.next_eval:
            self._evaluate(trainer, module)
        if done:
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"next_eval": self.next_eval, "last_metrics": self.last_metrics,
                "elapsed": self.elapsed + time.perf_counter() - self.started}

    def load_state_dict(self, state: dict) -> None:
        self.next_eval, self.elapsed = state["next_eval"], state["elapsed"]
        self.last_metrics = state["last_metrics"]


class PointsProgressBar(RichProgressBar):
    """Rich progress bar showing sequence points processed and the curriculum's stage."""

    def get_metrics(self, trainer, module) -> dict:
        metrics = super().get_metrics(trainer, module)
        metrics.pop("v_num", None)
        metrics["points"] = f"{module.points_processed:,}"
        for callback in trainer.callbacks:
            if isinstance(callback, Curriculum):
                metrics["curriculum"] = callback.describe(trainer.datamodule)
        return metrics
