"""The progress bar on a terminal (``PointsProgressBar``), drawn by a short fit into a console
that Rich takes for a terminal: tests/test_run.py's runs write to a pipe, where plain lines
replace it."""

from __future__ import annotations

import io
import re
import time

import lightning as L
import pytest
import rich
import torch
from torch.utils.data import DataLoader

from isl.training.callbacks import PointsProgressBar

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Points(L.LightningModule):
    """Counts 100 sequence points a batch, as SequenceMDN counts its own, and logs an RMSE to the bar."""

    def __init__(self, start: int = 0):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.points_processed = start

    def training_step(self, batch, batch_idx):
        time.sleep(0.002)  # a rate to show
        self.points_processed += 100
        loss = self.layer(batch).pow(2).mean()
        self.log("rmse", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.fixture
def terminal():
    """Rich's console, which the bar draws on, as a terminal writing into a buffer."""
    buffer = io.StringIO()
    rich.reconfigure(file=buffer, force_terminal=True, width=160)
    yield buffer
    rich.reconfigure()


def frames(bar: PointsProgressBar, module: Points, batches: int, terminal: io.StringIO) -> list[str]:
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_model_summary=False,
              accelerator="cpu", callbacks=[bar]).fit(module, DataLoader(torch.ones(batches, 1)))
    return [line for line in ANSI.sub("", terminal.getvalue()).replace("\r", "\n").splitlines() if line]


def test_the_bar_counts_points_toward_the_budget_with_their_rate_metrics_and_curriculum(terminal):
    shown = frames(PointsProgressBar(24000), Points(), 240, terminal)
    last = [frame for frame in shown if frame.startswith("points ")][-1]  # log lines go above it
    assert re.fullmatch(r"points ━{12} 24,000/24,000 \d:\d\d:\d\d • 0:00:00 [\d,]+ points/s "
                        r"rmse: \d\.\d{3} curriculum: ", last.rstrip() + " "), last
    assert not any("Epoch" in frame or "v_num" in frame for frame in shown)


def test_a_resumed_run_starts_where_it_stopped_and_stops_at_the_budget(terminal):
    shown = frames(PointsProgressBar(6000), Points(start=4000), 30, terminal)
    counts = [int(m[1].replace(",", "")) for f in shown if (m := re.search(r" ([\d,]+)/6,000 ", f))]
    assert counts[0] >= 4000 and counts[-1] == 6000   # not past it: 7,000 points were processed


def test_a_disabled_bar_draws_nothing(terminal):  # as on ranks other than 0
    bar = PointsProgressBar(6000)
    bar.disable()
    assert not any("points" in frame for frame in frames(bar, Points(), 10, terminal))
