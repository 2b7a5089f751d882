"""A refactoring changes nothing a run computes: a fixed-seed run of the length curriculum (it
steps up twice, so the curriculum's reading of the training error is exercised too) gives the
metrics.csv stored in tests/data, made by the code before the package layout of 2026-12-05, row
by row and column by column (timings aside)."""

from __future__ import annotations

import csv
import math
import os
import sys

import pytest

import preloaded
from conftest import MNIST_DIR, REPO, needs_mnist

pytestmark = [pytest.mark.slow, needs_mnist]
STORED = REPO / "tests" / "data" / "fixed-run-metrics.csv"
TIMINGS = {"time/eval_sec", "time/wall_sec", "train/points_per_sec"}


def test_a_fixed_seed_run_logs_the_stored_metrics(full_data_dir, tmp_path):
    env = {**os.environ, "ISL_DATA_DIR": str(full_data_dir), "ISL_MNIST_DIR": str(MNIST_DIR)}
    result = preloaded.run([sys.executable, "run.py", "curriculum=length", "seed=3", "logger=csv",
                            "budget.points=30000", "budget.eval_every=10000", "data.num_train=1000",
                            "data.num_test=200", "trainer.log_every_n_steps=2",
                            f"paths.runs_dir={tmp_path}"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [metrics] = tmp_path.rglob("metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    stored = list(csv.DictReader(STORED.open()))
    assert set(rows[0]) - TIMINGS == set(stored[0])
    assert len(rows) == len(stored)
    differ = [(i, key, row[key], want) for i, (row, want_row) in enumerate(zip(rows, stored))
              for key, want in want_row.items() if not _same(row[key], want)]
    assert differ == []


def _same(got: str, want: str) -> bool:
    if got == "" or want == "":
        return got == want
    return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9)
