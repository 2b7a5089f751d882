"""LightningCLI over the same LightningModule, DataModule and callbacks as ``run.py``, for people
who prefer Lightning's own command line to Hydra's::

    python -m isl.cli fit --config conf/cli/example.yaml              # regular training
    python -m isl.cli fit --config conf/cli/length.yaml               # the length curriculum
    python -m isl.cli fit --config conf/cli/example.yaml --model.init_args.network ffnn \\
        --trainer.logger.init_args.name ffnn
    python -m isl.cli fit --config conf/cli/example.yaml --print_config   # every option

``--model`` is a class path (``isl.models.module.SequenceMDN``, the default) with its
``init_args``; ``--data`` likewise (``isl.data.datamodule.StrokeDataModule``), whose ``source``
is itself a class path with init_args, e.g. ``isl.data.sources.MnistSource``.

``fit`` runs as ``run.py`` does, through the same code (``isl.train.points_run``, ``isl.rundir``,
``isl.console``): in ``trainer.callbacks``, ``isl.callbacks.PointsSchedule(budget, eval_every)``
is required (training is measured in sequence points); a curriculum
(``isl.curricula.length.Length``, ...; regular training without one) and
``isl.checkpoints.PointsCheckpoint(every_points)`` (default: at every evaluation) are optional;
they run in run.py's order, with the progress bar in points. The run's directory is the
logger's (``runs/cli/<trainer.logger.init_args.name>``): ``metrics.csv`` with ``points`` in
every row, ``checkpoints/last.ckpt``, ``config.yaml``. The same command again resumes a killed
run exactly, or only reports a finished one. Sweeps, W&B and the other tasks are run.py's.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger

from isl import rundir
from isl.callbacks import Interrupted, PointsSchedule, raise_if_interrupted
from isl.checkpoints import PointsCheckpoint
from isl.console import log_to_console
from isl.curricula import Curriculum
from isl.curricula.regular import Regular
from isl.data.datamodule import StrokeDataModule
from isl.loggers import redact, resume_csv
from isl.models.module import SequenceMDN
from isl.train import finish_run, points_run

#: As conf/trainer/default.yaml (training is stopped and tested by points); the run's
#: directory is the logger's, fixed by its name (no version_N), so the same command finds it.
TRAINER_DEFAULTS = {"max_epochs": -1, "limit_val_batches": 0, "num_sanity_val_steps": 0,
                    "enable_model_summary": False, "default_root_dir": "runs/cli",
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": "runs/cli", "name": "default", "version": ""}}}
NEEDS_BUDGET = ("isl.cli fit needs isl.callbacks.PointsSchedule in trainer.callbacks (the budget "
                "in sequence points), e.g. in the --config YAML:\n  trainer:\n    callbacks:\n"
                "      - class_path: isl.callbacks.PointsSchedule\n"
                "        init_args: {budget: 300000, eval_every: 100000}")


def _one(callbacks: list, kind: type, default=None):
    found = [c for c in callbacks if isinstance(c, kind)]
    if len(found) > 1:
        raise SystemExit(f"isl.cli fit takes at most one {kind.__name__} in trainer.callbacks, "
                         f"got {len(found)}: {', '.join(type(c).__name__ for c in found)}")
    return found[0] if found else default


def _as_list(value) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


class IslCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"model": {"class_path": "isl.models.module.SequenceMDN"},
                             "data": {"class_path": "isl.data.datamodule.StrokeDataModule"}})

    def instantiate_trainer(self, **kwargs):
        if self.subcommand != "fit":
            return super().instantiate_trainer(**kwargs)
        listed = _as_list(self._get(self.config_init, "trainer")["callbacks"])
        self.schedule = _one(listed, PointsSchedule)
        if self.schedule is None:
            raise SystemExit(NEEDS_BUDGET)
        self.curriculum = _one(listed, Curriculum, Regular())
        self.checkpoints = _one(listed, PointsCheckpoint, PointsCheckpoint(self.schedule.eval_every))
        self.results = self.results_config(listed)
        others = [c for c in listed if not isinstance(c, (PointsSchedule, Curriculum, PointsCheckpoint))]
        return super().instantiate_trainer(
            **points_run(self.curriculum, self.schedule, self.checkpoints, others), **kwargs)

    def results_config(self, callbacks: list) -> dict:
        """What decides a run's results, as ``rundir.results_config`` for run.py: the seed, the
        model, the data (not where it is read from), the curriculum and the test protocol; not
        the trainer, logger, budget or checkpoints. ``callbacks``: trainer.callbacks as
        instantiated."""
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))[self.subcommand]
        data = config["data"]
        data["init_args"]["source"] = data["init_args"]["source"]["class_path"]
        curriculum = [entry for entry, c in zip(_as_list(config["trainer"]["callbacks"]), callbacks)
                      if isinstance(c, Curriculum)]
        return redact({"seed": config["seed_everything"], "model": config["model"], "data": data,
                       "curriculum": curriculum, "budget": {"test_protocol": self.schedule.test_protocol}})

    def fit(self, model, datamodule, ckpt_path=None, weights_only=None) -> None:
        """Fit in the run's directory as run.py does: resume it if it holds a checkpoint, only
        report it if it finished, refuse it if it was started with another config. (Our
        checkpoints hold only tensors and plain values: always loaded with weights_only.)"""
        if ckpt_path not in (None, "last"):
            raise SystemExit(f"isl.cli resumes a run from its own directory's checkpoints/last.ckpt "
                             f"(--ckpt_path last, or nothing: the same), not from {ckpt_path}; to "
                             "start from another run's weights: --model.init_args.init_from PATH")
        out_dir = Path(self.trainer.log_dir)
        try:
            start = rundir.prepare(out_dir, self.results, self.schedule.budget,
                                   rename="another --trainer.logger.init_args.name")
        except ValueError as err:  # another config's directory, a damaged checkpoint
            raise SystemExit(str(err)) from err
        if start.finished is not None:
            print(start.finished)
            return
        for logger in self.trainer.loggers:
            if isinstance(logger, CSVLogger):
                resume_csv(logger, start.step)
        self.trainer.fit(model, datamodule=datamodule, ckpt_path=start.checkpoint, weights_only=True)
        try:
            raise_if_interrupted(self.trainer)
        except Interrupted as stop:
            print(stop)
            raise SystemExit(130) from None
        if self.trainer.global_rank == 0:
            print(finish_run(out_dir, model, self.curriculum, self.schedule, self.checkpoints))


def main(args=None) -> IslCLI:
    log_to_console()
    return IslCLI(SequenceMDN, StrokeDataModule, subclass_mode_model=True, subclass_mode_data=True,
                  trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=1,
                  save_config_kwargs={"overwrite": True}, args=args)


if __name__ == "__main__":
    main()
