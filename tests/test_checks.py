"""One rule for every positive-integer setting: an integer >= 1, never a bool, named when wrong."""

from __future__ import annotations

import numpy as np
import pytest

from isl.training.callbacks import PointsSchedule
from isl.training.checkpoints import PointsCheckpoint
from isl.core.checks import positive_int
from isl.curricula.length import Length
from isl.curricula.sequences import Sequences
from isl.data.sampler import CurriculumState, check_batching
from isl.data.datamodule import StrokeDataModule
from isl.training.devices import acquire_slot
from isl.tools.generate import generate
from isl.models.module import SequenceMDN
from isl.viz.snapshots import DensitySnapshots


def test_positive_int_takes_integers_from_one_and_none_only_where_it_means_something():
    assert positive_int("k", 3) == 3 and type(positive_int("k", np.int64(3))) is int
    assert positive_int("k", None, none="null (all)") is None
    for bad in (0, -2, 2.0, "3", True, None):
        with pytest.raises(ValueError, match=r"^k must be a positive integer, got"):
            positive_int("k", bad)
    with pytest.raises(ValueError, match=r"k must be a positive integer or null \(all\), got 0"):
        positive_int("k", 0, none="null (all)")


SETTINGS = {  # every positive-integer setting, made with a bad value
    "budget.points": lambda v: PointsSchedule(v, 10),
    "budget.eval_every": lambda v: PointsSchedule(10, v),
    "checkpoint.every_points": lambda v: PointsCheckpoint(v, "/nowhere"),
    "keep_at": lambda v: PointsCheckpoint(10, "/nowhere", keep_at=[100, v]),
    "curriculum.min_points": lambda v: Length(min_points=v),
    "curriculum.start_sequences": lambda v: Sequences(start_sequences=v),
    "curriculum.window_factor": lambda v: Sequences(window_factor=v),
    "curriculum max_length": lambda v: setattr(CurriculumState(), "max_length", v),
    "curriculum num_sequences": lambda v: setattr(CurriculumState(), "num_sequences", v),
    "batching.size": lambda v: check_batching("sequences", v),
    "batching.bucket": lambda v: check_batching("sequences", 50, v),
    "data.num_train": lambda v: StrokeDataModule(None, num_train=v),
    "data.num_test": lambda v: StrokeDataModule(None, num_test=v),
    "model.hidden": lambda v: SequenceMDN(hidden=v),
    "model.components": lambda v: SequenceMDN(components=v),
    "viz.density_every": lambda v: DensitySnapshots(v),
    "viz.density_digits": lambda v: DensitySnapshots(100, digits=v),
    "hydra.launcher.per_gpu": lambda v: acquire_slot("/nowhere", 1, per_gpu=v).__enter__(),
    "n": lambda v: generate(None, v),
}


@pytest.mark.parametrize("key", SETTINGS)
@pytest.mark.parametrize("bad", [0, True])
def test_every_positive_integer_setting_refuses_zero_and_bools_naming_its_key(key, bad):
    with pytest.raises(ValueError, match=f"^{key} must be a positive integer"):
        SETTINGS[key](bad)
