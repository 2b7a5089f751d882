"""One device per job in a sweep over the GPUs of one machine: ``hydra/launcher=gpus``.

The launcher (``conf/hydra/launcher/gpus.yaml``) is Hydra's joblib launcher with ``n_jobs``
set at launch by :class:`GpuSlots` to ``per_gpu`` × the GPUs (``per_gpu`` on a CPU-only
machine). Joblib does not tell a job which worker it runs in, and a freed worker may start
job 5 while job 1 (the same ``num % n``) still runs, so a job does not derive its GPU from its
number: it takes a free *slot*, one of ``per_gpu`` lock files per GPU in the sweep's
``lock_dir``, with a non-blocking ``fcntl.flock``, holds it for its lifetime and trains on
that slot's GPU. The kernel releases a lock when its holder exits, crashed or not, so no slot
is ever lost to a dead job.

In a job::

    with device_slot() as gpu:          # None: no GPU (CPU), or not under hydra/launcher=gpus
        trainer = L.Trainer(**{**cfg.trainer, **trainer_devices(gpu)}, ...)
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hydra.experimental.callback import Callback

from isl.core.checks import positive_int

log = logging.getLogger(__name__)

#: Keys of ``hydra.launcher`` that are ours, not joblib's: removed before joblib sees them.
SLOT_KEYS = ("per_gpu", "gpus", "lock_dir")


def visible_gpus(gpus: int | None = None) -> int:
    """``gpus``, or when None the CUDA devices this process sees (``CUDA_VISIBLE_DEVICES``)."""
    if gpus is not None:
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise ValueError(f"hydra.launcher.gpus must be null (all visible) or an integer >= 0, "
                             f"got {gpus!r}")
        return gpus
    import torch  # here, so that `python run.py --help` stays instant

    return torch.cuda.device_count()


def _check_per_gpu(per_gpu) -> int:
    return positive_int("hydra.launcher.per_gpu", per_gpu)


@contextmanager
def acquire_slot(lock_dir: str | os.PathLike, gpus: int, per_gpu: int = 1,
                 poll_s: float = 0.5) -> Iterator[tuple[int, int]]:
    """Hold a free slot ``(gpu, k)`` of ``gpus`` × ``per_gpu`` for the ``with`` block.

    Tries every ``<lock_dir>/gpu{g}-slot{k}.lock`` with a non-blocking exclusive ``flock``,
    the least loaded GPU first; while all are held it waits, polling every ``poll_s`` seconds.
    """
    if gpus < 1:
        raise ValueError(f"no GPU to take a slot on (gpus={gpus})")
    _check_per_gpu(per_gpu)
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for k in range(per_gpu):          # slot 0 of every GPU, then slot 1, ...: spreads load
            for g in range(gpus):
                fd = os.open(lock_dir / f"gpu{g}-slot{k}.lock", os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
                    yield g, k
                finally:
                    os.close(fd)                 # closing the file releases the lock
                return
        if not waited:
            log.info("all %d × %d device slots in %s are taken; waiting for one", gpus, per_gpu,
                     lock_dir)
            waited = True
        time.sleep(poll_s)


def _launcher_settings() -> dict | None:
    """``per_gpu``/``gpus``/``lock_dir`` of this job's launcher, when it is a multirun job
    under ``hydra/launcher=gpus``; None otherwise (a single run, another launcher, no Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    launcher = hydra_cfg.get("launcher") or {}
    if hydra_cfg.mode != RunMode.MULTIRUN or "per_gpu" not in launcher:
        return None
    return {key: launcher.get(key) for key in SLOT_KEYS}


@contextmanager
def device_slot(per_gpu: int | None = None, gpus: int | None = None,
                lock_dir: str | os.PathLike | None = None) -> Iterator[int | None]:
    """The GPU index this job trains on, held for the ``with`` block; None for no choice.

    Under ``hydra/launcher=gpus`` the arguments come from ``hydra.launcher``; given
    ``lock_dir``, from the arguments. None when there is no GPU (CPU-only: joblib already runs
    at most ``per_gpu`` jobs at once) or outside such a sweep: the trainer config decides.
    """
    if lock_dir is None:
        settings = _launcher_settings()
        if settings is None:
            yield None
            return
        per_gpu, gpus, lock_dir = settings["per_gpu"], settings["gpus"], settings["lock_dir"]
    per_gpu, n = _check_per_gpu(1 if per_gpu is None else per_gpu), visible_gpus(gpus)
    if n == 0:
        yield None
        return
    with acquire_slot(lock_dir, n, per_gpu) as (gpu, k):
        log.info("device slot %d of GPU %d (lock in %s)", k, gpu, lock_dir)
        yield gpu


def trainer_devices(gpu: int | None) -> dict:
    """Trainer arguments that put the run on ``gpu``; none (keep the config's) for None."""
    return {} if gpu is None else {"accelerator": "gpu", "devices": [gpu]}


class GpuSlots(Callback):
    """Hydra callback of ``hydra/launcher=gpus``: before the launcher starts, sizes joblib's
    pool to ``per_gpu`` × GPUs (``per_gpu`` on a CPU-only machine) unless ``n_jobs`` was given,
    and removes the keys joblib does not take. Jobs read them back from their own config."""

    def on_multirun_start(self, config, **kwargs) -> None:
        from omegaconf import open_dict, read_write

        launcher = config.hydra.launcher
        with read_write(launcher), open_dict(launcher):
            ours = {key: launcher.pop(key, None) for key in SLOT_KEYS}
            # Hydra turns an exception here into a warning; a bad value then fails in each job.
            per_gpu, gpus = _check_per_gpu(ours["per_gpu"]), visible_gpus(ours["gpus"])
            if launcher.get("n_jobs") is None:
                launcher.n_jobs = per_gpu * max(gpus, 1)
        log.info("hydra/launcher=gpus: %d parallel job(s), %s", launcher.n_jobs,
                 f"{per_gpu} per GPU on {gpus} GPU(s)" if gpus else "on CPU (no GPU visible)")
