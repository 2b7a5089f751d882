"""The schema of ``conf/config.yaml``: Hydra checks names and types against it when it composes
the config, so a typo or a wrong type fails before anything runs, naming the key. Ranges are
checked by the classes the values go to (e.g. ``budget.points must be a positive integer``),
which ``isl.training.usage.CheckFirst`` builds before a run's directory is created."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
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
    return _words(overrides) or "default"


def job_name(num: int, sweep_dir: str, old_name: str, overrides) -> str:
    """The directory name of a sweep's job: its number and the overrides that differ between
    the sweep's jobs (``0-curriculum-length_seed-2``); the shared ones already name the sweep.
    A job directory of the sweep made under the old name (``<num>-<Hydra's override_dirname>``,
    every override) is used as it is, so sweeps started before resume. Registered as
    ``isl.job_name``."""
    sweep = Path(sweep_dir)
    if (sweep / old_name).is_dir():
        return old_name
    swept = _swept_keys(sweep / "multirun.yaml")
    mine = [o for o in overrides or [] if swept is None or _key(o) in swept]
    return f"{num}-{_words(mine)}".rstrip("-")


def _swept_keys(multirun: Path) -> set[str] | None:
    """The keys a sweep gives several values, from the config Hydra saves in the sweep directory
    before it launches a job: sweeps on the command line, and the ``hydra.sweeper.params`` of an
    experiment the command line leaves swept. None without the file (every override counts)."""
    if not multirun.is_file():
        return None
    hydra = OmegaConf.load(multirun).hydra
    parser = OverridesParser.create()
    command = parser.parse_overrides([str(o) for o in hydra.overrides.task])
    given = {o.key_or_group for o in command}
    params = parser.parse_overrides([f"{k}={v}" for k, v in (hydra.sweeper.get("params") or {}).items()])
    return ({o.key_or_group for o in command if o.is_sweep_override()}
            | {o.key_or_group for o in params if o.is_sweep_override() and o.key_or_group not in given})


def _key(override) -> str:
    return str(override).lstrip("+~").split("=", 1)[0]


def _words(overrides) -> str:
    """Overrides as one directory name (``model=ffnn seed=1,2`` -> ``model-ffnn_seed-1+2``),
    without those that only say where things are or how they are logged; shortened with a hash
    when long."""
    picked = [str(o) for o in overrides or [] if not str(o).lstrip("+~").startswith(UNNAMED)]
    text = "_".join(_safe(o.replace("=", "-", 1).replace(",", "+")) for o in picked)
    if len(text) > _NAME_LIMIT:  # keep it readable and unique
        text = text[:_NAME_LIMIT - 9] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return text


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=,-]+", "_", text).strip("._")


# Cached: Hydra re-resolves the sweep directory in every job, with the job's own overrides; the
# cache (copied from the sweep's config to each job's) keeps the sweep's name.
OmegaConf.register_new_resolver("isl.run_name", run_name, use_cache=True, replace=True)
OmegaConf.register_new_resolver("isl.job_name", job_name, replace=True)


@dataclass
class Budget:
    points: int = MISSING       # sequence points processed before training stops
    eval_every: int = MISSING   # test evaluation every this many training points
    evals_per_decade: int = MISSING  # and this many, log-spaced, per decade of the budget's last three
    # full: the whole test subset at those points; original: the paper's code's test batches
    # (isl.training.callbacks.PointsSchedule). Its default lives here, not in config.yaml, whose own
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

