"""The mixture-density output of Graves (2013), "Generating Sequences With Recurrent Neural
Networks", section 4.1, extended with a second Bernoulli (end of digit) and class logits.

Per step the head maps the network's hidden state to
  e        end-of-stroke probability           (eq. 17; kept as a logit, e = sigmoid(e_hat))
  pi^j     mixture weights, softmax            (eq. 18)
  mu^j     means                               (eq. 19)
  sigma^j  standard deviations, exp            (eq. 20)
  rho^j    correlations, tanh                  (eq. 21)
plus an end-of-digit logit and 10 class logits. The density of the next offset is the mixture
of bivariate Gaussians of eq. 22-24 and the loss its negative log-likelihood with the Bernoulli
terms (eq. 25). Everything is computed on log densities with log-sum-exp: no epsilons (except
``model.nll_epsilon``, the paper's code's, by name).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Bounds of the parameterisation, not of the data. Offsets lie on a pixel grid, so the
# likelihood grows without end as a component narrows onto one grid point; left alone, sigma
# collapses until float32 overflows in eq. 24 and the gradients turn NaN. So sigma has a soft
# floor, set in pixels (``model.sigma_floor_px``: the same constraint in every input unit) and
# converted to input units by the module, and |rho| < 0.999, keeping 1 - rho^2 (eq. 23) away
# from 0. The default floor, 0.34 px, is 0.01 input units under range scaling (MNIST offsets
# span 34 px), the value this project trained with from the start. Sampling noise at the floor
# adds in quadrature, so it can raise a sampled RMSE r by at most 0.34^2 / 2r px (0.06 at 1 px).
# Smaller floors were as safe (1e-3 and 1e-4 units trained 10^6 points without NaN) but brought
# the sampled test RMSE down more slowly (range scaling, 10^6 points, mean of 5 seeds: 3.0 px at
# 1e-2, 3.6 at 3e-3, 3.9 at 1e-3; no clear difference by 3 x 10^6). The paper's code has no
# floor (sigma = exp) and rho = 0.95 tanh: ``sigma_floor_px=null rho_bound=0.95``.
RHO_BOUND = 0.999
SIGMA_FLOOR_PX = 0.34
LOG_2PI = math.log(2 * math.pi)


@dataclass
class Mixture:
    """Parameters of the predicted next-step distribution, each of shape (..., K) or (...)."""

    log_pi: torch.Tensor      # log mixture weights (normalised)
    mu: torch.Tensor          # (..., K, 2)
    log_sigma: torch.Tensor   # (..., K, 2)
    rho: torch.Tensor         # (..., K)
    eos_logit: torch.Tensor   # (...)
    eod_logit: torch.Tensor   # (...)
    class_logits: torch.Tensor  # (..., C)

    def map(self, fn) -> Mixture:
        """The same mixture with ``fn`` applied to every parameter tensor (e.g. a slice)."""
        return Mixture(**{name: fn(getattr(self, name)) for name in self.__dataclass_fields__})

    def guide(self, free: Mixture, weight: float) -> Mixture:
        """Classifier-free guidance (Ho & Salimans 2022) on the mixture's categorical parts: the
        log weights and the flag logits moved ``weight`` times their difference from ``free``'s
        (the prediction given no class); the components themselves stay the conditional ones."""
        log_pi = torch.log_softmax(self.log_pi + weight * (self.log_pi - free.log_pi), dim=-1)
        return Mixture(log_pi, self.mu, self.log_sigma, self.rho,
                       self.eos_logit + weight * (self.eos_logit - free.eos_logit),
                       self.eod_logit + weight * (self.eod_logit - free.eod_logit), self.class_logits)

    def log_density(self, xy: torch.Tensor) -> torch.Tensor:
        """log of eq. 22's mixture density at offsets ``xy`` (..., 2)."""
        return torch.logsumexp(self.log_pi + gaussian_log_density(xy, self.mu, self.log_sigma, self.rho),
                               dim=-1)

    def cell_log_mass(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """log of the mixture's probability mass on the rectangles [low, high] (..., 2): the
        discretised likelihood of an offset on a pixel grid (its cell is offset +- 0.5 px).

        Per component, P = int_{x in cell} N(x) P(y in cell | x) dx (``_component_mass``). Only
        the components that can matter are integrated: a component's mass is at most the
        smaller of its two marginal masses on the cell, and one whose weighted bound is below
        e^-30 of the mass of the component with the largest bound (a lower bound of the
        mixture's) changes the log mass by less than 17 e^-30; a trained network's mixture
        leaves most components out. Masses are floored at 1e-30 (a cell far from every
        component), bounds alike, so a floored component is kept wherever it was counted.
        """
        sigma = self.log_sigma.exp()
        za = ((low.unsqueeze(-2) - self.mu) / sigma).clamp(-_Z_CLIP, _Z_CLIP)  # (..., K, 2)
        zb = ((high.unsqueeze(-2) - self.mu) / sigma).clamp(-_Z_CLIP, _Z_CLIP)
        # Each marginal's mass on the side of 0 where float32 keeps it (1 - 1e-9 rounds to 1).
        upper = za > 0
        marginal = torch.where(upper, _std_normal_cdf(-za) - _std_normal_cdf(-zb),
                               _std_normal_cdf(zb) - _std_normal_cdf(za)).min(-1).values
        bound = self.log_pi + torch.log(marginal.clamp_min(_MASS_MIN))               # (..., K)
        k = bound.shape[-1]
        za, zb, rho, bound = za.reshape(-1, k, 2), zb.reshape(-1, k, 2), self.rho.reshape(-1, k), bound.reshape(-1, k)
        log_pi = self.log_pi.reshape(-1, k)
        rows = torch.arange(len(bound), device=bound.device)
        top = bound.argmax(-1)
        lower = log_pi[rows, top] + torch.log(_component_mass(za[rows, top], zb[rows, top], rho[rows, top]))
        point, component = torch.nonzero(bound >= (lower - _NEGLIGIBLE).unsqueeze(-1), as_tuple=True)
        terms = torch.full_like(bound, -math.inf)
        terms[point, component] = log_pi[point, component] + torch.log(
            _component_mass(za[point, component], zb[point, component], rho[point, component]))
        return torch.logsumexp(terms, dim=-1).reshape(self.rho.shape[:-1])

    def mean(self) -> torch.Tensor:
        """The mixture's expected offset, sum_j pi^j mu^j."""
        return (self.log_pi.exp().unsqueeze(-1) * self.mu).sum(dim=-2)

    def nll(self, target: torch.Tensor, mask: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
        """The training loss, eq. 25 (``prediction_loss``)."""
        return prediction_loss(self, target, mask, epsilon)

    def sample(self, generator: torch.Generator | None = None, bias: float = 0.0,
               temperature: float = 1.0) -> torch.Tensor:
        """Draw one offset per position, (..., 2).

        ``bias`` >= 0 is Graves's biased sampling (section 5.4): sigma shrinks by exp(-bias),
        weights come from the logits scaled by (1 + bias); 0 is plain sampling. ``temperature``
        T > 0 is sketch-rnn's (Ha & Eck 2017): log weights divided by T, variances times T; 1 is
        plain sampling. Both may be given: the bias applies first.
        """
        log_pi, log_sigma = self.log_pi, self.log_sigma
        if bias:
            log_pi, log_sigma = torch.log_softmax(log_pi * (1 + bias), dim=-1), log_sigma - bias
        if temperature != 1.0:
            log_pi, log_sigma = torch.log_softmax(log_pi / temperature, dim=-1), log_sigma + 0.5 * math.log(temperature)
        j = torch.multinomial(log_pi.exp().reshape(-1, log_pi.shape[-1]), 1, generator=generator)
        j = j.reshape(log_pi.shape[:-1] + (1,))
        mu = self.mu.gather(-2, j.unsqueeze(-1).expand(*j.shape, 2)).squeeze(-2)
        sigma = log_sigma.gather(-2, j.unsqueeze(-1).expand(*j.shape, 2)).squeeze(-2).exp()
        rho = self.rho.gather(-1, j).squeeze(-1)
        z = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        # Correlated pair from independent normals: x2 = rho z1 + sqrt(1 - rho^2) z2.
        z2 = rho * z[..., 0] + torch.sqrt(1 - rho ** 2) * z[..., 1]
        return mu + sigma * torch.stack([z[..., 0], z2], dim=-1)

    def sample_row(self, generator: torch.Generator | None = None, temperature: float = 1.0,
                   bias: float = 0.0) -> torch.Tensor:
        """Draw the next row (..., 4): the offset (``sample``) and the two flags, each from its
        Bernoulli with the logit divided by ``temperature`` (the bias leaves the flags alone)."""
        xy = self.sample(generator, bias, temperature)
        logits = torch.stack([self.eos_logit, self.eod_logit], -1) / temperature
        return torch.cat([xy, torch.bernoulli(torch.sigmoid(logits), generator=generator)], dim=-1)


_NODES, _Z_CLIP, _MASS_MIN, _NEGLIGIBLE = 16, 8.0, 1e-30, 30.0


def _component_mass(za: torch.Tensor, zb: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    """Mass of standard bivariate normals of correlation ``rho`` (n) on the rectangles [za, zb]
    (n, 2) of standardised coordinates, floored at 1e-30: P = int N(z_x) P(z_y in cell | z_x)
    dz_x, with z_y | z_x normal (mean rho z_x, sd sqrt(1 - rho^2)); the outer integral clipped
    to |z_x| <= 8 and to where z_y | z_x can reach the cell, by Gauss-Legendre quadrature on 16
    nodes. Against scipy's bivariate normal CDF (300 random components, |rho| < 0.999): exact to
    1e-9 bits for sigma >= 0.34 cell widths (isl's floor), < 0.001 bits for sigma >= 0.05,
    < 0.04 bits down to 0.001 (no floor). Against a brute-force integration: tests/test_models.py."""
    nodes, weights = _gauss_legendre(_NODES, za.dtype, za.device)
    spread = torch.sqrt(1 - rho ** 2)
    # Where y | x can reach the cell at all: rho z_x within the y-cell's z-range +- 8 spread.
    reach_lo = torch.minimum(za[..., 1] - _Z_CLIP * spread, zb[..., 1] + _Z_CLIP * spread)
    reach_hi = torch.maximum(za[..., 1] - _Z_CLIP * spread, zb[..., 1] + _Z_CLIP * spread)
    lo_x, hi_x = za[..., 0], zb[..., 0]
    strong = rho.abs() > 1e-3
    by_rho = torch.stack([reach_lo, reach_hi]) / torch.where(strong, rho, torch.ones_like(rho))
    lo_x = torch.where(strong, torch.maximum(lo_x, by_rho.min(0).values), lo_x)
    hi_x = torch.where(strong, torch.minimum(hi_x, by_rho.max(0).values), hi_x).clamp_min(lo_x)
    half = (hi_x - lo_x) / 2
    zx = (lo_x + half).unsqueeze(-1) + half.unsqueeze(-1) * nodes                  # (n, N)
    rho, spread = rho.unsqueeze(-1), spread.unsqueeze(-1)
    cond = (_std_normal_cdf((zb[..., 1:2] - rho * zx) / spread)
            - _std_normal_cdf((za[..., 1:2] - rho * zx) / spread))
    density = torch.exp(-0.5 * zx ** 2) / math.sqrt(2 * math.pi)
    return (half * (weights * density * cond).sum(-1)).clamp_min(_MASS_MIN)


def _gauss_legendre(n: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (torch.as_tensor(nodes, dtype=dtype, device=device),
            torch.as_tensor(weights, dtype=dtype, device=device))


def _std_normal_cdf(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-z / math.sqrt(2))


def gaussian_log_density(xy: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor,
                         rho: torch.Tensor) -> torch.Tensor:
    """log N(x | mu, sigma, rho) of eq. 23-24 for every component: xy (..., 2) -> (..., K)."""
    z = (xy.unsqueeze(-2) - mu) * torch.exp(-log_sigma)           # standardised, (..., K, 2)
    one_minus_rho2 = 1 - rho ** 2
    big_z = z[..., 0] ** 2 + z[..., 1] ** 2 - 2 * rho * z[..., 0] * z[..., 1]  # eq. 24
    return (-LOG_2PI - log_sigma.sum(-1) - 0.5 * torch.log(one_minus_rho2)
            - big_z / (2 * one_minus_rho2))


class MixtureDensityHead(nn.Module):
    """Hidden state (..., H) -> Mixture with ``components`` bivariate Gaussians (eq. 16-21).

    ``log_sigma_min`` (a buffer, per coordinate, in input units) is the soft floor of log sigma;
    ``floor=False`` gives eq. 20 as written (sigma = exp), as the paper's code has it.
    """

    def __init__(self, hidden: int, components: int = 17, classes: int = 10, floor: bool = True,
                 rho_bound: float = RHO_BOUND):
        super().__init__()
        self.components, self.classes = components, classes
        self.floor, self.rho_bound = floor, rho_bound
        # per component: weight, 2 means, 2 log-sigmas, correlation; then eos, eod, classes
        self.linear = nn.Linear(hidden, 6 * components + 2 + classes)
        self.register_buffer("log_sigma_min", torch.full((2,), math.log(0.01)))

    def forward(self, h: torch.Tensor) -> Mixture:
        k = self.components
        out = self.linear(h)
        pi_hat, mu, log_sigma, rho_hat, rest = torch.split(out, [k, 2 * k, 2 * k, k, 2 + self.classes],
                                                           dim=-1)
        log_sigma = log_sigma.unflatten(-1, (k, 2))
        if self.floor:  # a smooth max(log sigma, log_sigma_min)
            log_sigma = self.log_sigma_min + F.softplus(log_sigma - self.log_sigma_min)
        return Mixture(log_pi=torch.log_softmax(pi_hat, dim=-1),                  # eq. 18
                       mu=mu.unflatten(-1, (k, 2)),                               # eq. 19
                       log_sigma=log_sigma,                                       # eq. 20, log
                       rho=self.rho_bound * torch.tanh(rho_hat),                  # eq. 21
                       eos_logit=rest[..., 0], eod_logit=rest[..., 1],            # eq. 17
                       class_logits=rest[..., 2:])


def prediction_loss(mixture: Mixture, target: torch.Tensor, mask: torch.Tensor,
                    epsilon: float = 0.0) -> torch.Tensor:
    """Eq. 25 per real step, averaged over the real steps: -log p(offset) + BCE(eos) + BCE(eod).

    ``target`` (B, T, 4) holds the next steps (dx, dy, eos, eod); ``mask`` (B, T) marks real ones.
    Padding and curriculum-truncated steps are excluded by the mask, not weighted down.
    ``epsilon`` > 0 takes -log(P + epsilon) of each of the three probabilities instead, as the
    paper's code does (model.py get_stroke_loss, 1e-10): a term's loss is then bounded by
    -log(epsilon) and its gradient vanishes where P underflows it.
    """
    log_ps = [mixture.log_density(target[..., :2]),
              -F.binary_cross_entropy_with_logits(mixture.eos_logit, target[..., 2], reduction="none"),
              -F.binary_cross_entropy_with_logits(mixture.eod_logit, target[..., 3], reduction="none")]
    if epsilon:
        log_ps = [torch.logaddexp(p, torch.full_like(p, math.log(epsilon))) for p in log_ps]
    return -sum(log_ps)[mask].mean()
