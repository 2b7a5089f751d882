"""The LightningCLI entry point, as a user runs it: ``python -m isl.cli fit --config ...``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MNIST_DIR, REPO

pytestmark = pytest.mark.slow


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "isl.cli", "fit", *args], cwd=REPO,
                          env=env or os.environ, capture_output=True, text=True, timeout=180)


def test_a_short_fit_from_the_shipped_config_stops_by_points_and_logs_metrics(tmp_path):
    if MNIST_DIR is None:
        pytest.skip("real MNIST files not found: set ISL_MNIST_DIR or provide ../shared/data/mnist")
    data_dir = os.environ.get("ISL_DATA_DIR", str(REPO / "data"))   # run.py's cache, reused
    result = cli("--config", "conf/cli/example.yaml",
                 # the whole source (a nested key alone needs `source` typed in the DataModule)
                 "--data.init_args.source", "{class_path: isl.data.sources.MnistSource, "
                 f"init_args: {{data_dir: '{data_dir}'}}}}",
                 "--data.init_args.num_train", "200", "--data.init_args.num_test", "50",
                 "--model.init_args.network", "ffnn",
                 "--trainer.callbacks.budget", "3000", "--trainer.callbacks.eval_every", "1000",
                 "--trainer.log_every_n_steps", "1",
                 "--trainer.logger.init_args.save_dir", str(tmp_path),
                 env={**os.environ, "ISL_MNIST_DIR": str(MNIST_DIR)})
    assert result.returncode == 0, result.stderr[-3000:]
    [metrics] = tmp_path.rglob("metrics.csv")                        # version_0/metrics.csv
    rows = list(csv.DictReader(metrics.open()))
    test_rows = [r for r in rows if r["test/loss"]]
    assert float(test_rows[0]["points"]) == 0 and len(test_rows) >= 3
    assert 3000 <= float(test_rows[-1]["points"]) < 3000 + 50 * 100   # stopped within a batch
    assert any(r["train/loss"] for r in rows)
    config = (metrics.parent / "config.yaml").read_text()            # saved by LightningCLI
    assert "network: ffnn" in config and "isl.callbacks.PointsSchedule" in config


def test_fit_without_a_points_budget_is_refused_with_an_example():
    result = cli("--data.init_args.source", "isl.data.sources.MnistSource",
                 "--trainer.logger", "false", "--trainer.enable_checkpointing", "false")
    assert result.returncode != 0
    assert "isl.callbacks.PointsSchedule" in result.stderr and "budget:" in result.stderr
