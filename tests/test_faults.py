"""Faults in real runs: a NaN mid-training, a full disk, an unwritable or reused run directory,
a damaged checkpoint. Each gives a clear error, keeps what was already computed and leaves nothing half-written
looking complete."""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import preloaded
from conftest import MNIST_DIR, REPO

pytestmark = pytest.mark.slow

TINY = ["data.num_train=500", "data.num_test=100", "budget.points=6000", "budget.eval_every=3000",
        "checkpoint.every_points=2000", "trainer.log_every_n_steps=2"]
POISON_AT = 3000  # points after which the poisoned job's batches hold a NaN


def run_py(runs_dir, data_dir, *args, launcher: Path | None = None, preexec=None):
    env = {**os.environ, "ISL_DATA_DIR": str(data_dir), "ISL_MNIST_DIR": str(MNIST_DIR)}
    entry = [str(launcher)] if launcher else ["run.py"]
    return preloaded.run([sys.executable, *entry, *args, f"paths.runs_dir={runs_dir}"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600, preexec_fn=preexec)


def poisoning_launcher(tmp_path: Path) -> Path:
    """run.py, with a NaN put into every batch of networks of 16 units after POISON_AT points."""
    path = tmp_path / "poisoned_run.py"
    path.write_text(textwrap.dedent(f"""
        import runpy, sys
        from isl.models.module import SequenceMDN
        train_step = SequenceMDN.training_step
        def poisoned(self, batch, batch_idx):
            if self.hparams.hidden == 16 and self.points_processed >= {POISON_AT}:
                batch.steps[0, 0, 0] = float("nan")
            return train_step(self, batch, batch_idx)
        SequenceMDN.training_step = poisoned
        sys.argv[0] = "run.py"
        runpy.run_path("run.py", run_name="__main__")
    """))
    return path


def test_a_nan_stops_its_job_keeps_the_last_good_checkpoint_and_is_reported_failed(full_data_dir, tmp_path):
    result = run_py(tmp_path, full_data_dir, "-m", "name=nan", "model.hidden=16,8", *TINY,
                    launcher=poisoning_launcher(tmp_path))
    assert result.returncode != 0                                   # Hydra reports the failure...
    sweep = tmp_path / "multirun" / "nan"
    bad, good = sorted(d for d in sweep.iterdir() if d.name[0].isdigit())
    assert (good / "result.json").is_file()                         # ...after the other job ran
    error = (bad / "error.txt").read_text()
    assert "NonFiniteLossError: loss is nan in training at step" in error
    assert "sequence points; the batch was not trained on" in error
    assert not (bad / "result.json").exists()
    checkpoint = torch.load(bad / "checkpoints" / "last.ckpt", weights_only=True)
    assert 2000 <= checkpoint["points_processed"] < POISON_AT + 2000
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values())

    report = preloaded.run([sys.executable, "-m", "isl.tools.report", str(sweep)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    summary = (sweep / "report" / "summary.md").read_text()
    assert "1 summarised, 1 failed" in summary
    failed = summary.split("## Failed jobs")[1].split("##")[0]
    assert bad.name in failed and "NonFiniteLossError" in failed


def _small_files():
    """Files over 1 MB cannot be written (what a full disk does to the checkpoint)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a kill


def test_a_full_disk_gives_a_clear_error_and_nothing_that_looks_complete(full_data_dir, tmp_path):
    result = run_py(tmp_path, full_data_dir, "name=full", *TINY, preexec=_small_files)
    assert result.returncode != 0
    job = tmp_path / "full"
    output = result.stdout + result.stderr
    assert f"cannot write in {job}" in output and "could not write" in output and "last.ckpt" in output
    assert not list(job.rglob("*.ckpt")) and not list(job.rglob("*.tmp"))  # no partial checkpoint
    assert not (job / "result.json").exists() and (job / "error.txt").is_file()


def test_an_unwritable_run_directory_is_named(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_py(blocker / "runs", tmp_path / "data", "name=x", *TINY)
    assert result.returncode != 0
    assert f"Not a directory: '{blocker / 'runs' / 'x'}'" in result.stdout + result.stderr


def test_a_directory_is_never_resumed_with_another_config(full_data_dir, tmp_path):
    first = run_py(tmp_path, full_data_dir, "name=same", "model.hidden=8", *TINY)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_py(tmp_path, full_data_dir, "name=same", "model.hidden=16", *TINY)
    assert second.returncode != 0
    output = second.stdout + second.stderr
    assert "holds a run started with another config (model.hidden: 8 -> 16)" in output
    assert "name=<new name>" in output
    assert (tmp_path / "same" / "result.json").is_file()            # the first run is untouched
    assert not (tmp_path / "same" / "error.txt").exists()            # and a report counts it finished


def test_a_damaged_last_checkpoint_resumes_exactly_from_the_one_before(full_data_dir, tmp_path):
    # Batches of ~400 points: saves past 2,500 and 5,000, then at the end (~6,000).
    args = ["name=damaged", *[o for o in TINY if not o.startswith("checkpoint.")], "checkpoint.every_points=2500",
            "batching.size=10"]
    first = run_py(tmp_path, full_data_dir, *args)
    assert first.returncode == 0, first.stderr[-2000:]
    job, checkpoints = tmp_path / "damaged", tmp_path / "damaged" / "checkpoints"
    finished = json.loads((job / "result.json").read_text())
    rows = (job / "metrics.csv").read_text()
    prev = torch.load(checkpoints / "last.prev.ckpt", weights_only=True)
    assert 5000 <= prev["points_processed"] < finished["points"]

    (job / "result.json").unlink()                      # as if killed after its last save...
    (checkpoints / "last.ckpt").write_bytes((checkpoints / "last.ckpt").read_bytes()[:4096])  # ...damaged
    resumed = run_py(tmp_path, full_data_dir, *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    output = resumed.stdout + resumed.stderr
    assert f"{checkpoints / 'last.ckpt'} is not a readable checkpoint" in output
    assert f"Resuming from {checkpoints / 'last.prev.ckpt'} at {prev['points_processed']:,} sequence points" in output
    assert json.loads((job / "result.json").read_text())["metrics"] == finished["metrics"]   # exactly
    assert untimed(job / "metrics.csv") == untimed(rows)

    for name in ("result.json", "checkpoints/last.prev.ckpt"):
        (job / name).unlink()
    (checkpoints / "last.ckpt").write_bytes(b"")
    refused = run_py(tmp_path, full_data_dir, *args)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [f"error: cannot resume from {checkpoints / 'last.ckpt'} (an empty "
                                           "file): delete it to start the run over (there is no earlier save, "
                                           "last.prev.ckpt, to resume from)"]


def untimed(metrics: Path | str) -> list[dict]:
    """metrics.csv's rows without the wall-clock columns, which differ between any two runs."""
    text = metrics.read_text() if isinstance(metrics, Path) else metrics
    return [{k: v for k, v in row.items() if not k.startswith("time/") and k != "train/points_per_sec"}
            for row in csv.DictReader(text.splitlines())]
