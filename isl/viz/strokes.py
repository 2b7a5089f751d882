"""Drawing stroke sequences as the digits they encode."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def strokes_of(steps: np.ndarray) -> list[np.ndarray]:
    """Absolute (x, y) polylines of a ``dx dy eos eod`` sequence, split at pen lifts."""
    steps = np.asarray(steps)
    points = np.cumsum(steps[:, :2], axis=0)
    pen_up = steps[:, 2] > 0.5
    strokes, current = [], []
    for point, up in zip(points, pen_up):
        if up:  # a pen-lift row repeats the last point; the next row starts a new stroke
            if current:
                strokes.append(np.array(current))
            current = []
        else:
            current.append(point)
    if current:
        strokes.append(np.array(current))
    return strokes


def draw(ax, steps: np.ndarray, title: str | None = None) -> None:
    for stroke in strokes_of(steps):
        ax.plot(stroke[:, 0], stroke[:, 1], "-", color="black", linewidth=2, solid_capstyle="round")
        ax.plot(stroke[:1, 0], stroke[:1, 1], "o", color="tab:red", markersize=3)  # pen down
    ax.set_xlim(0, 29)
    ax.set_ylim(29, 0)  # image rows grow downwards
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def save_grid(sequences: list[np.ndarray], titles: list[str], path: str | Path, cols: int = 8,
              primed: list[int] | None = None) -> Path:
    """A grid of drawn digits, written as PNG to ``path``; the first ``primed[i]`` rows of
    digit i, if given (a real prefix the model continued), are drawn over in blue."""
    cols = max(1, min(cols, len(sequences)))
    rows = math.ceil(len(sequences) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, steps, title) in enumerate(zip(axes.flat, sequences, titles)):
        ax.axis("on")
        draw(ax, steps, title)
        for stroke in strokes_of(steps[:primed[i]]) if primed and primed[i] > 0 else []:
            ax.plot(stroke[:, 0], stroke[:, 1], "-", color="tab:blue", linewidth=2, solid_capstyle="round")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
