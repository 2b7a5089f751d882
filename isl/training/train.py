"""Composition: from a Hydra config to the objects of one run, and the run itself; what a
training run by points needs whichever way it is started (run.py or isl.training.cli)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import lightning as L
import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf

from isl.training import rundir
from isl.training.callbacks import Interruption, PointsSchedule, progress, raise_if_interrupted
from isl.training.schedule import log_spaced
from isl.training.checkpoints import AtomicCheckpointIO, PointsCheckpoint, atomic_write
from isl.curricula import Curriculum
from isl.data.datamodule import StrokeDataModule
from isl.data.reference import for_datamodule
from isl.data.summary import describe
from isl.training.devices import device_slot, trainer_devices
from isl.training.loggers import build_loggers
from isl.viz.snapshots import DensitySnapshots
from isl.viz.strokes import save_grid

TASKS = ("predict", "classify", "data")
REFERENCE = "reference.json"  # the test set's reference levels (isl.data.reference), read by isl.tools.report
# What each training task optimises (model.prediction_weight, model.class_loss_weight).
LOSS_WEIGHTS = {"predict": {}, "classify": {"prediction_weight": 0.0, "class_loss_weight": 1.0}}


def check_config(cfg: DictConfig) -> None:
    """Fail before any work on values the user still has to give (``???`` in the YAML)."""
    if missing := OmegaConf.missing_keys(cfg):
        raise ValueError(f"missing required config value(s): {', '.join(sorted(missing))}; "
                         "give them on the command line, e.g. data.path=/path/to/sequences")
    if cfg.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {cfg.task!r}")


def check_values(cfg: DictConfig) -> None:
    """Check every value of ``cfg`` by building what it configures, writing nothing: a wrong one
    raises a ValueError that names the key, the value and what is allowed. Run first by
    isl.training.usage.CheckFirst, before Hydra creates the run's directory."""
    check_config(cfg)
    if cfg.task == "data":
        build_datamodule(cfg)
    else:
        build_run(cfg)


def instantiated(node: DictConfig, key: str, **kwargs):
    """``instantiate(node)`` (``key``: where it is in the config), after checking that its
    ``_target_`` takes every key it is given: one it does not take (``+model.hiden=8``) would fail
    as a TypeError deep in Hydra, naming neither. The class's own ValueError is raised as it is,
    not in Hydra's wrapper."""
    params = inspect.signature(get_object(node._target_)).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if not takes_any and (unknown := [k for k in node if not k.startswith("_") and k not in params]):
        raise ValueError(f"{key}.{unknown[0]}={node[unknown[0]]}: {key} has no key {unknown[0]!r}; "
                         f"its keys: {', '.join(params)}")
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, ValueError):
            raise err.__cause__ from None
        raise


def build_datamodule(cfg: DictConfig) -> StrokeDataModule:
    data = cfg.data
    return StrokeDataModule(source=instantiated(data.source, "data.source"), num_train=data.num_train,
                            num_test=data.num_test, max_length=data.max_length,
                            batching=OmegaConf.to_container(cfg.batching, resolve=True),
                            test_batch_size=data.test_batch_size, seed=cfg.seed,
                            scaling=data.scaling, offset_min=data.offset_min,
                            offset_range=data.offset_range, count=data.count)


def build_run(cfg: DictConfig, out_dir: Path | None = None) -> tuple:
    """The DataModule, model, curriculum, schedule and checkpoints of a training run, each
    checking its values; its checkpoints go to ``out_dir`` (None: only checking)."""
    dm = build_datamodule(cfg)
    model = instantiated(cfg.model, "model", **LOSS_WEIGHTS[cfg.task])
    curriculum = instantiated(cfg.curriculum, "curriculum")
    schedule = PointsSchedule(cfg.budget.points, cfg.budget.eval_every, cfg.budget.evals_per_decade,
                              cfg.budget.test_protocol)
    checkpoints = PointsCheckpoint(cfg.checkpoint.every_points,
                                   None if out_dir is None else out_dir / "checkpoints",
                                   kept_points(cfg.budget.points, cfg.checkpoint.keep_per_decade))
    return dm, model, curriculum, schedule, checkpoints


def run(cfg: DictConfig, out_dir: Path) -> str:
    """Run ``cfg.task`` and return its summary for the console."""
    check_config(cfg)
    return describe_data(cfg, out_dir) if cfg.task == "data" else train(cfg, out_dir)


