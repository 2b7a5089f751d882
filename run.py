"""Hydra entry point: ``python run.py [overrides]``, or ``python run.py -m ...`` for a sweep."""

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

os.environ.setdefault("ISL_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from isl.train import run  # after Hydra parsed the command line: `--help` stays instant

    print(run(cfg, Path(HydraConfig.get().runtime.output_dir)))


if __name__ == "__main__":
    main()
