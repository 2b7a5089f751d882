"""Where a run by points is evaluated and keeps its weights: plain arithmetic, free of Lightning,
so that the report and the sweep tools (imported by run.py before Hydra configures logging)
can read a run's schedule without importing Lightning early."""

from __future__ import annotations


def evaluation_points(budget: int, eval_every: int, per_decade: int = 0) -> list[int]:
    """Where the test set is evaluated: at 0, every ``eval_every`` points, ``per_decade``
    log-spaced points per decade over the budget's last three decades (so curves have shape at
    any budget, and suit log-scale figures), and at the budget."""
    return sorted({0, *range(eval_every, budget, eval_every), *log_spaced(budget, per_decade)})


def log_spaced(budget: int, per_decade: int) -> list[int]:
    """``per_decade`` log-spaced points per decade over the budget's last three decades, and the
    budget: budget / 1000, ..., budget."""
    return sorted({budget, *(round(budget * 10 ** (k / per_decade - 3)) for k in range(3 * per_decade))})
