"""Predicted next-point densities over a digit (as Graves 2013, figures of the predicted
mixture along a handwriting sample): at every step the network's mixture for the next offset is
turned into a density of the next absolute position (previous point + offset) on a fine pixel
grid, and the densities of all steps are summed into one heat map drawn over the digit."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import PowerNorm

import isl.viz  # noqa: F401  (Agg backend, before any figure)
from isl.viz.belief import predict
from isl.viz.strokes import strokes_of

CANVAS = (0.0, 29.0)  # 1-based pixel coordinates of a 28x28 image lie in 1..28, as in strokes.draw


def grid_axis(resolution: float = 0.25, extent: tuple[float, float] = CANVAS) -> np.ndarray:
    """Coordinates (pixels) of the grid nodes along x, and along y: extent[0] .. extent[1]."""
    n = int(round((extent[1] - extent[0]) / resolution)) + 1
    return extent[0] + resolution * np.arange(n)


@torch.no_grad()
def density_map(model, steps_pixels: np.ndarray, resolution: float = 0.25,
                extent: tuple[float, float] = CANVAS, chunk: int = 16,
                label: int | None = None) -> np.ndarray:
    """Sum over the steps of one sequence of the predicted density of the next absolute point.

    ``steps_pixels`` is a (T, 4) ``dx dy eos eod`` sequence in pixels (row 0 the absolute
    start). Step t's mixture (over offsets in input units) gives the density of point t + 1 at
    ``points[t] + offset``; it is evaluated at every node of a ``resolution``-pixel grid over
    ``extent`` (the offset converted with ``model.to_units``) and converted to density per square
    pixel (divided by the offset scales; the shift does not change densities), for
    t = 0 .. T-2 (the last step predicts nothing). Returns (ny, nx), row = y, column = x, on
    ``grid_axis(resolution, extent)``; its sum times resolution² is the predicted mass of the
    T - 1 next points that falls on the canvas (at most T - 1). ``label``: the digit's class,
    given to a class-conditional model (``model.class_inputs``).
    """
    steps_pixels = np.asarray(steps_pixels)
    axis = grid_axis(resolution, extent)
    mixture = predict(model, steps_pixels, label)
    device, scale = model.offset_scale.device, model.offset_scale.float()
    coords = torch.as_tensor(axis, dtype=torch.float32, device=device)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)            # (G, 2), pixels
    points = torch.as_tensor(np.cumsum(steps_pixels[:, :2].astype(np.float32), axis=0), device=device)
    total = torch.zeros(len(grid), dtype=torch.float64, device=device)
    n = len(steps_pixels) - 1
    for start in range(0, n, chunk):
        t = slice(start, min(start + chunk, n))
        part = mixture.map(lambda p: p[t].unsqueeze(1).float())                # (t, 1, ...)
        offsets = model.to_units(grid.unsqueeze(0) - points[t].unsqueeze(1))  # (t, G, 2), units
        total += part.log_density(offsets).exp().sum(0, dtype=torch.float64)
    total /= float(scale[0] * scale[1])  # per square input unit -> per square pixel
    return total.reshape(len(axis), len(axis)).cpu().numpy()


def draw_density(ax, density: np.ndarray, steps_pixels: np.ndarray | None = None,
                 resolution: float = 0.25, extent: tuple[float, float] = CANVAS,
                 gamma: float = 0.5, cmap: str = "hot_r", saturate: float = 0.995):
    """A density map on ``ax`` (white where it is 0), optionally with the digit over it.

    Colours run to the ``saturate`` quantile of the map, not its maximum: components narrowed
    onto single grid points (offsets are whole pixels) would otherwise take the whole scale.
    """
    half = resolution / 2
    vmax = max(float(np.quantile(density, saturate)), float(density.max()) / 1000, 1e-12)
    image = ax.imshow(density, cmap=cmap, norm=PowerNorm(gamma, vmin=0, vmax=vmax),
                      extent=(extent[0] - half, extent[1] + half, extent[1] + half, extent[0] - half),
                      interpolation="nearest")
    if steps_pixels is not None:
        for stroke in strokes_of(steps_pixels):
            ax.plot(stroke[:, 0], stroke[:, 1], "-", color="tab:blue", linewidth=0.7, alpha=0.55)
            ax.plot(stroke[:, 0], stroke[:, 1], ".", color="tab:blue", markersize=1.8, alpha=0.8)
    ax.set_xlim(extent)
    ax.set_ylim(extent[1], extent[0])  # image rows grow downwards
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def plot_density(model, steps_pixels: np.ndarray, path: str | Path, resolution: float = 0.25,
                 title: str | None = None) -> Path:
    """Write a PNG: the summed predicted density alone, and drawn under the digit."""
    steps_pixels = np.asarray(steps_pixels)
    density = density_map(model, steps_pixels, resolution)
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.8))
    image = draw_density(axes[0], density, resolution=resolution)
    axes[0].set_title("predicted next-point density,\nsummed over the steps", fontsize=9)
    draw_density(axes[1], density, steps_pixels, resolution=resolution)
    axes[1].set_title(f"with the digit ({len(steps_pixels)} steps)", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, extend="max", label="density per px² (sqrt scale)")
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
