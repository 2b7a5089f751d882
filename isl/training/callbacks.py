"""Callbacks that run a training job by sequence points processed, the paper's unit."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from datetime import timedelta

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import RichProgressBarTheme
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TaskID, TextColumn
from rich.text import Text

from isl.core.checks import positive_int
from isl.curricula import Curriculum
from isl.models.metrics import rmse_per_coordinate
from isl.training.schedule import evaluation_points

log = logging.getLogger(__name__)
TEST_PROTOCOLS = ("full", "original")
# The paper's code's test protocol (train.py, with the exp files' --test_every_nrbatches 10 and
# the default --nrseq_per_batch_test 50).
ORIGINAL_TEST_EVERY = 10      # training batches between test batches
ORIGINAL_TEST_SEQUENCES = 50  # sequences per test batch


class PointsSchedule(L.Callback):
    """Evaluates on the test subset at ``evaluation_points`` (each time at the first batch
    boundary at or past one), and stops training once ``budget`` points have been processed.

    ``test_protocol="original"``: the paper's code's protocol instead (train.py), between a
    full evaluation at 0 and one at the end (so that final metrics compare across protocols):
    one test batch after the 11th, 21st, 31st, ... training batch (its loop sees 10k batches
    trained, trains one more, then tests), each the next 50 test sequences in their fixed order,
    cycling over the test subset (utils.py ``next_batch``; the test permutation is ``arange``),
    at full length from a zero state. Such a row logs the batch's ``test/*`` metrics (the
    original resets its test statistics after every batch) and ``test/rmse_sampled_alldata``,
    its ``rmse_stroke_alldata``: the RMSE over every test sequence's squared error and points at
    the last batch that held it (stats.py ``RMSEStat.log_sse`` by sequence index)."""

    def __init__(self, budget: int, eval_every: int, evals_per_decade: int = 0, test_protocol: str = "full"):
        self.budget = positive_int("budget.points", budget)
        self.eval_every = positive_int("budget.eval_every", eval_every)
        if isinstance(evals_per_decade, bool) or not isinstance(evals_per_decade, int) or evals_per_decade < 0:
            raise ValueError(f"budget.evals_per_decade must be an integer >= 0, got {evals_per_decade!r}")
        if test_protocol not in TEST_PROTOCOLS:
            raise ValueError(f"budget.test_protocol must be one of {TEST_PROTOCOLS}, got {test_protocol!r}")
        self.test_protocol = test_protocol
        self.points = (evaluation_points(budget, eval_every, evals_per_decade) if test_protocol == "full"
                       else [0, budget])
        self.next_eval = 0
        self.started = None
        self.elapsed = 0.0  # wall seconds of earlier attempts (a resumed run)
        self.last_metrics: dict[str, float] = {}
        self.batches = 0    # training batches: the original protocol's clock
        self.cursor = 0     # the next test sequence of its cycle
        self.latest: torch.Tensor | None = None  # per test sequence: squared error, points at its last batch

    def _wall(self) -> float:
        return self.elapsed + time.perf_counter() - self.started

    def _evaluate(self, trainer, module) -> None:
        start = time.perf_counter()
        metrics = module.evaluate(trainer.datamodule.test_dataloader())
        metrics["time/eval_sec"] = time.perf_counter() - start
        metrics["time/wall_sec"] = self._wall()
        module.write_metrics(metrics)
        self.last_metrics = metrics
        self.next_eval = next((p for p in self.points if p > module.points_processed), math.inf)

    def _test_batch(self, trainer, module) -> None:
        """The original protocol's test batch (see the class)."""
        start = time.perf_counter()
        dm = trainer.datamodule
        n = len(dm.test)
        indices = (self.cursor + np.arange(min(ORIGINAL_TEST_SEQUENCES, n))) % n
        self.cursor = int(indices[-1] + 1) % n
        errors = torch.zeros(n, 2, dtype=torch.float64)
        metrics = module.evaluate([dm.collate(indices, dm.test)], sequence_errors=errors)
        if self.latest is None:
            self.latest = torch.zeros(n, 2, dtype=torch.float64)
        self.latest[indices] = errors[indices]
        metrics["test/rmse_sampled_alldata"] = rmse_per_coordinate(*self.latest.sum(0).tolist())
        metrics["time/eval_sec"] = time.perf_counter() - start
        metrics["time/wall_sec"] = self._wall()
        module.write_metrics(metrics)

    def on_train_start(self, trainer, module) -> None:
        self.started = time.perf_counter()
        if module.points_processed >= self.budget:  # resumed from the checkpoint taken at the end
            trainer.should_stop = True
        elif module.points_processed >= self.next_eval:
            self._evaluate(trainer, module)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        if self.test_protocol == "original" and self.batches % ORIGINAL_TEST_EVERY == 1 and self.batches > 1:
            self._test_batch(trainer, module)
        done = module.points_processed >= self.budget
        if done or module.points_processed >= self.next_eval:
            self._evaluate(trainer, module)
        if done:
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"next_eval": self.next_eval, "last_metrics": self.last_metrics, "elapsed": self._wall(),
                "batches": self.batches, "cursor": self.cursor, "latest": self.latest}

    def load_state_dict(self, state: dict) -> None:
        self.next_eval, self.elapsed = state["next_eval"], state["elapsed"]
        self.last_metrics = state["last_metrics"]
        # Checkpoints from before the original protocol existed were taken under the full one.
        self.batches, self.cursor, self.latest = state.get("batches", 0), state.get("cursor", 0), state.get("latest")


