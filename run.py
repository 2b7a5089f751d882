"""Hydra entry point: ``python run.py [overrides]``, or ``python run.py -m ...`` for a sweep."""

import os
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import isl.training.config  # noqa: F401  (registers the config schema with Hydra)
from isl.training.usage import refuse, wrong_input
import isl.tools.transfer  # noqa: F401  (registers ${isl.predictor:...} for experiment=transfer)

os.environ.setdefault("ISL_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from isl.training.callbacks import Interrupted
    from isl.core.console import route_lightning_logs
    from isl.training.rundir import OtherConfigError
    from isl.training.train import run  # after Hydra parsed the command line: `--help` stays instant

    route_lightning_logs()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        if summary := run(cfg, out_dir):
            print(summary)
    except OSError as err:  # disk full, no permission: say where, keep the cause
        keep_error(out_dir)
        raise OSError(err.errno, f"cannot write in {out_dir} ({err}); free space or fix the "
                      "permissions, then run the same command again to resume") from err
    except Interrupted as stop:  # Ctrl-C: its checkpoint is written; nothing failed
        print(stop)
        sys.exit(130)
    except BaseException as err:
        if not isinstance(err, OtherConfigError):  # that directory's run did not fail: left as it was
            keep_error(out_dir)
        if wrong_input(err) and HydraConfig.get().mode == RunMode.RUN:  # a sweep goes on to its other jobs
            refuse(err)
        raise


def keep_error(out_dir: Path) -> None:
    """The traceback beside the job's metrics, so a sweep's report lists the failure (Hydra
    carries on with the sweep's other jobs and exits non-zero at the end)."""
    try:
        (out_dir / "error.txt").write_text(traceback.format_exc())
    except OSError:  # the disk that just failed; the traceback still reaches the console
        pass


if __name__ == "__main__":
    main()
