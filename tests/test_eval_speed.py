"""Faster evaluation computes the same numbers (issue 32): a fixed checkpoint on a fixed test set
gives every metric as the evaluation before it did, and the discretised score, which integrates
only the mixture components that can matter, equals the integral over every component."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from isl.data.datamodule import StrokeDataModule
from isl.models.mdn import Mixture, _component_mass
from isl.models.module import load_model

DATA = Path(__file__).parent / "data"
# A 2 x 50 LSTM trained 100,730 points (python run.py model.hidden=50 data.num_train=2000
# budget.points=100000), optimizer state dropped, and its metrics on the first 500 MNIST test
# digits as the evaluation of 2026-12-04 (isl 87d4d7d, before this speed-up) computed them.
CHECKPOINT = DATA / "evaluation-fixed.ckpt"
BEFORE = json.loads((DATA / "evaluation-fixed.json").read_text())


def test_a_fixed_checkpoint_scores_as_it_did_before_the_speed_up(real_source):
    dm = StrokeDataModule(real_source, num_train=2000, num_test=500)
    dm.setup()
    metrics = load_model(CHECKPOINT).evaluate(dm.test_dataloader(), seed=0)
    assert set(metrics) == set(BEFORE)
    for key, value in BEFORE.items():
        assert metrics[key] == pytest.approx(value, rel=1e-6), key


def every_component(mixture: Mixture, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The cell's log mass with every component integrated (the evaluation before the speed-up)."""
    sigma = mixture.log_sigma.exp()
    za = ((low.unsqueeze(-2) - mixture.mu) / sigma).clamp(-8, 8)
    zb = ((high.unsqueeze(-2) - mixture.mu) / sigma).clamp(-8, 8)
    k = mixture.rho.shape[-1]
    mass = _component_mass(za.reshape(-1, 2), zb.reshape(-1, 2), mixture.rho.reshape(-1)).reshape(-1, k)
    return torch.logsumexp(mixture.log_pi.reshape(-1, k) + mass.log(), -1).reshape(mixture.rho.shape[:-1])


@pytest.mark.parametrize("spread", ["trained", "broad", "far"])
def test_the_cell_mass_of_the_components_that_matter_is_the_mass_of_all(spread):
    """Peaked mixtures near the lattice (most components left out), broad ones (all kept) and
    cells far from every component (masses at the floor), with correlations up to 0.999."""
    g = torch.Generator().manual_seed(0)
    n, k = 4000, 17
    cell = torch.randint(-3, 4, (n, 2), generator=g).float()
    scale = {"trained": 0.4, "broad": 3.0, "far": 0.4}[spread]
    mu = cell.unsqueeze(1) + torch.randn(n, k, 2, generator=g) * scale + (30.0 if spread == "far" else 0.0)
    log_sigma = math.log(0.34) + torch.rand(n, k, 2, generator=g) * (2.5 if spread == "broad" else 1.0)
    mixture = Mixture(log_pi=torch.log_softmax(torch.randn(n, k, generator=g) * 3, -1), mu=mu,
                      log_sigma=log_sigma, rho=0.999 * torch.tanh(torch.randn(n, k, generator=g) * 2),
                      eos_logit=None, eod_logit=None, class_logits=None)
    fast, full = mixture.cell_log_mass(cell - 0.5, cell + 0.5), every_component(mixture, cell - 0.5, cell + 0.5)
    assert torch.allclose(fast, full, rtol=1e-6, atol=1e-6), (fast - full).abs().max()
    assert torch.isfinite(fast).all()