class PointsProgressBar(ProgressBar):
    """Rich progress bar in sequence points toward the budget, with points/s, the time left, the
    metrics logged with ``prog_bar=True`` and the curriculum's stage, in the styles of Lightning's
    ``RichProgressBar``. That one counts batches of an endless loader, as ``Epoch 0/-2 26/--``,
    which says nothing about how far a run is, and only its private methods could change that:
    this one drives a ``rich.progress.Progress`` of its own from Lightning's public hooks."""

    def __init__(self, budget: int):
        super().__init__()
        self.budget = budget
        self._enabled = True
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def disable(self) -> None:  # on ranks other than 0 (ProgressBar.setup)
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, module) -> None:
        if not self._enabled:
            return
        theme = RichProgressBarTheme()
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=12, complete_style=theme.progress_bar, finished_style=theme.progress_bar_finished,
                      pulse_style=theme.progress_bar_pulse),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f}", style=theme.batch_progress),
            _Column(_elapsed_and_left, theme.time, max_refresh=0.5),  # twice a second: no jitter
            _Column(lambda task: f"{task.speed:,.0f} points/s" if task.speed else "", theme.processing_speed),
            TextColumn("{task.fields[metrics]}", style=theme.metrics, markup=False))
        self._progress.start()
        # A resumed run's bar starts where it stopped.
        self._task = self._progress.add_task("points", total=self.budget,
                                             completed=min(module.points_processed, self.budget), metrics="")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self._progress is None:
            return
        # Metrics are gathered here, not while rendering: Rich renders in a thread of its own.
        metrics = " ".join(f"{name}: {value if isinstance(value, str) else format(value, '.3f')}"
                           for name, value in self.get_metrics(trainer, module).items())
        self._progress.update(self._task, completed=min(module.points_processed, self.budget), metrics=metrics)

    def get_metrics(self, trainer, module) -> dict:
        metrics = super().get_metrics(trainer, module)
        metrics.pop("v_num", None)
        metrics["curriculum"] = describe_curriculum(trainer)
        return metrics

    def on_exception(self, trainer, module, exception) -> None:
        self._stop()

    def teardown(self, trainer, module, stage: str) -> None:
        self._stop()

    def _stop(self) -> None:  # leaves the last frame on the terminal
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class _Column(ProgressColumn):
    """A column of ``text(task)`` in one style."""

    def __init__(self, text, style, max_refresh: float | None = None):
        self.text, self.style, self.max_refresh = text, style, max_refresh
        super().__init__()

    def render(self, task) -> Text:
        return Text(self.text(task), style=self.style)


