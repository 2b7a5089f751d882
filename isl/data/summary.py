"""What a built split holds, in a few lines a person can read."""

from __future__ import annotations

import numpy as np

from isl.data.sequences import StrokeSet


def describe(name: str, strokes: StrokeSet) -> str:
    lengths = strokes.lengths
    counts = np.bincount(strokes.labels, minlength=10)
    # every stroke ends with an end-of-stroke flag, the last one on the end-of-digit row
    n_strokes = np.add.reduceat(strokes.steps[:, 2].astype(np.int64), strokes.starts[:-1])
    p5, p50, p95 = np.percentile(lengths, [5, 50, 95])
    return "\n".join([
        f"{name}: {len(strokes):,} sequences, {len(strokes.steps):,} points",
        "  per class: " + "  ".join(f"{c}:{n:,}" for c, n in enumerate(counts)),
        f"  length: mean {lengths.mean():.1f}, min {lengths.min()}, 5% {p5:.0f}, median {p50:.0f}, "
        f"95% {p95:.0f}, max {lengths.max()}",
        f"  strokes per digit: mean {n_strokes.mean():.2f}, max {n_strokes.max()}",
    ])
