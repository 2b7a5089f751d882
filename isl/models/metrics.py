"""The metrics: the paper's error measure, and the sums a model accumulates between log rows."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from isl.models.mdn import Mixture
from isl.models.moves import Moves


def rmse_per_coordinate(sq_err: float, points: float) -> float:
    """RMSE in pixels per coordinate from a sum of squared (dx, dy) errors over ``points``
    points: sqrt(sq_err / (2 points)), the paper's measure (its code: stats.py RMSEStat, fed by
    train.py with ``log_sse(sse_stroke, 2 * nrrowsused)``), not the Euclidean distance."""
    return (sq_err / (2 * max(points, 1.0))) ** 0.5


# Accumulated between log calls, as sums over points (or sequences, for accuracy); "bits" only
# in evaluation (the discretised score costs a quadrature per component).
SUMS = ("loss", "nll_px", "bits", "sq_err_sampled", "sq_err_expected", "points", "correct", "sequences")


def metric_means(sums: dict[str, float], prefix: str, discrete: bool = False,
                 density: bool = True) -> dict[str, float]:
    """Metric sums over points -> the logged means; RMSE in pixels per coordinate. ``loss`` is
    the training objective (densities in input units); ``nll_px`` (with ``density``: a head with
    a density, the MDN) the prediction NLL per point with the offset density in pixels
    (comparable across units); ``bits_per_point`` (with ``discrete``) the discretised score."""
    points, sequences = max(sums["points"], 1.0), max(sums["sequences"], 1.0)
    discretised = {f"{prefix}/bits_per_point": sums["bits"] / points} if discrete else {}
    nll_px = {f"{prefix}/nll_px": sums["nll_px"] / points} if density else {}
    return {f"{prefix}/loss": sums["loss"] / points, **nll_px,
            **discretised,
            f"{prefix}/rmse_sampled": rmse_per_coordinate(sums["sq_err_sampled"], points),
            f"{prefix}/rmse_expected": rmse_per_coordinate(sums["sq_err_expected"], points),
            f"{prefix}/accuracy": sums["correct"] / sequences}


def discretised_bits(prediction: Mixture | Moves, target: torch.Tensor, mask: torch.Tensor,
                     true_xy: torch.Tensor, to_units) -> torch.Tensor:
    """Sum over real points of -log2 P(step) with every part of a step discrete: the mass of
    the true offset's pixel cell (offset +- 0.5 px) times the two Bernoulli probabilities.
    Bounded (P <= 1) and the same in every input unit, unlike a density. The moves head's
    P(row) is already that (isl.models.moves). ``true_xy``: the true offsets in pixels;
    ``to_units``: pixels -> the model's input units."""
    masked = prediction.map(lambda t: t[mask])
    if isinstance(masked, Moves):
        return -masked.log_prob(target[mask]).sum() / math.log(2)
    cell = torch.round(true_xy)
    log_mass = masked.cell_log_mass(to_units(cell - 0.5), to_units(cell + 0.5))
    flags = target[mask][:, 2:]
    flag_nll = (F.binary_cross_entropy_with_logits(masked.eos_logit, flags[:, 0], reduction="sum")
                + F.binary_cross_entropy_with_logits(masked.eod_logit, flags[:, 1], reduction="sum"))
    return (flag_nll - log_mass.sum()) / math.log(2)
