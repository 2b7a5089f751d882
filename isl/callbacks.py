"""Callbacks that run a training job by sequence points processed, the paper's unit."""

from __future__ import annotations

import math
import time

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import CustomBarColumn, CustomTimeColumn
from rich.progress import TextColumn

from isl.checks import positive_int
from isl.curricula import Curriculum


def evaluation_points(budget: int, eval_every: int, per_decade: int = 0) -> list[int]:
    """Where the test set is evaluated: at 0, every ``eval_every`` points, ``per_decade``
    log-spaced points per decade over the budget's last three decades (so curves have shape at
    any budget, and suit log-scale figures), and at the budget."""
    return sorted({0, *range(eval_every, budget, eval_every), *log_spaced(budget, per_decade)})


def log_spaced(budget: int, per_decade: int) -> list[int]:
    """``per_decade`` log-spaced points per decade over the budget's last three decades, and the
    budget: budget / 1000, ..., budget."""
    return sorted({budget, *(round(budget * 10 ** (k / per_decade - 3)) for k in range(3 * per_decade))})


class PointsSchedule(L.Callback):
    """Evaluates on the test subset at ``evaluation_points`` (each time at the first batch
    boundary at or past one), and stops training once ``budget`` points have been processed."""

    def __init__(self, budget: int, eval_every: int, evals_per_decade: int = 0):
        self.budget = positive_int("budget.points", budget)
        self.eval_every = positive_int("budget.eval_every", eval_every)
        if isinstance(evals_per_decade, bool) or not isinstance(evals_per_decade, int) or evals_per_decade < 0:
            raise ValueError(f"budget.evals_per_decade must be an integer >= 0, got {evals_per_decade!r}")
        self.points = evaluation_points(budget, eval_every, evals_per_decade)
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
        self.next_eval = next((p for p in self.points if p > module.points_processed), math.inf)

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
    """Rich progress bar in sequence points toward the budget, with points/s, the time left and
    the curriculum's stage. (Lightning's own counts batches of an endless loader, as
    ``Epoch 0/-2 26/--``, which says nothing about how far a run is.)"""

    def __init__(self, budget: int, **kwargs):
        super().__init__(**kwargs)
        self.budget = budget

    @property
    def total_train_batches(self) -> int:  # the bar's total, whatever its unit
        return self.budget

    def _get_train_description(self, current_epoch: int) -> str:
        return "points"

    def configure_columns(self, trainer) -> list:
        theme = self.theme
        return [TextColumn("[progress.description]{task.description}"),
                CustomBarColumn(bar_width=12, complete_style=theme.progress_bar,
                                finished_style=theme.progress_bar_finished, pulse_style=theme.progress_bar_pulse),
                TextColumn("{task.completed:,.0f}/{task.total:,.0f}", style=theme.batch_progress),
                CustomTimeColumn(style=theme.time),  # elapsed • left
                TextColumn("{task.fields[speed]}", style=theme.processing_speed)]

    def _add_task(self, total_batches, description: str, visible: bool = True):
        return self.progress.add_task(description, total=total_batches, visible=visible, speed="")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.is_disabled:
            return
        if self.train_progress_bar_id is None:  # resumed mid-run
            self._initialize_train_progress_bar_id()
        task = next(t for t in self.progress.tasks if t.id == self.train_progress_bar_id)
        speed = f"{task.speed:,.0f} points/s" if task.speed else ""
        self.progress.update(self.train_progress_bar_id, completed=min(module.points_processed, self.budget),
                             speed=speed)
        self._update_metrics(trainer, module)
        self.refresh()

    def get_metrics(self, trainer, module) -> dict:
        metrics = super().get_metrics(trainer, module)
        metrics.pop("v_num", None)
        for callback in trainer.callbacks:
            if isinstance(callback, Curriculum):
                metrics["curriculum"] = callback.describe(trainer.datamodule)
        return metrics
