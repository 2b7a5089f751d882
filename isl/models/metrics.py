"""The paper's error measure, shared by the model's metrics and the curricula that read them."""

from __future__ import annotations


def rmse_per_coordinate(sq_err: float, points: float) -> float:
    """RMSE in pixels per coordinate from a sum of squared (dx, dy) errors over ``points``
    points: sqrt(sq_err / (2 points)), the paper's measure (its code: stats.py RMSEStat, fed by
    train.py with ``log_sse(sse_stroke, 2 * nrrowsused)``), not the Euclidean distance."""
    return (sq_err / (2 * max(points, 1.0))) ** 0.5
