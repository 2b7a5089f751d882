"""DensitySnapshots: watch the predicted densities of fixed test digits sharpen during training.

Every ``every_points`` training points (and once before the first batch) the callback computes
the summed next-point density map (``isl.viz.density.density_map``) of the first ``digits``
test sequences of ``trainer.datamodule.test``; at the end of training it writes them as an
animated GIF, one frame per snapshot, into the run's directory.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter

import isl.viz  # noqa: F401  (Agg backend, before any figure)
from isl.core.checks import positive_int
from isl.viz.density import density_map, draw_density

GIF_NAME = "density-snapshots.gif"


class DensitySnapshots(L.Callback):
    """Frames: one before training, then one after the batch that takes the points processed
    past each multiple of ``every_points``, so a run of P points gives ``1 + P // every_points``
    frames (as long as no batch holds more than ``every_points`` points).

    ``out_dir``: where the GIF goes; None = ``trainer.default_root_dir`` (the run directory
    under ``run.py``), else ``trainer.log_dir``. Only global rank 0 computes and writes.
    ``max_frames`` bounds memory and GIF size on long runs: past it, every other snapshot is
    dropped and the interval doubled. Frames are not saved in checkpoints: after a resume the
    GIF covers the resumed part (titles give the points).
    """

    def __init__(self, every_points: int, digits: int = 1, out_dir: str | Path | None = None,
                 resolution: float = 0.25, fps: int = 4, max_frames: int = 400):
        if max_frames < 2:
            raise ValueError(f"max_frames must be >= 2, got {max_frames!r}")
        self.every_points = positive_int("viz.density_every", every_points)
        self.digits = positive_int("viz.density_digits", digits)
        self.out_dir = out_dir
        self.resolution = resolution
        self.fps = fps
        self.max_frames = max_frames
        self.sequences: list[np.ndarray] = []
        self.labels: list[int] = []
        self.frames: list[tuple[int, list[np.ndarray]]] = []  # (points, maps)
        self.next_snapshot = 0
        self.path: Path | None = None

    # --- snapshots ----------------------------------------------------------------------------
    def _snapshot(self, pl_module) -> None:
        points = int(pl_module.points_processed)
        maps = [density_map(pl_module, s, self.resolution, label=label)
                for s, label in zip(self.sequences, self.labels)]
        self.frames.append((points, maps))
        if len(self.frames) > self.max_frames:
            self.frames = self.frames[:1] + self.frames[2::2]
            self.every_points *= 2
        self.next_snapshot = (points // self.every_points + 1) * self.every_points

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        test = trainer.datamodule.test
        n = min(self.digits, len(test))
        self.sequences = [np.asarray(test.sequence(i)) for i in range(n)]
        self.labels = [int(test.labels[i]) for i in range(n)]
        self.frames = []
        self._snapshot(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        if pl_module.points_processed >= self.next_snapshot:
            self._snapshot(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or not self.frames:
            return
        directory = Path(self.out_dir or trainer.default_root_dir or trainer.log_dir)
        self.path = write_gif(self.frames, self.sequences, self.labels, directory / GIF_NAME,
                              self.resolution, self.fps)


def write_gif(frames, sequences, labels, path: str | Path, resolution: float = 0.25, fps: int = 4) -> Path:
    """An animated GIF of density-map snapshots: one panel per digit, one frame per snapshot."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(sequences)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.03, top=0.82, wspace=0.08)
    axes = axes[0]

    def show(k: int):
        points, maps = frames[k]
        for ax, density, steps, label in zip(axes, maps, sequences, labels):
            ax.clear()
            draw_density(ax, density, steps, resolution)
            ax.set_title(f"test digit {label}", fontsize=9)
        fig.suptitle(f"after {points:,} points", fontsize=10)
        return []

    animation = FuncAnimation(fig, show, frames=len(frames), blit=False)
    animation.save(path, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return path
