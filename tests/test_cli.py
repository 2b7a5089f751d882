"""The LightningCLI entry point, as a user runs it: ``python -m isl.training.cli fit --config ...``."""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

import preloaded
from conftest import MNIST_DIR, REPO
from test_resume import command, kill_after_checkpoint, metrics, result, run

pytestmark = pytest.mark.slow
DATA_DIR = os.environ.get("ISL_DATA_DIR", str(REPO / "data"))  # run.py's cache, reused


def cli(subcommand, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"ISL_MNIST_DIR": str(MNIST_DIR)} if MNIST_DIR else {})}
    return preloaded.run([sys.executable, "-m", "isl.training.cli", subcommand, *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)


def printed_metrics(stdout: str) -> dict[str, float]:
    """The metrics ``isl.training.cli test`` prints, one ``  test/<name> <value>`` line each."""
    return {name: float(value) for name, value in re.findall(r"^  (test/\S+) (\S+)$", stdout, re.M)}


def small(shipped: str, runs: Path, name: str, budget: int, every: int, callbacks=()) -> Path:
    """A shipped config (cli/<shipped>.yaml) made small and quick: its own curriculum with
    a threshold that never binds, so it steps up every 1,500 points; ``callbacks`` added."""
    if MNIST_DIR is None:
        pytest.skip("real MNIST files not found: set ISL_MNIST_DIR or provide ../shared/data/mnist")
    config = yaml.safe_load((REPO / "cli" / f"{shipped}.yaml").read_text())
    config["model"]["init_args"]["network"] = "ffnn"
    data = config["data"]["init_args"]
    data.update(num_train=500, num_test=100)
    data["source"]["init_args"]["data_dir"] = DATA_DIR
    config["budget"] = budget
    trainer = config["trainer"]
    for callback in trainer["callbacks"]:
        if callback["class_path"] == "isl.training.callbacks.PointsSchedule":
            callback["init_args"] = {"eval_every": every}
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
    result = cli("fit", "--config", str(small("example", tmp_path, "example", 3000, 1000)))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "example"                                    # the logger's name
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    test_rows = [r for r in rows if r["test/loss"]]
    assert float(test_rows[0]["points"]) == 0 and len(test_rows) >= 3
    assert 3000 <= float(test_rows[-1]["points"]) < 3000 + 50 * 100   # stopped within a batch
    assert any(r["train/loss"] for r in rows)
    assert {r["curriculum/stage"] for r in rows} - {""} == {"0.0"}    # regular: no curriculum listed
    config = (run_dir / "config.yaml").read_text()                    # saved by LightningCLI
    assert "network: ffnn" in config and "isl.training.callbacks.PointsSchedule" in config
    assert "trained ffnn with the regular curriculum" in result.stdout


def test_the_length_config_steps_up_with_run_pys_console_and_logs_stages_by_points(tmp_path):
    result = cli("fit", "--config", str(small("length", tmp_path, "length", 8000, 4000)))
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
    every = [{"class_path": "isl.training.checkpoints.PointsCheckpoint", "init_args": {"every_points": 5000}}]
    whole = cli("fit", "--config", str(small("length", tmp_path, "whole", 24000, 8000, every)))
    assert whole.returncode == 0, whole.stderr[-3000:]

    config = small("length", tmp_path, "killed", 24000, 8000, every)
    job = tmp_path / "killed"
    kill_after_checkpoint([sys.executable, "-m", "isl.training.cli", "fit", "--config", str(config)],
                          DATA_DIR, job / "checkpoints" / "last.ckpt", extra_wait=0.3)
    assert not (job / "result.json").exists()
    resumed = cli("fit", "--config", str(config), "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stderr
    assert result(job) == result(tmp_path / "whole")                  # final metrics, exactly
    assert metrics(job) == metrics(tmp_path / "whole")                # and every logged row

    again = cli("fit", "--config", str(config))                       # finished: nothing to do
    assert again.returncode == 0 and "already finished" in again.stdout
    other = cli("fit", "--config", str(config), "--model.init_args.hidden", "100")
    assert other.returncode != 0
    assert "model.init_args.hidden: 200 -> 100" in other.stderr and "--trainer.logger.init_args.name" in other.stderr


def test_the_help_offers_what_works_under_the_name_users_type():
    main = cli("--help")
    assert main.returncode == 0 and main.stdout.startswith("usage: python -m isl.training.cli ")
    assert "{fit,validate,test}" in main.stdout                       # no predict: it would crash
    assert cli("predict").returncode != 0
    fit = cli("fit", "--help").stdout
    assert "--budget BUDGET" in fit and "sequence points" in fit
    test = cli("test", "--help").stdout
    assert "--ckpt_path" in test and "test-set metrics" in test and "--verbose" not in test


def test_the_budget_is_a_command_line_argument_over_the_configs(tmp_path):
    config = small("example", tmp_path, "short", 100_000, 1000)
    result = cli("fit", "--config", str(config), "--budget", "1500")
    assert result.returncode == 0, result.stderr[-3000:]
    final = [r for r in csv.DictReader((tmp_path / "short" / "metrics.csv").open()) if r["test/loss"]][-1]
    assert 1500 <= float(final["points"]) < 1500 + 50 * 100          # stopped within a batch of it
    assert "budget: 1500" in (tmp_path / "short" / "config.yaml").read_text()


def test_test_and_validate_print_a_cli_runs_final_metrics_and_leave_it_as_it_was(tmp_path):
    config = str(small("example", tmp_path, "tested", 2000, 1000))
    assert cli("test", "--config", config).returncode != 0            # nothing trained yet
    assert cli("fit", "--config", config).returncode == 0
    run_dir = tmp_path / "tested"
    before = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()}
    final = result(run_dir)
    assert set(final) >= {"test/loss", "test/nll_px", "test/bits_per_point", "test/rmse_sampled",
                          "test/rmse_expected", "test/accuracy"}
    last = str(run_dir / "checkpoints" / "last.ckpt")
    for args in (["test", "--config", config], ["validate", "--config", config, "--ckpt_path", last]):
        printed = cli(*args)
        assert printed.returncode == 0, printed.stderr[-3000:]
        assert printed_metrics(printed.stdout) == pytest.approx(final, rel=1e-5)
    assert {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()} == before


def test_test_evaluates_a_run_py_checkpoint_given_its_data_and_refuses_other_data(tmp_path):
    if MNIST_DIR is None:
        pytest.skip("real MNIST files not found: set ISL_MNIST_DIR or provide ../shared/data/mnist")
    run(command(tmp_path, "name=r", "model=ffnn", "data.num_train=500", "data.num_test=100",
                "budget.points=1500", "budget.eval_every=1000"), Path(DATA_DIR))
    last = str(tmp_path / "r" / "checkpoints" / "last.ckpt")
    checkpoint = ["--config", "cli/example.yaml", "--ckpt_path", last,
                  "--data.init_args.source.init_args.data_dir", DATA_DIR, "--data.init_args.num_test", "100"]
    printed = cli("test", *checkpoint, "--data.init_args.num_train", "500")
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert printed_metrics(printed.stdout) == pytest.approx(result(tmp_path / "r"), rel=1e-5)
    other = cli("test", *checkpoint)                                  # 10,000 training sequences
    assert other.returncode != 0 and "--data.init_args.num_train" in other.stderr


def test_fit_without_a_points_budget_is_refused_with_an_example():
    result = cli("fit", "--data.init_args.source", "isl.data.sources.MnistSource",
                 "--trainer.logger", "false", "--trainer.enable_checkpointing", "false")
    assert result.returncode != 0
    assert "isl.training.callbacks.PointsSchedule" in result.stderr and "budget:" in result.stderr


def test_a_checkpoint_from_elsewhere_is_refused_naming_the_alternatives(tmp_path):
    result = cli("fit", "--config", "cli/example.yaml", "--trainer.logger.init_args.save_dir", str(tmp_path),
                 "--ckpt_path", str(tmp_path / "other.ckpt"))
    assert result.returncode != 0
    assert "--ckpt_path last" in result.stderr and "--model.init_args.init_from" in result.stderr


def test_the_moves_head_from_the_command_line_of_the_shipped_config(tmp_path):
    result = cli("fit", "--config", str(small("example", tmp_path, "moves", 3000, 1000)),
                 "--model.init_args.head", "moves")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "moves" / "metrics.csv").open()))
    assert "head: moves" in (tmp_path / "moves" / "config.yaml").read_text()
    final = [r for r in rows if r["test/loss"]][-1]
    assert "test/nll_px" not in rows[0] and float(final["test/bits_per_point"]) > 0
