"""Composition: from a Hydra config to the objects of one run, and the run itself."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from isl.data.datamodule import StrokeDataModule
from isl.data.summary import describe
from isl.viz.strokes import save_grid

log = logging.getLogger(__name__)


def check_config(cfg: DictConfig) -> None:
    """Fail before any work on values the user still has to give (``???`` in the YAML)."""
    if missing := OmegaConf.missing_keys(cfg):
        raise ValueError(f"missing required config value(s): {', '.join(sorted(missing))}; "
                         "give them on the command line, e.g. data.path=/path/to/sequences")


def build_datamodule(cfg: DictConfig) -> StrokeDataModule:
    check_config(cfg)
    data = cfg.data
    return StrokeDataModule(source=instantiate(data.source), num_train=data.num_train,
                            num_test=data.num_test, max_length=data.max_length,
                            batching=OmegaConf.to_container(cfg.batching, resolve=True),
                            test_batch_size=data.test_batch_size, seed=cfg.seed)


def run(cfg: DictConfig, out_dir: Path) -> str:
    """Build (or load) the dataset and report what it holds, with a rendered sample.

    This is the main job until the models land; it returns the printed summary.
    """
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup()
    lines = [describe("train (full split)", dm.source.load("train")),
             describe("test (full split)", dm.source.load("test")),
             describe("train (used by runs)", dm.train), describe("test (used by runs)", dm.test),
             f"offset scale (pixels per input unit): dx {dm.offset_scale[0]:.3f}, "
             f"dy {dm.offset_scale[1]:.3f}"]
    batch = next(iter(dm.train_dataloader()))
    lines.append(f"first training batch ({cfg.batching.by}): {len(batch)} sequences, "
                 f"{batch.n_points} points, padded to {batch.steps.shape[1]} steps")
    first_of_each = [int(np.flatnonzero(dm.train.labels == c)[0]) for c in range(10)]
    sample = out_dir / "dataset-sample.png"
    save_grid([dm.train.sequence(i) for i in first_of_each],
              [f"#{i}: {dm.train.labels[i]}" for i in first_of_each], sample, cols=5)
    lines.append(f"rendered sample: {sample}")
    summary = "\n".join(lines)
    (out_dir / "dataset.txt").write_text(summary + "\n")
    return summary
