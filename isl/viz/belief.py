"""Class belief along a sequence: the network's 10 class probabilities after every step, beside
the digit as drawn up to that step (the figures of de Jong 2016 for a 0, a 3 and a 9)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import isl.viz  # noqa: F401  (Agg backend, before any figure)
from isl.viz.strokes import draw


def model_inputs(model, steps_pixels: np.ndarray) -> torch.Tensor:
    """A (T, 4) pixel sequence as the network reads it: (1, T, 4), dx and dy in input units,
    ``model.to_units`` (as ``StrokeDataModule.collate`` does, start row included)."""
    steps = torch.as_tensor(np.asarray(steps_pixels), dtype=torch.float32, device=model.offset_scale.device)
    steps = steps.clone()
    steps[:, :2] = model.to_units(steps[:, :2])
    return steps.unsqueeze(0)


@torch.no_grad()
def predict(model, steps_pixels: np.ndarray, label: int | None = None):
    """The model's predicted Mixture for every step of one sequence (batch dimension removed);
    ``label``: its class, given to a class-conditional model (``model.class_inputs``) and not
    needed by any other."""
    was_training = model.training
    model.eval()
    try:
        inputs = model_inputs(model, steps_pixels)
        classes = None if label is None else torch.tensor([int(label)], device=inputs.device)
        mixture, _ = model(inputs, classes=None if classes is None else model.classes_for(classes))
    finally:
        model.train(was_training)
    return mixture.map(lambda t: t[0])


def class_probabilities(model, steps_pixels: np.ndarray) -> np.ndarray:
    """(T, 10): softmax of the class logits after each step of the sequence, of a model that
    reads the strokes alone (one told the class has nothing to believe)."""
    if model.hparams.class_inputs:
        raise ValueError("the class belief needs a model with model.class_inputs=false; this model "
                         "has model.class_inputs=true")
    logits = predict(model, steps_pixels).class_logits
    return torch.softmax(logits.double(), dim=-1).cpu().numpy()


def _panel_steps(length: int, panels: int) -> list[int]:
    """Steps at which to show the digit drawn so far: spread over the sequence, last one included."""
    picks = np.unique(np.round(np.linspace(0, length - 1, panels + 1)[1:]).astype(int))
    return [int(t) for t in picks]


def plot_class_belief(model, steps_pixels: np.ndarray, label: int, path: str | Path,
                      panels: int = 6) -> Path:
    """Write a PNG: a row of the digit drawn up to a few steps t, above the 10 class
    probabilities against the step, the true class ``label`` drawn thick. Returns the path."""
    steps_pixels = np.asarray(steps_pixels)
    probs = class_probabilities(model, steps_pixels)
    length = len(probs)
    label = int(label)
    shown = _panel_steps(length, panels)

    fig = plt.figure(figsize=(1.45 * max(len(shown), 4), 4.2))
    grid = fig.add_gridspec(2, len(shown), height_ratios=[1, 1.5], hspace=0.22)
    for j, t in enumerate(shown):
        ax = fig.add_subplot(grid[0, j])
        draw(ax, steps_pixels[:t + 1])
        guess = int(probs[t].argmax())
        ax.set_title(f"step {t}\np({label}) = {probs[t, label]:.2f}", fontsize=8,
                     color="tab:green" if guess == label else "black")

    ax = fig.add_subplot(grid[1, :])
    x = np.arange(length)
    colors = plt.get_cmap("tab10").colors
    for c in range(probs.shape[1]):
        if c == label:
            continue
        ax.plot(x, probs[:, c], color=colors[c], linewidth=1, alpha=0.75, label=str(c))
    ax.plot(x, probs[:, label], color=colors[label], linewidth=3.2, label=f"{label} (true)", zorder=5)
    ax.fill_between(x, 0, probs[:, label], color=colors[label], alpha=0.15, zorder=1)
    for t in shown:
        ax.axvline(t, color="0.6", linewidth=0.6, linestyle=":")
    ax.set_xlim(0, max(length - 1, 1))
    ax.set_ylim(0, 1)
    ax.set_xlabel("step t (points of the sequence read so far)")
    ax.set_ylabel("P(class | steps ≤ t)")
    ax.legend(ncol=1, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
              title="class", title_fontsize=7)
    final = int(probs[-1].argmax())
    fig.suptitle(f"class belief while reading a {label}: final guess {final} "
                 f"(p = {probs[-1, final]:.2f})", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
