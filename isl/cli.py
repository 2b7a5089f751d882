"""LightningCLI over the same LightningModule and DataModule as ``run.py``, for people who
prefer Lightning's own command line to Hydra's (no curricula or sweeps here: use run.py)::

    python -m isl.cli fit --config conf/cli/example.yaml
    python -m isl.cli fit --config conf/cli/example.yaml --model.init_args.network ffnn \\
        --trainer.callbacks.budget 1000000 --trainer.callbacks.eval_every 200000
    python -m isl.cli fit --data.init_args.source isl.data.sources.MnistSource \\
        --trainer.callbacks isl.callbacks.PointsSchedule --trainer.callbacks.budget 300000 \\
        --trainer.callbacks.eval_every 100000
    python -m isl.cli fit --config conf/cli/example.yaml --print_config   # every option

``--model`` is a class path (``isl.models.module.SequenceMDN``, the default) with its
``init_args``; ``--data`` likewise (``isl.data.datamodule.StrokeDataModule``), whose
``source`` is itself a class path with init_args, e.g. ``isl.data.sources.MnistSource``.
Training is measured in sequence points: ``isl.callbacks.PointsSchedule(budget,
eval_every)`` in ``trainer.callbacks`` is required (without it the run would never stop).
Metrics go to the CSV logger's ``metrics.csv`` (default ``runs/cli/version_N/``), with the
points processed in every row.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from isl.callbacks import PointsSchedule
from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN

#: As conf/trainer/default.yaml (training is stopped and tested by points), and metrics to
#: ``runs/cli/version_N/metrics.csv``.
TRAINER_DEFAULTS = {"max_epochs": -1, "limit_val_batches": 0, "num_sanity_val_steps": 0,
                    "enable_model_summary": False,
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": "runs/cli", "name": ""}}}


class IslCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"model": {"class_path": "isl.models.module.SequenceMDN"},
                             "data": {"class_path": "isl.data.datamodule.StrokeDataModule"}})

    def before_fit(self) -> None:
        if not any(isinstance(c, PointsSchedule) for c in self.trainer.callbacks):
            raise SystemExit("isl.cli fit needs isl.callbacks.PointsSchedule in trainer.callbacks "
                             "(the budget in sequence points), e.g. in the --config YAML:\n"
                             "  trainer:\n    callbacks:\n"
                             "      - class_path: isl.callbacks.PointsSchedule\n"
                             "        init_args: {budget: 300000, eval_every: 100000}")


def main(args=None) -> IslCLI:
    return IslCLI(SequenceMDN, StrokeDataModule, subclass_mode_model=True, subclass_mode_data=True,
                  trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=1,
                  save_config_kwargs={"overwrite": True}, args=args)


if __name__ == "__main__":
    main()
