"""The schema of ``conf/config.yaml``: Hydra checks names and types against it when it composes
the config, so a typo or a wrong type fails before anything runs, naming the key. Ranges are
checked by the classes the values go to (e.g. ``budget.points must be a positive integer``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

import isl.transfer  # noqa: F401  (registers ${isl.predictor:...} for experiment=transfer)


@dataclass
class Budget:
    points: int = MISSING       # sequence points processed before training stops
    eval_every: int = MISSING   # test evaluation every this many training points


@dataclass
class Paths:
    root: str = MISSING
    data_dir: str = MISSING
    runs_dir: str = MISSING


@dataclass
class Viz:
    density_every: Optional[int] = None   # density snapshot every N training batches; null: off
    density_digits: int = 1


@dataclass
class Config:
    task: str = MISSING
    seed: int = MISSING
    budget: Budget = field(default_factory=Budget)
    paths: Paths = field(default_factory=Paths)
    # Groups: their own classes check their values.
    data: Any = MISSING
    batching: Any = MISSING
    model: Any = MISSING
    curriculum: Any = MISSING
    trainer: Any = MISSING
    logger: Any = MISSING
    transfer: Any = None        # experiment=transfer: which predictors classifiers start from
    viz: Viz = field(default_factory=Viz)


ConfigStore.instance().store(name="schema", node=Config)
