"""Evaluation observes, never steers: the same seed and config train identically whatever the
evaluation schedule, test protocol, logger or kept copies of the weights (issue 29)."""

from __future__ import annotations

import csv

import pytest
import torch

from test_resume import TIMING, command, run

pytestmark = pytest.mark.slow

# The length curriculum at its real threshold (4 px): its step-ups follow the training window's
# sampled RMSE, so any random draw evaluation took from training's stream would move them.
BASE = ["curriculum=length", "seed=2", "data.num_train=2000", "data.num_test=300", "budget.points=60000"]
VARIANTS = {
    "rare": ["budget.eval_every=60000", "budget.evals_per_decade=0"],
    "dense": ["budget.eval_every=15000", "budget.evals_per_decade=4", "checkpoint.keep_per_decade=3"],
    "original": ["budget.test_protocol=original", "logger=wandb"],
}


def training_path(job) -> tuple[list[dict], dict]:
    """(the training rows of metrics.csv: points, stage and train/* metrics; the final weights)."""
    with open(job / "metrics.csv", newline="") as f:
        rows = [{k: v for k, v in row.items()
                 if v and (k.startswith(("train/", "curriculum/")) or k in ("points", "lr"))
                 and not any(t in k for t in TIMING)}
                for row in csv.DictReader(f)]
    rows = [r for r in rows if any(k.startswith(("train/", "curriculum/")) for k in r)]
    weights = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return rows, weights


def test_the_training_path_is_the_same_whatever_evaluation_does(full_data_dir, tmp_path):
    paths = {}
    for name, overrides in VARIANTS.items():
        run(command(tmp_path, f"name={name}", *BASE, *overrides), full_data_dir)
        paths[name] = training_path(tmp_path / name)
    rows, weights = paths["rare"]
    stages = [r["points"] for r in rows if "curriculum/stage" in r]
    assert len(stages) >= 4, f"the curriculum should step up several times within the budget: {stages}"
    for name in ("dense", "original"):
        other_rows, other_weights = paths[name]
        assert other_rows == rows, f"{name}: training rows differ from those of rare evaluations"
        assert other_weights.keys() == weights.keys()
        for key in weights:
            assert torch.equal(other_weights[key], weights[key]), f"{name}: weight {key} differs"
