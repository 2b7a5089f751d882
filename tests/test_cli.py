"""The LightningCLI entry point, as a user runs it: ``python -m isl.cli fit --config ...``."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest
import yaml

import preloaded
from conftest import MNIST_DIR, REPO
from test_resume import kill_after_checkpoint, metrics, result

pytestmark = pytest.mark.slow
DATA_DIR = os.environ.get("ISL_DATA_DIR", str(REPO / "data"))  # run.py's cache, reused


def cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"ISL_MNIST_DIR": str(MNIST_DIR)} if MNIST_DIR else {})}
    return preloaded.run([sys.executable, "-m", "isl.cli", "fit", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)


def small(shipped: str, runs: Path, name: str, budget: int, every: int, callbacks=()) -> Path:
    """A shipped config (conf/cli/<shipped>.yaml) made small and quick: its own curriculum with
    a threshold that never binds, so it steps up every 1,500 points; ``callbacks`` added."""
    if MNIST_DIR is None:
        pytest.skip("real MNIST files not found: set ISL_MNIST_DIR or provide ../shared/data/mnist")
    config = yaml.safe_load((REPO / "conf" / "cli" / f"{shipped}.yaml").read_text())
    config["model"]["init_args"]["network"] = "ffnn"
    data = config["data"]["init_args"]
    data.update(num_train=500, num_test=100)
    data["source"]["init_args"]["data_dir"] = DATA_DIR
    trainer = config["trainer"]
    for callback in trainer["callbacks"]:
        if callback["class_path"] == "isl.callbacks.PointsSchedule":
            callback["init_args"] = {"budget": budget, "eval_every": every}
        else:
            callback["init_args"].update(threshold=1000, min_points=1500)
    trainer["callbacks"] += list(callbacks)
    trainer["logger"]["init_args"].update(save_dir=str(runs), name=name)
    trainer["log_every_n_steps"] = 2
    path = runs / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_short_fit_from_the_shipped_config_stops_by_points_and_logs_metrics(tmp_path):
    result = cli("--config", str(small("example", tmp_path, "example", 3000, 1000)))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "example"                                    # the logger's name
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    test_rows = [r for r in rows if r["test/loss"]]
    assert float(test_rows[0]["points"]) == 0 and len(test_rows) >= 3
    assert 3000 <= float(test_rows[-1]["points"]) < 3000 + 50 * 100   # stopped within a batch
    assert any(r["train/loss"] for r in rows)
    assert {r["curriculum/stage"] for r in rows} - {""} == {"0.0"}    # regular: no curriculum listed
    config = (run_dir / "config.yaml").read_text()                    # saved by LightningCLI
    assert "network: ffnn" in config and "isl.callbacks.PointsSchedule" in config
    assert "trained ffnn with the regular curriculum" in result.stdout


def test_the_length_config_steps_up_with_run_pys_console_and_logs_stages_by_points(tmp_path):
    result = cli("--config", str(small("length", tmp_path, "length", 8000, 4000)))
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    step_ups = [line for line in console.splitlines() if line.startswith("Curriculum step up at")]
    assert len(step_ups) >= 3 and step_ups[0].endswith("length 4"), console[-3000:]
    assert "/8,000" in console and "points/s" in console and "Epoch" not in console  # bar in points
    for unwanted in ("Tip:", "litlogger", "litmodels", "LeafSpec"):
        assert unwanted not in console
    rows = list(csv.DictReader((tmp_path / "length" / "metrics.csv").open()))
    assert all(r["points"] for r in rows)
    stages = [(float(r["points"]), float(r["curriculum/stage"])) for r in rows if r["curriculum/stage"]]
    assert stages[0] == (0, 0) and [s for _, s in stages] == list(range(len(stages)))
    assert len(stages) == len(step_ups) + 1 and all(p > 0 for p, _ in stages[1:])
    assert f"trained ffnn with the length curriculum (stage {len(step_ups)})" in result.stdout


def test_a_killed_cli_run_resumes_to_the_same_metrics_as_run_py_runs_do(tmp_path):
    every = [{"class_path": "isl.checkpoints.PointsCheckpoint", "init_args": {"every_points": 5000}}]
    whole = cli("--config", str(small("length", tmp_path, "whole", 24000, 8000, every)))
    assert whole.returncode == 0, whole.stderr[-3000:]

    config = small("length", tmp_path, "killed", 24000, 8000, every)
    job = tmp_path / "killed"
    kill_after_checkpoint([sys.executable, "-m", "isl.cli", "fit", "--config", str(config)],
                          DATA_DIR, job / "checkpoints" / "last.ckpt", extra_wait=0.3)
    assert not (job / "result.json").exists()
    resumed = cli("--config", str(config), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stderr
    assert result(job) == result(tmp_path / "whole")                  # final metrics, exactly
    assert metrics(job) == metrics(tmp_path / "whole")                # and every logged row

    again = cli("--config", str(config))                              # finished: nothing to do
    assert again.returncode == 0 and "already finished" in again.stdout
    other = cli("--config", str(config), "--model.init_args.hidden", "100")
    assert other.returncode != 0
    assert "model.init_args.hidden: 200 -> 100" in other.stderr and "--trainer.logger.init_args.name" in other.stderr


def test_fit_without_a_points_budget_is_refused_with_an_example():
    result = cli("--data.init_args.source", "isl.data.sources.MnistSource",
                 "--trainer.logger", "false", "--trainer.enable_checkpointing", "false")
    assert result.returncode != 0
    assert "isl.callbacks.PointsSchedule" in result.stderr and "budget:" in result.stderr


def test_a_checkpoint_from_elsewhere_is_refused_naming_the_alternatives(tmp_path):
    result = cli("--config", "conf/cli/example.yaml", "--trainer.logger.init_args.save_dir", str(tmp_path),
                 "--ckpt_path", str(tmp_path / "other.ckpt"))
    assert result.returncode != 0
    assert "--ckpt_path last" in result.stderr and "--model.init_args.init_from" in result.stderr


def test_the_moves_head_from_the_command_line_of_the_shipped_config(tmp_path):
    result = cli("--config", str(small("example", tmp_path, "moves", 3000, 1000)),
                 "--model.init_args.head", "moves")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "moves" / "metrics.csv").open()))
    assert "head: moves" in (tmp_path / "moves" / "config.yaml").read_text()
    final = [r for r in rows if r["test/loss"]][-1]
    assert "test/nll_px" not in rows[0] and float(final["test/bits_per_point"]) > 0
