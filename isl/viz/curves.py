"""Learning curves of a sweep: one panel per cell, one line per curriculum (mean and band over seeds)."""

from __future__ import annotations

import math
from pathlib import Path

import isl.viz  # noqa: F401  (Agg backend)
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter

BAND = "min–max"
COLORS = {"regular": "black", "length": "tab:red", "classes": "tab:blue", "sequences": "tab:green",
          "scratch": "tab:gray",  # a transfer sweep's "from <curriculum>" lines take its colour
          "regular_lr_warmup": "tab:olive", "length_warmup": "tab:orange",  # experiment=warmup's arms
          "length_warmup_lr_warmup": "tab:brown"}


def plot_curves(cells: dict, metric: str, path: Path, xscale: str = "log", title: str = "",
                cell_title=str, ylabel: str = "test RMSE (pixels)", yscale: str = "linear",
                references: dict[str, str] | None = None, higher_is_better: bool = False,
                references_are: str = "trivial predictors") -> Path:
    """Plot ``cells`` ({cell: {curriculum: Curve}}, as ``isl.tools.sweeps.aggregate`` returns) to
    ``path``. ``references`` ({key of Curve.reference: label}) are drawn as labelled dashed
    horizontal lines, named in the subtitle by ``references_are``: by default what trivial
    predictors score on the same test set. ``regular``'s best is its lowest value, or its
    highest where ``higher_is_better``."""
    n = len(cells)
    cols = 1 if n == 1 else 2 if n <= 4 else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(5.5 * cols, 7), 4 * rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax, (cell, curves) in zip(axes.flat, cells.items()):
        for name, curve in curves.items():
            keep = ~np.isnan(curve.mean(metric)) & ((curve.points > 0) if xscale == "log" else True)
            x, values = curve.points[keep], curve.values[metric][:, keep]  # a smoothed curve's gaps joined
            color = COLORS.get(name.removeprefix("from "))
            line, = ax.plot(x, values.mean(axis=0), "-", marker="." if len(x) < 30 else None,
                            color=color, label=f"{name} (n={len(curve.seeds)})")
            if len(curve.seeds) > 1:
                ax.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(),
                                alpha=0.2, linewidth=0)
        regular = curves["regular"].mean(metric) if "regular" in curves else [np.nan]
        if not np.isnan(regular).all():  # runs from before a metric existed have none
            best = np.nanmax(regular) if higher_is_better else np.nanmin(regular)
            ax.axhline(best, color="gray", linestyle=":", linewidth=1)
        reference = next(iter(curves.values())).reference
        present = [(key, label) for key, label in (references or {}).items() if key in reference]
        for (key, label), style in zip(present, ("--", ":", "-.")):  # close levels: told apart in the legend
            ax.axhline(reference[key], color="tab:purple", linestyle=style, linewidth=0.9,
                       label=f"{label}: {reference[key]:.3g}")
        ax.set_xscale(xscale)
        ax.set_yscale(yscale)
        if yscale == "log":  # plain numbers at 1, 2, 3, 5, 10, ...: RMSEs span a decade or two
            ax.yaxis.set_major_formatter(FuncFormatter(_plain))
            ax.yaxis.set_minor_formatter(FuncFormatter(_plain))
        ax.set_title(cell_title(cell), fontsize=10)
        ax.grid(True, which="both" if yscale == "log" else "major", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("sequence points processed" + (" (log scale)" if xscale == "log" else ""))
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel + (" (log scale)" if yscale == "log" else ""))
    best = "; dotted: regular's best" if any("regular" in curves for curves in cells.values()) else ""
    best += f"; purple: {references_are}" if references else ""
    fig.suptitle(f"{title}\nline: mean over seeds; band: {BAND} over seeds{best}",
                 fontsize=11 if cols > 1 else 10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plain(value: float, _position) -> str:
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}" if round(mantissa, 6) in (1, 2, 3, 5) else ""
