"""What a command does with a wrong value: one line naming the key, the value and what is
allowed, exit status 2, before anything is created; a bug keeps its traceback."""

from __future__ import annotations

import copy
import sys
from typing import NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write


def wrong_input(err: BaseException) -> bool:
    """Whether ``err`` is one of isl's own checks failing: a ValueError raised in isl's code (a
    wrong value, or a file or directory given that does not hold what it should), whose message
    says what to fix. Any other exception is a bug, shown with its traceback."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return isinstance(err, ValueError) and tb is not None \
        and tb.tb_frame.f_globals.get("__name__", "").startswith("isl.")


def refuse(err: BaseException) -> NoReturn:
    """End the command with ``err``'s message alone and exit status 2 (a usage error, as argparse's)."""
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)


class CheckFirst(Callback):
    """Hydra callback (conf/config.yaml): a run's values are checked, by building what they
    configure (``isl.training.train.check_values``), before Hydra creates the run's directory, which its
    ``run_job`` does before the task function starts; a wrong one leaves nothing behind. A
    sweep's shared values are checked so before it launches a job; a value it sweeps is checked
    in that job's task function, in the job's directory, whose error.txt the report lists."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self.check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.check(config)

    @staticmethod
    def check(config: DictConfig) -> None:
        from isl.training.train import check_values  # imports Lightning: not for `--help`, which runs no callback

        task = copy.deepcopy(config)
        with read_write(task), open_dict(task):
            del task["hydra"]
        try:
            check_values(task)
        except ValueError as err:
            if wrong_input(err):
                refuse(err)  # SystemExit: Hydra turns a callback's exceptions into warnings
            raise
