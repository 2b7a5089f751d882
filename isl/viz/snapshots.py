"""DensitySnapshots: watch the predicted densities of fixed test digits sharpen during training.

Every ``every_n_batches`` training batches (and once before the first) the callback computes
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
from isl.viz.density import density_map, draw_density

GIF_NAME = "density-snapshots.gif"


class DensitySnapshots(L.Callback):
    """Frames: one before training, then one after every ``every_n_batches``-th training batch,
    so a run of B batches gives ``1 + B // every_n_batches`` frames.

    ``out_dir``: where the GIF goes; None = ``trainer.default_root_dir`` (the run directory
    under ``run.py``), else ``trainer.log_dir``. Only global rank 0 computes and writes.
    ``max_frames`` bounds memory and GIF size on long runs: past it, every other snapshot is
    dropped and the interval doubled. Frames are not saved in checkpoints: after a resume the
    GIF covers the resumed part (titles give the batches since it started, and the points).
    """

    def __init__(self, every_n_batches: int, digits: int = 1, out_dir: str | Path | None = None,
                 resolution: float = 0.25, fps: int = 4, max_frames: int = 400):
        if isinstance(every_n_batches, bool) or not isinstance(every_n_batches, int) or every_n_batches < 1:
            raise ValueError(f"every_n_batches must be a positive integer, got {every_n_batches!r}")
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
            raise ValueError(f"digits must be a positive integer, got {digits!r}")
        if max_frames < 2:
            raise ValueError(f"max_frames must be >= 2, got {max_frames!r}")
        self.every_n_batches = every_n_batches
        self.digits = digits
        self.out_dir = out_dir
        self.resolution = resolution
        self.fps = fps
        self.max_frames = max_frames
        self.sequences: list[np.ndarray] = []
        self.labels: list[int] = []
        self.frames: list[tuple[int, int, list[np.ndarray]]] = []  # (batches, points, maps)
        self.batches = 0
        self.path: Path | None = None

    # --- snapshots ----------------------------------------------------------------------------
    def _snapshot(self, pl_module) -> None:
        maps = [density_map(pl_module, s, self.resolution) for s in self.sequences]
        self.frames.append((self.batches, int(getattr(pl_module, "points_processed", 0)), maps))
        if len(self.frames) > self.max_frames:
            self.frames = self.frames[:1] + self.frames[2::2]
            self.every_n_batches *= 2

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        test = trainer.datamodule.test
        n = min(self.digits, len(test))
        self.sequences = [np.asarray(test.sequence(i)) for i in range(n)]
        self.labels = [int(test.labels[i]) for i in range(n)]
        self.frames, self.batches = [], 0
        self._snapshot(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not trainer.is_global_zero:
            return
        self.batches += 1
        if self.batches % self.every_n_batches == 0:
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
        batches, points, maps = frames[k]
        for ax, density, steps, label in zip(axes, maps, sequences, labels):
            ax.clear()
            draw_density(ax, density, steps, resolution)
            ax.set_title(f"test digit {label}", fontsize=9)
        fig.suptitle(f"after {batches:,} batches, {points:,} points", fontsize=10)
        return []

    animation = FuncAnimation(fig, show, frames=len(frames), blit=False)
    animation.save(path, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return path
