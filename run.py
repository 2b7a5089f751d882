"""Hydra entry point: ``python run.py [overrides]``, or ``python run.py -m ...`` for a sweep."""

import os
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import isl.config  # noqa: F401  (registers the config schema with Hydra)

os.environ.setdefault("ISL_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from isl.train import run  # after Hydra parsed the command line: `--help` stays instant

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        if summary := run(cfg, out_dir):
            print(summary)
    except BaseException:
        # Kept beside the job's metrics, so a sweep's report can list the failure; Hydra then
        # carries on with the sweep's other jobs and exits non-zero at the end.
        (out_dir / "error.txt").write_text(traceback.format_exc())
        raise


if __name__ == "__main__":
    main()
