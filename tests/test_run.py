"""The real entry point, as a user runs it: ``python run.py [overrides]`` in a process of its own
(a fresh interpreter for the first test; the others are forked from one that preloaded torch
and Lightning, see tests/preloaded.py)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

import preloaded
from isl.data.build import main as build_cli
from conftest import MNIST_DIR, REPO

pytestmark = pytest.mark.slow


def run_py(*overrides, data_dir, runs_dir, launch=preloaded.run):
    env = {**os.environ, "ISL_DATA_DIR": str(data_dir), "ISL_MNIST_DIR": str(MNIST_DIR)}
    flags = [o for o in overrides if o.startswith("-")]  # -m: before the overrides, as argparse wants
    return launch([sys.executable, "run.py", *flags, f"paths.runs_dir={runs_dir}",
                   *[o for o in overrides if o not in flags]],
                  cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_data_task_prints_the_dataset_and_renders_a_sample(full_data_dir, tmp_path):
    result = run_py("task=data", data_dir=full_data_dir, runs_dir=tmp_path, launch=subprocess.run)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "train (full split): 60,000 sequences" in out and "test (full split): 10,000" in out
    assert "train (used by runs): 10,000 sequences" in out and "test (used by runs): 5,000" in out
    assert "per class: 0:" in out and "length: mean" in out
    [sample] = tmp_path.rglob("dataset-sample.png")
    image = imread(sample)
    assert image.shape[0] > 100 and np.mean(image[..., :3] < 0.2) > 0.005   # ink was drawn
    assert (sample.parent / "dataset.txt").read_text().strip() in out


def test_batching_by_points_from_the_command_line(full_data_dir, tmp_path):
    result = run_py("task=data", "batching=points", "data.num_train=500", data_dir=full_data_dir,
                    runs_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("first training batch"))
    points = int(line.split(" sequences, ")[1].split(" points")[0])
    assert "(points)" in line and 1900 < points <= 2000


def test_a_wrong_config_value_fails_before_anything_is_built_naming_the_key(tmp_path):
    result = run_py("batching.by=tokens", data_dir=tmp_path / "data", runs_dir=tmp_path)
    assert result.returncode != 0
    assert "batching.by" in result.stderr and "sequences" in result.stderr
    assert not (tmp_path / "data").exists()


def test_original_source_needs_a_path(tmp_path):
    result = run_py("data=original", data_dir=tmp_path / "data", runs_dir=tmp_path)
    assert result.returncode != 0 and "data.path" in result.stderr


def test_original_source_end_to_end(tmp_path):
    for split in ("train", "test"):
        build_cli(["--mnist-dir", str(MNIST_DIR), "--split", split, "--limit", "300",
                   "--format", "original", "--out", str(tmp_path / "sequences")])
    result = run_py("task=data", "data=original", f"data.path={tmp_path / 'sequences'}",
                    data_dir=tmp_path / "data", runs_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "train (used by runs): 300 sequences" in result.stdout


@pytest.mark.parametrize("model", ["lstm", "ffnn"])
def test_a_short_training_run_logs_every_metric_to_csv(full_data_dir, tmp_path, model):
    result = run_py(f"model={model}", "budget.points=24000", "budget.eval_every=10000",
                    "data.num_train=1000", "data.num_test=200", "trainer.log_every_n_steps=2",
                    data_dir=full_data_dir, runs_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    [metrics] = tmp_path.rglob("metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    columns = set(rows[0])
    for split in ("train", "test"):
        assert {f"{split}/loss", f"{split}/rmse_sampled", f"{split}/rmse_expected",
                f"{split}/accuracy"} <= columns
    assert {"points", "train/points_per_sec", "time/wall_sec", "lr"} <= columns
    test_rows = [r for r in rows if r["test/rmse_sampled"]]
    assert [float(r["points"]) for r in test_rows][0] == 0 and len(test_rows) >= 3
    assert float(test_rows[-1]["points"]) >= 24000
    points = [float(r["points"]) for r in rows]
    assert points == sorted(points)                               # the x-axis only grows
    assert float(test_rows[-1]["test/loss"]) < float(test_rows[0]["test/loss"])  # it learns
    assert (metrics.parent / "checkpoints" / "last.ckpt").is_file()
    assert f"trained {model} with the regular curriculum" in result.stdout
    # What the console shows: progress in points toward the budget; no banner of devices the
    # run does not use (each Lightning message once: tests/test_console.py), no advertising, no
    # torch deprecation.
    console = result.stdout + result.stderr
    assert "/24,000" in console and "points/s" in console and "Epoch" not in console
    # Output to a file or a pipe, as here: plain lines, about one per tenth of the budget, no
    # bar's frames.
    assert "━" not in console and 8 <= len(re.findall(r"points [\d,]+/24,000 \(\d+%\), [\d,]+ points/s", console)) <= 11
    assert "GPU available" not in console and "TPU available" not in console
    assert "Tip:" not in console and "LeafSpec" not in console


@pytest.mark.parametrize("override, expected", [
    ("budjet.points=5", "Key 'budjet' not in 'Config'"),                     # typo
    ("budget.points=abc", "full_key: budget.points"),                         # wrong type
    ("curriculum=lenght", "Available options in 'curriculum'"),              # unknown option
])
def test_a_config_hydra_cannot_compose_fails_naming_the_key(tmp_path, override, expected):
    result = run_py(override, data_dir=tmp_path / "data", runs_dir=tmp_path)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not list(tmp_path.iterdir())                               # no run directory, no data


@pytest.mark.parametrize("override, expected", [
    ("budget.points=-5", "budget.points must be a positive integer, got -5"),
    ("curriculum=classes curriculum.order=[0,1,2,3,4,5,6,7,8,12]",            # classes outside 0-9
     "curriculum.order must list each digit 0-9 exactly once"),
    ("checkpoint.every_points=0", "checkpoint.every_points must be a positive integer"),
    ("data.scaling=log", "data.scaling must be one of ('range', 'std', 'fixed'), got 'log'"),
    ("curriculum=length curriculum.threshold=0", "curriculum.threshold must be a number > 0"),
    ("batching.size=0", "batching.size must be a positive integer"),
    ("model.hidden=0", "model.hidden must be a positive integer"),
    ("task=fly", "task must be one of"),
    ("curriculum=length_warmup curriculum.duration=1.5", "curriculum.duration must be training points"),
    ("model.lr_warmup_points=-1", "model.lr_warmup_points must be an integer >= 0"),
    # Hydra's hint for an unknown key (`To append to your config use +model.hiden=8`), followed:
    ("+model.hiden=8", "model.hiden=8: model has no key 'hiden'; its keys: network, hidden, layers,"),
    ("+curriculum.treshold=2", "curriculum.treshold=2: curriculum has no key 'treshold'; its keys: threshold,"),
    ("data=original data.path=/no/such/sequences", "data.path=/no/such/sequences: no such folder or archive"),
    ("-m seed=1,2 budget.points=-5", "budget.points must be a positive integer, got -5"),  # a sweep's shared value
])
def test_a_wrong_value_fails_in_one_line_before_anything_is_created(tmp_path, override, expected):
    result = run_py(*override.split(), data_dir=tmp_path / "data", runs_dir=tmp_path)
    assert result.returncode == 2                                     # a usage error, as argparse's
    [line] = result.stderr.splitlines()                               # one line, no traceback
    assert line.startswith("error: ") and expected in line
    assert not list(tmp_path.iterdir())                               # no run directory, no data


def test_a_wrong_mnist_dir_fails_even_with_the_sequences_built(full_data_dir, tmp_path):
    """The cache makes the MNIST files unneeded; a wrong location given for them is still named."""
    env = {**os.environ, "ISL_DATA_DIR": str(full_data_dir), "ISL_MNIST_DIR": str(tmp_path / "mnist")}
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    result = preloaded.run([sys.executable, "run.py", f"paths.runs_dir={tmp_path / 'runs'}"], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert (f"MNIST directory {tmp_path / 'mnist'} (from ISL_MNIST_DIR) lacks train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz.") in result.stderr
    assert not (tmp_path / "runs").exists()
