"""experiment=warmup (issue 19): five arms that differ only in the curriculum and the
learning-rate warm-up, each in two input units; and the new keys leave old runs resumable."""

from __future__ import annotations

from omegaconf import OmegaConf

import isl.training.config  # noqa: F401  (the schema, for Hydra's own compose)
from isl.tools.baselines import compose
from isl.training.rundir import _flat

# in the sweep's order: regular and length first, the units check of results.md section 8
ARMS = {"regular": ("isl.curricula.regular.Regular", 0),
        "length": ("isl.curricula.length.Length", 0),
        "regular_lr_warmup": ("isl.curricula.regular.Regular", 600000),
        "length_warmup": ("isl.curricula.length_warmup.LengthWarmup", 0),
        "length_warmup_lr_warmup": ("isl.curricula.length_warmup.LengthWarmup", 600000)}


def flat(*overrides) -> dict:
    return _flat(OmegaConf.to_container(compose(list(overrides)), resolve=True))


def test_the_sweep_is_five_arms_by_two_units_by_three_seeds():
    from hydra import compose as hydra_compose, initialize_config_dir

    from isl.tools.baselines import ROOT
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = hydra_compose("config", ["experiment=warmup"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.arm.split(",") == list(ARMS)
    assert params["data.scaling"].split(",") == ["fixed", "std"] and len(params.seed.split(",")) >= 3
    assert cfg.budget.points >= 5_000_000 and cfg.budget.evals_per_decade == 4


def test_the_arms_differ_in_the_curriculum_and_the_lr_warm_up_alone():
    configs = {arm: flat("experiment=warmup", f"arm={arm}") for arm in ARMS}
    for arm, (target, lr_warmup) in ARMS.items():
        config = configs[arm]
        assert (config["curriculum._target_"], config["model.lr_warmup_points"]) == (target, lr_warmup)
        others = {k: v for k, v in config.items() if not k.startswith(("curriculum.", "model.lr_warmup"))}
        assert others == {k: v for k, v in configs["regular"].items()
                          if not k.startswith(("curriculum.", "model.lr_warmup"))}, arm
    regular = configs["regular"]
    assert (regular["model.network"], regular["batching.by"], regular["batching.size"],
            regular["batching.bucket"], regular["batching.bucket_sort"]) == ("lstm", "sequences", 50, 50, "stratified")
    assert (regular["data.scaling"], regular["data.offset_min"], regular["data.offset_range"]) == ("fixed", -22.6, 55.2)
    # the rule: the length warm-up takes the points the length curriculum took, the lr warm-up 10x
    for arm in ("length_warmup", "length_warmup_lr_warmup"):
        assert configs[arm]["curriculum.duration"] == 60000
        assert configs[arm]["curriculum.step_size"] == "double" and configs[arm]["curriculum.min_seq_length"] == 2
    assert configs["regular_lr_warmup"]["model.lr_warmup_points"] == 10 * 60000
    assert flat("experiment=warmup", "data.scaling=std")["data.scaling"] == "std"


def test_the_new_settings_compose_from_the_command_line():
    assert flat("curriculum=length_warmup")["curriculum._target_"] == "isl.curricula.length_warmup.LengthWarmup"
    assert flat("model.lr_warmup_points=5000", "model.lr_warmup_start=0.1")["model.lr_warmup_points"] == 5000
