"""Checkpoints a run can be killed between: written atomically, every ``every_points`` sequence
points, with everything an exact resume needs (Lightning saves the model, optimizer, schedule,
loops, callbacks and DataModule; this adds the global random-number state); and copies of the
weights kept along training, for what is measured on trained models afterwards."""

from __future__ import annotations

import io
import json
import os
import random
import shlex
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from isl.core.checks import positive_int
from isl.core.files import atomic_write

LAST = "last.ckpt"
PREV = "last.prev.ckpt"  # the save before last.ckpt: a resume falls back on it if last.ckpt is unreadable
KEPT = "points-{:010d}.ckpt"  # a copy kept along training, named by the points processed


def kept_copies(job_dir: Path) -> list[tuple[int, Path]]:
    """(points, path) of the weights ``job_dir`` kept along training (``KEPT``), by points."""
    copies = [(int(p.stem.split("-")[1]), p) for p in (Path(job_dir) / "checkpoints").glob("points-*.ckpt")]
    return sorted(copies)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch.save checkpoints, written atomically (Lightning's own write can leave a
    truncated file when the process is killed mid-write). A new ``last.ckpt`` keeps the one it
    replaces as ``last.prev.ckpt``."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = Path(path)
        if path.name != LAST or not path.is_file():
            atomic_write(path, buffer.getbuffer())
            return
        # Written in full before the old one moves: a full disk leaves last.ckpt as it was, a
        # kill between the renames last.prev.ckpt, which a resume falls back on.
        new = path.with_name(f"{LAST}.new")
        try:
            atomic_write(new, buffer.getbuffer())
        except OSError as err:
            raise OSError(err.errno, f"{err.strerror}; the previous {LAST} is intact") from err
        os.replace(path, path.with_name(PREV))
        os.replace(new, path)


class PointsCheckpoint(L.Callback):
    """Saves ``<dirpath>/last.ckpt`` every ``every_points`` training points and at the end;
    without ``dirpath``, in ``checkpoints/`` of the trainer's log directory (as Lightning's
    ModelCheckpoint), which isl.training.cli resumes from.

    Metrics buffered by the loggers are flushed first, so the CSV holds every row up to the
    checkpoint. The global random-number state goes with it: training draws the sampled-RMSE
    points (which the curricula decide on) from torch's global generator.

    ``keep_at``: points at which a copy is also kept beside it, ``points-<points>.ckpt`` (at
    the first batch boundary at or past each, named by the points processed there): the
    weights and hyperparameters only (what ``load_model`` reads; a run resumes from
    ``last.ckpt``), for measuring the model along training (e.g. ``isl.tools.generate --score``).
    """

    def __init__(self, every_points: int, dirpath: Path | None = None, keep_at=()):
        self.path = None if dirpath is None else Path(dirpath) / LAST
        self.every_points = positive_int("checkpoint.every_points", every_points)
        self.keep_at = sorted(positive_int("keep_at", p) for p in keep_at)
        self.next_save = every_points
        self.kept_through: int | None = 0  # points processed at the last kept copy
        self._rng: dict | None = None

    def setup(self, trainer, module, stage: str) -> None:
        if self.path is None:
            self.path = Path(trainer.log_dir) / "checkpoints" / LAST

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        points = module.points_processed
        if any(self.kept_through < p <= points for p in self.keep_at):
            trainer.save_checkpoint(self.path.parent / KEPT.format(points), weights_only=True)
            self.kept_through = points  # before last.ckpt, which carries it
        if module.points_processed >= self.next_save:
            self.next_save = (module.points_processed // self.every_points + 1) * self.every_points
            self.save(trainer)

    def on_train_end(self, trainer, module) -> None:
        self.save(trainer)

    def save(self, trainer) -> None:
        for logger in trainer.loggers:
            logger.save()
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state, to resume

    def on_train_start(self, trainer, module) -> None:
        if self.kept_through is None:  # resumed from a checkpoint made before copies were kept
            self.kept_through = module.points_processed
        if self._rng is not None:  # restored last, after everything that draws while setting up
            set_rng_state(self._rng)
            self._rng = None

    def state_dict(self) -> dict:
        return {"next_save": self.next_save, "kept_through": self.kept_through, "rng": rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.next_save, self._rng = state["next_save"], state["rng"]
        self.kept_through = state.get("kept_through")


def rng_state() -> dict:
    """The global generators' states as tensors and plain lists (loadable with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, mt, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
            "python": [version, list(mt), py_gauss]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, mt, py_gauss = state["python"]
    random.setstate((version, tuple(mt), py_gauss))


def write_sidecar(figure: Path, checkpoint: Path, command: list[str]) -> Path:
    """``<figure>.json`` beside a figure drawn from ``checkpoint``'s weights: the command that drew
    it, the checkpoint, its run's directory and the points it had processed, so the figure has a
    record even where the weights are gone."""
    checkpoint = Path(checkpoint).resolve()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    sidecar = Path(f"{figure}.json")
    atomic_write(sidecar, json.dumps({"command": shlex.join(command), "checkpoint": str(checkpoint),
                                      "run": str(run), "points": state.get("points_processed")}, indent=1) + "\n")
    return sidecar
