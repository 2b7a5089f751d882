"""LightningCLI over the same LightningModule, DataModule and callbacks as ``run.py``, for people
who prefer Lightning's own command line to Hydra's::

    python -m isl.training.cli fit --config cli/example.yaml              # regular training
    python -m isl.training.cli fit --config cli/length.yaml               # the length curriculum
    python -m isl.training.cli fit --config cli/example.yaml --model.init_args.network ffnn \\
        --trainer.logger.init_args.name ffnn
    python -m isl.training.cli fit --config cli/example.yaml --budget 1000000  # train longer
    python -m isl.training.cli test --config cli/example.yaml   # its checkpoints/last.ckpt, tested
    python -m isl.training.cli fit --config cli/example.yaml --print_config   # every option

``--model`` is a class path (``isl.models.module.SequenceMDN``, the default) with its
``init_args``; ``--data`` likewise (``isl.data.datamodule.StrokeDataModule``), whose ``source``
is itself a class path with init_args, e.g. ``isl.data.sources.MnistSource``.

``fit`` runs as ``run.py`` does, through the same code (``isl.training.train.points_run``, ``isl.training.rundir``,
``isl.core.console``): training is measured in sequence points, ``--budget`` of them (run.py's
``budget.points``); in ``trainer.callbacks``, ``isl.training.callbacks.PointsSchedule(eval_every)`` is
required (its ``budget`` is set from ``--budget``); a curriculum
(``isl.curricula.length.Length``, ...; regular training without one) and
``isl.training.checkpoints.PointsCheckpoint(every_points)`` (default: at every evaluation) are optional;
they run in run.py's order, with the progress bar in points. The run's directory is the
logger's (``runs/cli/<trainer.logger.init_args.name>``): ``metrics.csv`` with ``points`` in
every row, ``checkpoints/last.ckpt``, ``config.yaml``. The same command again resumes a killed
run exactly, or only reports a finished one. Sweeps, W&B and the other tasks are run.py's.

``test`` (and ``validate``, the same: there is no validation set) prints the test-set metrics of
a checkpoint (``--ckpt_path``; default: the logger's run directory's ``checkpoints/last.ckpt``),
computed as a run's evaluations are (``SequenceMDN.evaluate``): a run's final ones, exactly.
``predict`` is not offered: sampling is ``python -m isl.tools.generate``'s.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger

from isl.training import rundir
from isl.training.callbacks import Interrupted, PointsSchedule, raise_if_interrupted
from isl.training.checkpoints import LAST, PointsCheckpoint
from isl.core.console import log_to_console
from isl.curricula import Curriculum
from isl.curricula.regular import Regular
from isl.data.datamodule import StrokeDataModule
from isl.training.loggers import redact, resume_csv
from isl.models.module import SequenceMDN, load_model
from isl.training.train import finish_run, points_run

#: As conf/trainer/default.yaml (training is stopped and tested by points); the run's
#: directory is the logger's, fixed by its name (no version_N), so the same command finds it.
TRAINER_DEFAULTS = {"max_epochs": -1, "limit_val_batches": 0, "num_sanity_val_steps": 0,
                    "enable_model_summary": False, "default_root_dir": "runs/cli",
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": "runs/cli", "name": "default", "version": ""}}}
NEEDS_BUDGET = ("isl.training.cli fit needs isl.training.callbacks.PointsSchedule in trainer.callbacks (when to "
                "test, in sequence points; the budget is --budget), e.g. in the --config YAML:\n"
                "  budget: 300000\n  trainer:\n    callbacks:\n"
                "      - class_path: isl.training.callbacks.PointsSchedule\n"
                "        init_args: {eval_every: 100000}")
PROG = "python -m isl.training.cli"
DESCRIPTION = ("Train (fit) and test run.py's models with Lightning's command line; `test` and "
               "`validate` (the same: there is no validation set) evaluate a checkpoint on the test set.")
# Lightning's own (Trainer.test's docstring) speaks of a validation set and of "best" checkpoints.
EVALUATE = ("Print the test-set metrics of a checkpoint, as a run's evaluations compute them: "
            "--ckpt_path PATH (run.py's runs/<name>/checkpoints/last.ckpt too), or by default the "
            "last.ckpt of the isl.training.cli fit run that the same --config (logger name) makes.")


def _one(callbacks: list, kind: type, default=None):
    found = [c for c in callbacks if isinstance(c, kind)]
    if len(found) > 1:
        raise SystemExit(f"isl.training.cli fit takes at most one {kind.__name__} in trainer.callbacks, "
                         f"got {len(found)}: {', '.join(type(c).__name__ for c in found)}")
    return found[0] if found else default


def _as_list(value) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


class IslCLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # No predict: the model predicts one step at a time (python -m isl.tools.generate samples).
        # test and validate always load with weights_only (our checkpoints hold tensors and plain
        # values) and always print the metrics: Trainer.test's weights_only and verbose are not offered.
        evaluate = {"model", "dataloaders", "datamodule", "verbose", "weights_only"}
        return {"fit": LightningCLI.subcommands()["fit"], "validate": evaluate, "test": evaluate}

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"model": {"class_path": "isl.models.module.SequenceMDN"},
                             "data": {"class_path": "isl.data.datamodule.StrokeDataModule"}})
        parser.add_argument("--budget", type=int, default=300_000,
                            help="fit: train for this many sequence points (run.py's budget.points); "
                                 "sets the budget of isl.training.callbacks.PointsSchedule in trainer.callbacks "
                                 "(replacing one given in its init_args)")
        parser.link_arguments("budget", "trainer.callbacks.init_args.budget")

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
            raise SystemExit(f"isl.training.cli resumes a run from its own directory's checkpoints/last.ckpt "
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

    def test(self, model, datamodule, ckpt_path=None) -> None:
        """Print the test-set metrics of the checkpoint at ``ckpt_path`` (default, or ``last``:
        the run directory's), by ``SequenceMDN.evaluate`` as a run evaluates itself: not through
        Trainer.test, whose logger would write into the run's directory. ``model``: unused, the
        checkpoint decides the network."""
        last = ckpt_path in (None, "last")
        path = Path(self.trainer.log_dir) / "checkpoints" / LAST if last else Path(ckpt_path)
        if not path.is_file():
            raise SystemExit(f"isl.training.cli {self.subcommand}: no checkpoint at {path}; give --ckpt_path, or the "
                             "--config (and logger name) of the isl.training.cli fit run to test")
        model = load_model(path, self.trainer.strategy.root_device)
        datamodule.setup("test")
        units = ("offset_shift", "offset_scale")
        if not all(torch.allclose(getattr(model, k).cpu(), getattr(datamodule, k)) for k in units):
            raise SystemExit(f"isl.training.cli {self.subcommand}: {path} was trained on other data (its input "
                             "units differ from this data's): give the data settings of its run "
                             "(--data.init_args.num_train, scaling, ...)")
        print(f"{path} ({model.points_processed:,} sequence points trained):")
        for name, value in model.evaluate(datamodule.test_dataloader()).items():
            print(f"  {name} {value:.6g}")

    validate = test


def main(args=None) -> IslCLI:
    log_to_console()
    return IslCLI(SequenceMDN, StrokeDataModule, subclass_mode_model=True, subclass_mode_data=True,
                  trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=1,
                  save_config_kwargs={"overwrite": True}, args=args,
                  parser_kwargs={"prog": PROG, "description": DESCRIPTION,
                                 "test": {"description": EVALUATE}, "validate": {"description": EVALUATE}})


if __name__ == "__main__":
    main()