def _elapsed_and_left(task) -> str:
    def clock(seconds):
        return "-:--:--" if seconds is None else str(timedelta(seconds=int(seconds)))
    return f"{clock(task.finished_time if task.finished else task.elapsed)} • {clock(task.time_remaining)}"


class PointsProgressLines(ProgressBar):
    """Progress where the output is not a terminal (a file, a SLURM log, a pipe): a bar's frames
    would land there one after another, so one plain line every tenth of the budget instead (in
    run.log too), with points/s and the curriculum's stage."""

    def __init__(self, budget: int, lines: int = 10):
        super().__init__()
        self.budget, self.every = budget, max(1, budget // lines)
        self._enabled, self._next, self._since = True, 0, (0, 0.0)

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, module) -> None:
        self._since = (module.points_processed, time.monotonic())  # a resumed run's rate: since it resumed
        self._next = (module.points_processed // self.every + 1) * self.every

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        points = module.points_processed
        if not self._enabled or points < self._next:
            return
        self._next = (points // self.every + 1) * self.every
        rate = (points - self._since[0]) / max(time.monotonic() - self._since[1], 1e-9)
        log.info("points %s/%s (%d%%), %s points/s, curriculum: %s", f"{points:,}", f"{self.budget:,}",
                 100 * min(points, self.budget) // self.budget, f"{rate:,.0f}", describe_curriculum(trainer))


def progress(budget: int) -> ProgressBar:
    """The bar on a terminal (or in a notebook), plain lines elsewhere."""
    console = Console()
    return PointsProgressBar(budget) if console.is_terminal or console.is_jupyter else PointsProgressLines(budget)


def describe_curriculum(trainer) -> str:
    return next((c.describe(trainer.datamodule) for c in trainer.callbacks if isinstance(c, Curriculum)), "")


class Interruption(L.Callback):
    """Ctrl-C (SIGINT; SIGTERM too outside SLURM, whose requeue path handles it) stops training at
    the end of the current batch, where every piece of state is whole: the run's ``last.ckpt`` is
    then written as at any end of training, and ``interrupted`` holds the points processed, so
    that the same command resumes from there exactly. A second Ctrl-C stops at once, as without
    this. Under DDP (several processes) the signals are left to Lightning: ranks that stopped at
    different batches would wait for each other."""

    def __init__(self):
        self.requested: int | None = None   # the signal received
        self.interrupted: int | None = None  # points processed where training stopped for it
        self._previous: dict = {}

    def on_fit_start(self, trainer, module) -> None:
        if trainer.world_size > 1 or threading.current_thread() is not threading.main_thread():
            return
        handled = [signal.SIGINT] + ([] if os.environ.get("SLURM_JOB_ID") else [signal.SIGTERM])
        self._previous = {s: signal.getsignal(s) for s in handled}
        for s in handled:
            signal.signal(s, self._request)

    def _request(self, signum, frame) -> None:
        if self.requested is not None:  # asked twice: stop now
            self._restore()
            raise KeyboardInterrupt
        self.requested = signum

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.requested is not None and not trainer.should_stop:
            trainer.should_stop = True
            self.interrupted = module.points_processed

    def teardown(self, trainer, module, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


class Interrupted(Exception):
    """Training stopped at a batch end for Ctrl-C (``Interruption``): ``points`` processed, the
    checkpoint written; the same command resumes."""

    def __init__(self, points: int):
        super().__init__(f"interrupted at {points:,} points; the same command resumes")
        self.points = points


def raise_if_interrupted(trainer) -> None:
    """After ``trainer.fit``: raise Interrupted if an ``Interruption`` stopped it."""
    for callback in trainer.callbacks:
        if isinstance(callback, Interruption) and callback.interrupted is not None:
            raise Interrupted(callback.interrupted)