def train(cfg: DictConfig, out_dir: Path, profiler=None) -> str:
    """Train for ``budget.points`` sequence points: the next-step predictor (task=predict) or a
    classifier with the class at every step (task=classify); metrics to CSV (and W&B).

    Started again in the same directory, a run resumes from its last checkpoint exactly where
    it was (see isl.training.rundir), or only reports its result if it had finished."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, model, curriculum, schedule, checkpoints = build_run(cfg, out_dir)  # checked before anything is written
    start = rundir.prepare(out_dir, rundir.results_config(cfg), cfg.budget.points)
    if start.finished is not None:
        return start.finished
    loggers = build_loggers(cfg, out_dir, resume_step=start.step)
    reference = out_dir / REFERENCE
    if not reference.exists():  # what trivial predictors score on this run's test set
        dm.prepare_data()
        atomic_write(reference, json.dumps(for_datamodule(dm), indent=1) + "\n")
    others = [DensitySnapshots(cfg.viz.density_every, digits=cfg.viz.density_digits)] \
        if cfg.viz.density_every else []
    with device_slot() as gpu:  # in a sweep over GPUs (hydra/launcher=gpus): this job's own one
        trainer = L.Trainer(**{**cfg.trainer, **trainer_devices(gpu)}, logger=loggers,
                            default_root_dir=out_dir, profiler=profiler,
                            **points_run(curriculum, schedule, checkpoints, others))
        trainer.fit(model, datamodule=dm, ckpt_path=start.checkpoint, weights_only=True)
    raise_if_interrupted(trainer)
    if trainer.global_rank != 0:
        return ""  # under DDP, rank 0 reports
    task = "" if cfg.task == "predict" else f" to {cfg.task}"
    task += f", starting from {cfg.model.init_from}" if cfg.model.init_from else ""
    return finish_run(out_dir, model, curriculum, schedule, checkpoints, task)


def kept_points(budget: int, per_decade: int) -> list[int]:
    """Where copies of the weights are kept (``checkpoint.keep_per_decade``): log-spaced over the
    budget's last three decades and at its end, the points a run with ``budget.evals_per_decade``
    equal to it is also evaluated at; none for 0."""
    if isinstance(per_decade, bool) or not isinstance(per_decade, int) or per_decade < 0:
        raise ValueError(f"checkpoint.keep_per_decade must be an integer >= 0 (0: none kept), got {per_decade!r}")
    return log_spaced(budget, per_decade) if per_decade else []


def points_run(curriculum: Curriculum, schedule: PointsSchedule, checkpoints: PointsCheckpoint,
               others=()) -> dict:
    """The Trainer arguments of a training run by points (run.py's and isl.training.cli's): the
    callbacks in the order they must run (a checkpoint is taken after the curriculum and the
    evaluation of its step; Ctrl-C stops training after all of them), the progress in points,
    and only our checkpoints, written atomically."""
    return {"callbacks": [curriculum, schedule, checkpoints, progress(schedule.budget), *others,
                          Interruption()],
            "plugins": [AtomicCheckpointIO()], "enable_checkpointing": False}


def finish_run(out_dir: Path, model, curriculum: Curriculum, schedule: PointsSchedule,
           checkpoints: PointsCheckpoint, task: str = "") -> str:
    """Mark the run in ``out_dir`` finished (``rundir.finish``) and return its summary."""
    final = {k: v for k, v in schedule.last_metrics.items() if k.startswith("test/")}  # at the end
    summary = (f"trained {model.hparams.network} with the {type(curriculum).__name__.lower()} "
               f"curriculum (stage {curriculum.stage}) on {model.points_processed:,} sequence "
               f"points{task}: " + ", ".join(f"{k} {v:.4g}" for k, v in final.items())
               + f"\nmetrics: {out_dir / 'metrics.csv'}\ncheckpoint: {checkpoints.path}")
    rundir.finish(out_dir, {"points": model.points_processed, "stage": curriculum.stage,
                            "metrics": final, "summary": summary})
    return summary


def describe_data(cfg: DictConfig, out_dir: Path) -> str:
    """Build (or load) the dataset and report what it holds, with a rendered sample."""
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup()
    lines = [describe("train (full split)", dm.source.load("train")),
             describe("test (full split)", dm.source.load("test")),
             describe("train (used by runs)", dm.train), describe("test (used by runs)", dm.test),
             f"offset scale ({dm.scaling}; input units = (pixels - shift) / scale): shift dx "
             f"{dm.offset_shift[0]:.3f}, dy {dm.offset_shift[1]:.3f}; scale (pixels per input unit) "
             f"dx {dm.offset_scale[0]:.3f}, dy {dm.offset_scale[1]:.3f}"]
    batch = next(iter(dm.train_dataloader()))
    lines.append(f"first training batch ({cfg.batching.by}): {len(batch)} sequences, "
                 f"{batch.n_points} points, padded to {batch.steps.shape[1]} steps")
    first_of_each = [int(np.flatnonzero(dm.train.labels == c)[0]) for c in range(10)]
    sample = out_dir / "dataset-sample.png"
    save_grid([dm.train.sequence(i) for i in first_of_each],
              [f"digit {dm.train.labels[i]} (#{i})" for i in first_of_each], sample, cols=5)
    lines.append(f"rendered sample: {sample}")
    summary = "\n".join(lines)
    (out_dir / "dataset.txt").write_text(summary + "\n")
    return summary
