"""Transfer from prediction to classification: which predictor a classifier starts from.

``conf/experiment/transfer.yaml`` sweeps ``transfer.source`` over ``scratch`` and the four
curricula; ``model.init_from`` resolves, through ``${isl.predictor:...}``, to the last checkpoint
of the job of a prediction sweep (``transfer.sweep``, e.g. one of ``experiment=exp1``) that was
trained with that curriculum, the same seed and the same network.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from isl.tools.sweeps import find_jobs, load_job

SCRATCH = "scratch"


def predictor_checkpoint(sweep: str | None, source: str, seed: int, network: str) -> str | None:
    """The checkpoint to start from, or None to train from scratch."""
    if source == SCRATCH:
        return None
    if not sweep:
        raise ValueError(f"transfer.source={source} needs transfer.sweep=<a prediction sweep directory>")
    root = Path(sweep)
    if not root.is_dir():
        raise ValueError(f"transfer.sweep: no directory {root}")
    jobs = [load_job(root, d) for d in find_jobs(root)]
    matches = [j for j in jobs if j.curriculum == source and j.seed == seed and j.model == network
               and j.finished and j.error is None]
    if len(matches) != 1:
        found = ", ".join(f"{j.name}" for j in matches) or "none"
        raise ValueError(f"transfer.sweep {root}: need exactly one finished {network} job with "
                         f"curriculum={source} and seed={seed}, found {found}")
    path = root / matches[0].name / "checkpoints" / "last.ckpt"
    if not path.is_file():  # e.g. restored from isl.tools.records, which keeps no weights
        raise ValueError(f"transfer.sweep {root}: job {matches[0].name} has no checkpoints/last.ckpt (records "
                         f"keep no weights): run the prediction sweep's own command to train it again")
    return str(path)


OmegaConf.register_new_resolver("isl.predictor", predictor_checkpoint, replace=True)
