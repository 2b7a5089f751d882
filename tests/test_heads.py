"""Both heads through every part of a run: the moves head (model.head=moves) with the options a
mixture-density network has, end to end through run.py (resume and DDP: test_resume, test_ddp)."""

from __future__ import annotations

import csv
import math

import pytest
import torch

import preloaded
from conftest import REPO
from test_resume import command, env, run

pytestmark = pytest.mark.slow

SMALL = ["data.num_train=500", "data.num_test=100", "budget.points=6000", "budget.eval_every=3000",
         "trainer.log_every_n_steps=2", "model.hidden=32"]
OPTIONS = {
    "ffnn": ["model=ffnn"],
    "length-points": ["curriculum=length", "curriculum.threshold=50", "curriculum.min_points=1000",
                      "batching=points", "batching.size=1000"],
    "classes": ["curriculum=classes", "curriculum.threshold=50", "curriculum.min_points=1000"],
    "sequences": ["curriculum=sequences", "curriculum.threshold=50"],
    "class-inputs": ["model.class_inputs=true", "model.class_dropout=0.2"],
    "original": ["setup=original"],
    "wandb": ["logger=wandb"],
}


def rows(job) -> list[dict]:
    with open(job / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("option", OPTIONS)
def test_the_moves_head_runs_with_every_option(full_data_dir, tmp_path, option):
    run(command(tmp_path, f"name={option}", "model.head=moves", *SMALL, *OPTIONS[option]), full_data_dir)
    logged = rows(tmp_path / option)
    tested = [r for r in logged if r.get("test/bits_per_point")]
    assert len(tested) >= 2 and not any(r.get("test/nll_px") for r in logged)   # no density: no NLL
    for r in tested:
        assert math.isfinite(float(r["test/bits_per_point"])) and float(r["test/rmse_sampled"]) > 0
    model = torch.load(tmp_path / option / "checkpoints" / "last.ckpt", weights_only=True)
    assert model["hyper_parameters"]["head"] == "moves"


def test_a_classifier_starts_from_a_moves_predictor(full_data_dir, tmp_path):
    """Transfer (task=classify, model.init_from) from a moves-head predictor: the classifier takes
    its weights and learns the class; a predictor with the other head is refused by name."""
    run(command(tmp_path, "name=predictor", "model.head=moves", *SMALL), full_data_dir)
    predictor = tmp_path / "predictor" / "checkpoints" / "last.ckpt"
    run(command(tmp_path, "name=classifier", "task=classify", "model.head=moves",
                f"model.init_from={predictor}", *SMALL), full_data_dir)
    tested = [r for r in rows(tmp_path / "classifier") if r.get("test/accuracy")]
    assert float(tested[-1]["test/accuracy"]) > 0.1
    refused = preloaded.run(command(tmp_path, "name=mixed", "task=classify", f"model.init_from={predictor}",
                                    *SMALL), cwd=REPO, env=env(full_data_dir), capture_output=True, text=True,
                            timeout=300)
    assert refused.returncode != 0 and "different network" in refused.stdout + refused.stderr
