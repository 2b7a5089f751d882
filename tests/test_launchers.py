"""Sweeps through Hydra's launchers: device slots (hydra/launcher=gpus) and submitit (local)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

import pytest
from omegaconf import OmegaConf

import preloaded
from conftest import MNIST_DIR, REPO
from isl.training.devices import GpuSlots, acquire_slot, device_slot, trainer_devices

TINY = ["budget.points=2000", "budget.eval_every=1000", "data.num_train=200", "data.num_test=50"]


def _hold(lock_dir, gpus, per_gpu, hold_s, records, taken):
    with acquire_slot(lock_dir, gpus, per_gpu, poll_s=0.01) as slot:
        start = time.monotonic()
        with taken.get_lock():
            taken.value += 1
        # The first holders keep their slots until as many were taken as there are: then all
        # are held at once, however slowly a loaded machine starts the other processes.
        while taken.value < gpus * per_gpu and time.monotonic() < start + 30:
            time.sleep(0.01)
        time.sleep(hold_s)
        records.put((slot, start, time.monotonic()))


def test_slots_are_never_shared_and_each_gpu_takes_at_most_per_gpu(tmp_path):
    gpus, per_gpu, jobs = 3, 2, 14                         # 6 slots, 14 jobs: most have to wait
    ctx = multiprocessing.get_context("fork")
    records, taken = ctx.Queue(), ctx.Value("i", 0)
    procs = [ctx.Process(target=_hold, args=(tmp_path, gpus, per_gpu, 0.3, records, taken))
             for _ in range(jobs)]
    for p in procs:
        p.start()
    held = [records.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    assert {slot for slot, *_ in held} == {(g, k) for g in range(gpus) for k in range(per_gpu)}
    # The holders at each moment a job starts (when the most run at once): times are taken
    # inside the lock, so overlapping intervals mean overlapping holds.
    for _, t, _ in held:
        now = [slot for slot, start, end in held if start <= t < end]
        assert len(now) == len(set(now)), f"one slot held by two jobs at once: {now}"
        assert all(sum(g == gpu for g, _ in now) <= per_gpu for gpu in range(gpus)), now
    assert max(sum(start <= t < end for _, start, end in held) for _, t, _ in held) >= 4


def _hold_forever(lock_dir):
    with acquire_slot(lock_dir, gpus=1, per_gpu=1):
        time.sleep(60)


def test_a_killed_job_gives_its_slot_back(tmp_path):
    ctx = multiprocessing.get_context("fork")
    holder = ctx.Process(target=_hold_forever, args=(tmp_path,))
    holder.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "gpu0-slot0.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    holder.kill()
    holder.join()
    with acquire_slot(tmp_path, gpus=1, per_gpu=1, poll_s=0.01) as slot:
        assert slot == (0, 0)


def test_device_slot_yields_a_gpu_index_or_none_on_cpu(tmp_path):
    with device_slot(per_gpu=1, gpus=2, lock_dir=tmp_path) as first:
        with device_slot(per_gpu=1, gpus=2, lock_dir=tmp_path) as second:  # a second fd: a 2nd job
            assert {first, second} == {0, 1}
    with device_slot(per_gpu=1, gpus=0, lock_dir=tmp_path) as gpu:
        assert gpu is None
    with device_slot() as gpu:                              # not in a gpus sweep: no choice made
        assert gpu is None
    assert trainer_devices(None) == {} and trainer_devices(1) == {"accelerator": "gpu", "devices": [1]}


def test_the_callback_sizes_the_pool_and_hides_its_keys_from_joblib():
    def launcher(**kw):
        return OmegaConf.create({"hydra": {"launcher": {"per_gpu": 3, "gpus": 2, "lock_dir": "x",
                                                        "n_jobs": None, "prefer": "processes", **kw}}})
    config = launcher()
    GpuSlots().on_multirun_start(config)
    assert config.hydra.launcher == {"n_jobs": 6, "prefer": "processes"}
    config = launcher(gpus=0)
    GpuSlots().on_multirun_start(config)
    assert config.hydra.launcher.n_jobs == 3                # CPU only: one group of per_gpu
    config = launcher(n_jobs=2)
    GpuSlots().on_multirun_start(config)
    assert config.hydra.launcher.n_jobs == 2                # an explicit n_jobs is kept


def compose_with_hydra(*overrides):
    from hydra import compose, initialize_config_dir

    import isl.training.config  # noqa: F401  (registers the schema that conf/config.yaml names)

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", list(overrides), return_hydra_config=True)


def test_the_slurm_launcher_asks_sbatch_for_what_its_config_says(tmp_path, monkeypatch):
    import submitit
    from hydra.utils import instantiate

    srun = tmp_path / "bin" / "srun"        # submitit only checks that srun exists
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")
    cfg = compose_with_hydra("hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                             "hydra.launcher.mem_gb=32", f"hydra.sweep.dir={tmp_path}")
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)

    class Submitted(Exception):
        pass

    def submit(executor, *args):                  # stop where sbatch would be called
        raise Submitted(executor)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", submit)
    with pytest.raises(Submitted) as submitted:
        launcher.launch([["seed=1"]], initial_job_idx=0)
    script = submitted.value.args[0]._executor._make_submission_file_text("python job", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=4", "--mem=32GB",
                 "--time=240", "--ntasks-per-node=1", "--nodes=1"):
        assert f"#SBATCH {line}\n" in script


def test_a_job_of_a_gpus_sweep_takes_its_settings_from_the_launcher(tmp_path):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    cfg = compose_with_hydra("hydra/launcher=gpus", "hydra.launcher.gpus=2",
                             f"hydra.sweep.dir={tmp_path}")
    cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    try:
        with device_slot() as first, device_slot() as second:
            assert {first, second} == {0, 1}
    finally:
        HydraConfig.instance().cfg = None
    assert sorted(p.name for p in (tmp_path / ".device-slots").iterdir()) == [
        "gpu0-slot0.lock", "gpu1-slot0.lock"]


# --- real sweeps, in a process of their own as a user runs them ---------------------------------
@pytest.fixture(scope="module")
def env(full_data_dir):
    """The environment of a real run: MNIST's sequences in the usual cache (``data/`` or
    ``$ISL_DATA_DIR``, as ``python run.py`` has them), so that jobs only read it."""
    # One thread per job: parallel jobs on a 2-core machine would otherwise oversubscribe it.
    return {**os.environ, "ISL_MNIST_DIR": str(MNIST_DIR), "ISL_DATA_DIR": str(full_data_dir),
            "OMP_NUM_THREADS": "1"}


def sweep(env, tmp_path, *overrides):
    result = preloaded.run([sys.executable, "run.py", "-m", *overrides, *TINY,
                            f"paths.runs_dir={tmp_path}"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_a_sweep_on_the_gpus_launcher_runs_every_job(env, tmp_path):
    result = sweep(env, tmp_path, "hydra/launcher=gpus", "seed=1,2,3")
    assert len(list(tmp_path.rglob("metrics.csv"))) == 3
    assert "Joblib.Parallel(n_jobs=1," in result.stdout     # CPU only: per_gpu (1) at once
    # logger=csv (the default): the first job says, once, how to get dashboards
    assert (result.stdout + result.stderr).count("add logger=wandb for W&B") == 1


@pytest.mark.slow
def test_a_sweep_through_submitit_on_this_machine(env, tmp_path):
    sweep(env, tmp_path, "hydra/launcher=local", "seed=1,2")
    metrics = list(tmp_path.rglob("metrics.csv"))
    assert len(metrics) == 2
    assert all(len(m.read_text().splitlines()) > 2 for m in metrics)
    assert len(list(tmp_path.rglob(".submitit/*/*_result.pkl"))) == 2
