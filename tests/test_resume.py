"""Runs and sweeps killed with SIGKILL and started again with the same command end exactly as
uninterrupted ones: same metrics, to the last digit (CPU, same seed)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import preloaded
from conftest import MNIST_DIR, REPO

pytestmark = pytest.mark.slow

# Small and quick, with every piece of state an exact resume needs in play: a curriculum that
# steps up every 1,500 points (threshold never binding), test evaluations, several checkpoints.
RUN = ["curriculum=length", "curriculum.threshold=1000", "curriculum.min_points=1500",
       "data.num_train=2000", "data.num_test=200", "budget.points=24000", "budget.eval_every=8000",
       "checkpoint.every_points=5000", "trainer.log_every_n_steps=3", "seed=7"]
# The same with both warm-ups (experiment=warmup's arm length_warmup_lr_warmup), each still
# rising at the first checkpoint: the length by a schedule of points, the learning rate by points.
WARMUP = ["curriculum=length_warmup", "curriculum.duration=12000", "model.lr_warmup_points=16000",
          *[o for o in RUN if not o.startswith("curriculum")]]
TIMING = ("time/", "points_per_sec")  # wall-clock columns differ between any two runs


def command(runs_dir: Path, *overrides: str, multirun: bool = False) -> list[str]:
    return [sys.executable, "run.py", *(["-m"] if multirun else []), f"paths.runs_dir={runs_dir}", *overrides]


def env(data_dir: Path) -> dict:
    # One thread: the same float operations in the same order in every process.
    return {**os.environ, "ISL_DATA_DIR": str(data_dir), "ISL_MNIST_DIR": str(MNIST_DIR),
            "OMP_NUM_THREADS": "1"}


def run(cmd, data_dir) -> subprocess.CompletedProcess:
    result = preloaded.run(cmd, cwd=REPO, env=env(data_dir), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def start_until_checkpoint(cmd, data_dir, checkpoint: Path | str, extra_wait: float,
                           folder: Path | None = None) -> preloaded.Popen:
    """Start ``cmd``, wait until ``checkpoint`` exists (with ``folder``: a glob pattern of it
    there) and let it train on a little."""
    def written() -> bool:
        return any(folder.glob(checkpoint)) if folder else checkpoint.is_file()

    proc = preloaded.Popen(cmd, cwd=REPO, env=env(data_dir), start_new_session=True)
    deadline = time.monotonic() + 400
    while not written():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    time.sleep(extra_wait)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    return proc


def kill_after_checkpoint(cmd, data_dir, checkpoint: Path, extra_wait: float) -> None:
    """Start ``cmd``, wait until ``checkpoint`` exists, let it train on, then SIGKILL it."""
    proc = start_until_checkpoint(cmd, data_dir, checkpoint, extra_wait)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def metrics(job: Path) -> list[dict]:
    with open(job / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if v and not any(t in k for t in TIMING)}
                for row in csv.DictReader(f)]


def result(job: Path) -> dict:
    return json.loads((job / "result.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def wholes(full_data_dir, tmp_path_factory):
    """``wholes(overrides)``: (the job directory, the console output) of a run uninterrupted,
    trained once: what every interrupted run of it, plain or through submitit, must end with."""
    cache = {}

    def whole(overrides) -> tuple[Path, str]:
        if tuple(overrides) not in cache:
            runs = tmp_path_factory.mktemp("runs")
            result = run(command(runs, "name=whole", *overrides), full_data_dir)
            cache[tuple(overrides)] = (runs / "whole", result.stdout)
        return cache[tuple(overrides)]
    return whole


@pytest.mark.parametrize("overrides, curriculum", [(RUN, "length"), (WARMUP, "lengthwarmup"),
                                                   ([*RUN, "model.head=moves"], "length")],
                         ids=["length", "warmups", "moves-head"])
def test_a_run_killed_mid_training_resumes_to_the_same_metrics(full_data_dir, wholes, tmp_path, overrides,
                                                               curriculum):
    whole, out = wholes(overrides)
    assert f"trained lstm with the {curriculum} curriculum" in out

    cmd = command(tmp_path, "name=killed", *overrides)
    job = tmp_path / "killed"
    kill_after_checkpoint(cmd, full_data_dir, job / "checkpoints" / "last.ckpt", extra_wait=0.3)
    assert not (job / "result.json").exists()
    resumed = run(cmd, full_data_dir)
    assert "Resuming from" in resumed.stdout + resumed.stderr

    assert result(job) == result(whole)                              # final metrics, exactly
    assert metrics(job) == metrics(whole)                            # and every logged row
    again = run(cmd, full_data_dir)                                  # a finished run: nothing to do
    assert "already finished" in again.stdout
    if curriculum == "lengthwarmup":  # both schedules, logged by points: mid-way at the checkpoint
        rows = metrics(job)
        stages = [(float(r["points"]), float(r["curriculum/stage"])) for r in rows if "curriculum/stage" in r]
        lrs = [(float(r["points"]), float(r["lr"])) for r in rows if "lr" in r]
        assert [s for _, s in stages] == list(range(7)) and 12000 <= stages[-1][0] < 14000
        assert stages[1][0] < 5000 < stages[3][0]                    # the first checkpoint: at 5,000
        rising = [lr for p, lr in lrs if p <= 16000]
        assert rising == sorted(rising) and rising[0] < 0.0025 * 0.05 and lrs[-1][1] > 0.0025 * 0.999


SWEEP = ["seed=1,2", "batching=sequences,points", *[o for o in RUN if not o.startswith(
    ("seed=", "budget.points"))], "budget.points=12000"]


def test_a_killed_multirun_skips_finished_jobs_and_resumes_the_rest(full_data_dir, tmp_path):
    run(command(tmp_path, "name=whole", *SWEEP, multirun=True), full_data_dir)
    whole = sorted((tmp_path / "multirun" / "whole").glob("[0-9]-*"))
    assert len(whole) == 4

    cmd = command(tmp_path, "name=killed", *SWEEP, multirun=True)
    sweep = tmp_path / "multirun" / "killed"
    second = sweep / whole[1].name
    kill_after_checkpoint(cmd, full_data_dir, second / "checkpoints" / "last.ckpt", extra_wait=0.3)
    first = sweep / whole[0].name
    finished_at = (first / "result.json").stat().st_mtime_ns
    assert not (second / "result.json").exists()
    run(cmd, full_data_dir)

    assert (first / "result.json").stat().st_mtime_ns == finished_at  # skipped, not redone
    for reference in whole:
        job = sweep / reference.name
        assert result(job) == result(reference), job.name
        assert metrics(job) == metrics(reference), job.name


def submitit_jobs(folder: Path) -> list[int]:
    """Pids of the submitit job processes (``python -m submitit.core._submit <folder>/...``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().decode().split("\0") if proc.name.isdigit() else []
        except OSError:  # ended meanwhile
            continue
        if "submitit.core._submit" in args and any(a.startswith(str(folder)) for a in args):
            pids.append(int(proc.name))
    return pids


def test_a_preempted_slurm_job_is_requeued_and_resumes_to_the_same_metrics(full_data_dir, wholes,
                                                                          tmp_path):
    """Pre-emption as SLURM and submitit deliver it (SIGUSR2 to the job, then a requeue), through
    hydra/launcher=local, which runs the same submitit code as hydra/launcher=slurm."""
    whole, _ = wholes(RUN)
    cmd = command(tmp_path, "name=preempted", "hydra/launcher=local", *RUN, multirun=True)
    sweep = tmp_path / "multirun" / "preempted"
    proc = start_until_checkpoint(cmd, full_data_dir, "0/checkpoints/last.ckpt", extra_wait=0.3,
                                  folder=sweep)
    try:
        [pid] = submitit_jobs(sweep / ".submitit")
        os.kill(pid, signal.SIGUSR2)
        assert proc.wait(timeout=600) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    job = sweep / "0"                                  # nothing differs between jobs: the number alone
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "Caught signal SIGUSR2" in logs and "Requeued job" in logs   # pre-empted, requeued...
    assert "Resuming from" in logs                                      # ...and resumed
    assert result(job) == result(whole)
    assert metrics(job) == metrics(whole)


# budget.test_protocol=original: a 50-sequence test batch after the 11th, 21st, ... training batch,
# cycling over 120 test sequences; the first checkpoint (~15 batches) comes after the first.
ORIGINAL = ["budget.test_protocol=original", "data.num_train=2000", "data.num_test=120", "budget.points=60000",
            "checkpoint.every_points=30000", "trainer.log_every_n_steps=1", "seed=7"]


def test_a_run_under_the_original_test_protocol_resumes_to_the_same_rows(full_data_dir, tmp_path):
    from isl.tools import report

    run(command(tmp_path, "name=whole", *ORIGINAL), full_data_dir)
    whole = metrics(tmp_path / "whole")
    tests = [r for r in whole if "test/rmse_sampled" in r]
    batches = [int(r["step"]) for r in tests if "test/rmse_sampled_alldata" in r]
    last = int(whole[-1]["step"])
    assert len(batches) >= 2 and batches == list(range(11, last + 1, 10))      # every 10 batches
    assert [int(r["step"]) for r in tests if "test/rmse_sampled_alldata" not in r] == [0, last]
    trained = {r["step"]: r["points"] for r in whole if "train/loss" in r}
    assert all(r["points"] == trained[r["step"]] for r in tests[1:])            # right after that batch
    state = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
    [schedule] = [s for s in state.values() if "cursor" in s]
    assert schedule["cursor"] == 50 * len(batches) % 120 and schedule["batches"] == last

    cmd = command(tmp_path, "name=killed", *ORIGINAL)
    job = tmp_path / "killed"
    kill_after_checkpoint(cmd, full_data_dir, job / "checkpoints" / "last.ckpt", extra_wait=0.3)
    assert not (job / "result.json").exists()
    resumed = run(cmd, full_data_dir)
    assert "Resuming from" in resumed.stdout + resumed.stderr
    assert result(job) == result(tmp_path / "whole")
    assert metrics(job) == whole

    md = (report.write_report(job) / "summary.md").read_text()
    assert "Test protocol **original** (the paper's code)" in md
    assert "| regular | 1 |" in md


def test_ctrl_c_writes_the_checkpoint_says_how_to_resume_and_resumes_to_the_same_metrics(full_data_dir, wholes,
                                                                                          tmp_path):
    whole, _ = wholes(RUN)
    cmd = command(tmp_path, "name=stopped", *RUN)
    job = tmp_path / "stopped"
    proc = start_until_checkpoint(cmd, full_data_dir, job / "checkpoints" / "last.ckpt", extra_wait=0.3)
    first = (job / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    os.killpg(proc.pid, signal.SIGINT)                                # Ctrl-C in its terminal
    assert proc.wait(timeout=120) == 130
    out = "".join(proc.communicate())
    assert not (job / "error.txt").exists() and not (job / "result.json").exists()
    assert (job / "checkpoints" / "last.ckpt").stat().st_mtime_ns > first   # written where it stopped
    stopped_at = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["points_processed"]
    assert 5000 < stopped_at < 24000, out
    assert f"interrupted at {stopped_at:,} points; the same command resumes" in out
    resumed = run(cmd, full_data_dir)
    assert f"Resuming from {job / 'checkpoints' / 'last.ckpt'} at {stopped_at:,} sequence points" \
        in resumed.stdout + resumed.stderr
    assert result(job) == result(whole) and metrics(job) == metrics(whole)
