"""setup=original: the paper's code's details, each under its own key, and the ablation that
reverts them one at a time."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from conftest import REPO
from isl.tools.baselines import compose
from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN
from isl.models.original import max_weight
from isl.training.rundir import _flat

ORIGINAL = {"data.scaling": "fixed", "data.offset_min": -22.6, "data.offset_range": 55.2,
            "model.sigma_floor_px": None, "model.rho_bound": 0.95, "model.max_weight_penalty": 0.25,
            "model.init": "tf", "batching.bucket": 1, "data.count": "targets",
            "curriculum.window": "sequences", "model.nll_epsilon": 1e-10}
REVERTED = {"units": {"data.scaling": "range"},
            "mixture": {"model.sigma_floor_px": 0.34, "model.rho_bound": 0.999},
            "penalty": {"model.max_weight_penalty": 0.0}, "init": {"model.init": "torch"},
            "batching": {"batching.bucket": 50},
            "bookkeeping": {"data.count": "rows", "curriculum.window": "points", "model.nll_epsilon": 0.0}}


def flat(*overrides) -> dict:
    return _flat(OmegaConf.to_container(compose(list(overrides)), resolve=False))


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")))
def test_every_experiments_shared_values_pass_the_check_before_its_sweep(experiment):
    """isl.training.usage.CheckFirst checks a sweep's config before any job (its swept keys at their
    defaults): an experiment must not rely on a swept value to be valid."""
    import isl.tools.transfer  # noqa: F401  (its resolver, registered by run.py)
    from isl.training.train import check_values
    check_values(compose([f"experiment={experiment}"]))


@pytest.mark.parametrize("experiment", ["exp1", "exp2", "exp3", "exp4", "grid", "smoke", "ablation"])
def test_setup_original_composes_with_every_experiment(experiment):
    cfg = flat(f"experiment={experiment}", "setup=original", "curriculum=length")
    # the ablation measures the other differences on the original with isl's bookkeeping
    expected = {**ORIGINAL, **REVERTED["bookkeeping"]} if experiment == "ablation" else ORIGINAL
    assert {k: cfg[k] for k in ORIGINAL} == expected
    isl = flat(f"experiment={experiment}", "setup=isl")
    assert isl["data.scaling"] == "range" and isl["model.init"] == "torch"
    assert isl["model.sigma_floor_px"] == 0.34 and isl["batching.bucket"] == 50


def test_setup_original_tests_as_the_original_code_but_in_the_ablation():
    assert flat()["budget.test_protocol"] == "full"
    assert flat("setup=original")["budget.test_protocol"] == "original"
    assert flat("experiment=exp2", "setup=original")["budget.test_protocol"] == "original"
    assert flat("experiment=ablation")["budget.test_protocol"] == "full"  # as its setup=isl row


@pytest.mark.parametrize("revert", sorted(REVERTED))
def test_each_revert_changes_only_its_own_keys(revert):
    original = flat("setup=original", "curriculum=length")
    reverted = flat("setup=original", "curriculum=length", f"revert={revert}")
    isl = flat("curriculum=length")
    changed = {k for k in original if original[k] != reverted[k]}
    assert changed == set(REVERTED[revert])
    assert all(reverted[k] == isl[k] == v for k, v in REVERTED[revert].items())


def test_the_ablation_sweeps_every_revert_for_regular_and_length():
    from hydra import compose as hydra_compose, initialize_config_dir

    from isl.tools.baselines import ROOT
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", ["experiment=ablation"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert set(params.revert.split(",")) == {"none", *REVERTED} - {"bookkeeping"}
    assert params.curriculum == "regular,length" and len(params.seed.split(",")) >= 3
    assert cfg.budget.points >= 2_000_000


def test_exp4_is_the_full_data_comparison_with_weights_kept_along_training():
    from hydra import compose as hydra_compose, initialize_config_dir

    from isl.tools.baselines import ROOT
    from isl.training.train import kept_points
    cfg = flat("experiment=exp4")
    assert cfg["data.num_train"] is None and cfg["data.num_test"] is None   # all 60,000 / 10,000
    assert cfg["model.network"] == "lstm" and cfg["model.class_inputs"] is False
    assert (cfg["batching.by"], cfg["batching.size"]) == ("sequences", 50)
    assert cfg["budget.points"] >= 20_000_000 and cfg["budget.evals_per_decade"] == 4
    assert cfg["checkpoint.keep_per_decade"] == 4
    assert len(kept_points(cfg["budget.points"], cfg["checkpoint.keep_per_decade"])) == 13
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        sweep = hydra_compose("config", ["experiment=exp4"], return_hydra_config=True).hydra.sweeper.params
    assert sweep.curriculum == "regular,length" and sweep.seed == "1,2,3"
    conditional = compose(["experiment=exp4", "model.class_inputs=true"])
    assert SequenceMDN(**{k: v for k, v in conditional.model.items() if k != "_target_"}
                       ).backbone.lstm.input_size == 14
    assert flat()["model.class_inputs"] is False and flat()["checkpoint.keep_per_decade"] == 0
    assert flat("model=ffnn")["model.class_inputs"] is False


def test_fixed_units_are_the_original_numbers(real_source):
    dm = StrokeDataModule(real_source, num_train=300, num_test=50, scaling="fixed")
    dm.setup()
    assert dm.offset_shift.tolist() == pytest.approx([-22.6, -22.6])
    assert dm.offset_scale.tolist() == pytest.approx([55.2, 55.2])
    with pytest.raises(ValueError, match="data.offset_range"):
        StrokeDataModule(real_source, scaling="fixed", offset_range=0)


def test_tf_initialisation_matches_tf_1_defaults():
    torch.manual_seed(0)
    net = SequenceMDN(init="tf")
    lstm, hidden = net.backbone.lstm, 200
    limit0 = math.sqrt(6 / ((4 + hidden) + 4 * hidden))       # TF kernel [input + hidden, 4 hidden]
    for name in ("weight_ih_l0", "weight_hh_l0"):
        w = getattr(lstm, name)
        assert w.abs().max() <= limit0 and w.abs().max() > 0.95 * limit0
    forget = slice(hidden, 2 * hidden)
    assert (lstm.bias_ih_l0[forget] == 1).all() and (lstm.bias_hh_l0 == 0).all()
    assert lstm.bias_ih_l0[:hidden].abs().max() == 0
    bias = net.head.linear.bias                                # a 1-D Glorot: limit sqrt(3 / n)
    assert bias.abs().max() <= math.sqrt(3 / len(bias)) and bias.abs().max() > 0.5 * math.sqrt(3 / len(bias))


def test_the_max_weight_penalty_is_the_original_s_term():
    """0.25 x max(0, the largest element of every variable but the output bias), with init=tf's
    forget constant not counted (it is not a variable there); its gradient reaches that element."""
    torch.manual_seed(0)
    net = SequenceMDN(init="tf", max_weight_penalty=0.25)
    with torch.no_grad():
        net.head.linear.bias[0] = 5.0                         # excluded: the output bias
        net.backbone.lstm.weight_hh_l1[3, 7] = 0.9            # the largest counted element
    term = max_weight(net)
    assert term.item() == pytest.approx(0.9)
    term.backward()
    grad = net.backbone.lstm.weight_hh_l1.grad
    assert grad[3, 7] == 1 and grad.abs().sum() == 1
    with torch.no_grad():
        for p in net.parameters():
            p.clamp_(max=-0.1)
    assert max_weight(net).item() == 0.0                    # max(0, ...), as in the original
    with pytest.raises(ValueError, match="model.max_weight_penalty"):
        SequenceMDN(max_weight_penalty=-1)
    with pytest.raises(ValueError, match="model.init"):
        SequenceMDN(init="keras")


@pytest.mark.parametrize("points", [1_000, 300_000, 20_000_000])
@pytest.mark.parametrize("experiment", [None, "grid", "heads"])
def test_every_run_has_a_curve_by_default(points, experiment):
    from isl.training.schedule import evaluation_points
    cfg = compose([f"budget.points={points}", *([f"experiment={experiment}"] if experiment else [])])
    assert len(evaluation_points(points, cfg.budget.eval_every, cfg.budget.evals_per_decade)) >= 10
