"""The schema of ``conf/config.yaml``: Hydra checks names and types against it when it composes
the config, so a typo or a wrong type fails before anything runs, naming the key. Ranges are
checked by the classes the values go to (e.g. ``budget.points must be a positive integer``),
which ``isl.usage.CheckFirst`` builds before a run's directory is created."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


# Overrides that say where things are or how they are logged, left out of directory names.
UNNAMED = ("paths.", "data.path", "data.mnist_dir", "logger", "checkpoint.", "name=", "hydra.")
_NAME_LIMIT = 100  # "multirun/" + a name stays within W&B's 128-character group names


def run_name(name: str | None, overrides) -> str:
    """The directory name of a run (or sweep): ``name`` if given, else its command-line
    overrides written so that the name can be passed back as an override value
    (``model=ffnn seed=1,2`` -> ``model-ffnn_seed-1+2``), else ``default``. Registered as
    ``isl.run_name``."""
    if name:
        return _safe(str(name))
    picked = [str(o) for o in overrides or [] if not str(o).lstrip("+~").startswith(UNNAMED)]
    text = "_".join(_safe(o.replace("=", "-", 1).replace(",", "+")) for o in picked) or "default"
    if len(text) > _NAME_LIMIT:  # keep it readable and unique
        text = text[:_NAME_LIMIT - 9] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return text


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=,-]+", "_", text).strip("._")


# Cached: Hydra re-resolves the sweep directory in every job, with the job's own overrides; the
# cache (copied from the sweep's config to each job's) keeps the sweep's name.
OmegaConf.register_new_resolver("isl.run_name", run_name, use_cache=True, replace=True)


@dataclass
class Budget:
    points: int = MISSING       # sequence points processed before training stops
    eval_every: int = MISSING   # test evaluation every this many training points
    evals_per_decade: int = MISSING  # and this many, log-spaced, per decade of the budget's last three
    # full: the whole test subset at those points; original: the paper's code's test batches
    # (isl.callbacks.PointsSchedule). Its default lives here, not in config.yaml, whose own
    # values come after setup=original's in the defaults list.
    test_protocol: str = "full"


@dataclass
class Checkpoint:
    every_points: int = MISSING  # last.ckpt every this many training points (and at the end)
    keep_per_decade: int = 0     # and copies kept at this many log-spaced points per decade


@dataclass
class Paths:
    root: str = MISSING
    data_dir: str = MISSING
    runs_dir: str = MISSING


@dataclass
class Viz:
    density_every: Optional[int] = None   # density snapshot every N training points; null: off
    density_digits: int = 1


@dataclass
class Config:
    task: str = MISSING
    seed: int = MISSING
    name: Optional[str] = None  # the run's (or sweep's) directory name; null: named by the overrides
    budget: Budget = field(default_factory=Budget)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
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

