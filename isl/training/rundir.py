"""A run's directory and what starting a run there means: a fresh start, a resume from its last
checkpoint (the same command after a kill or a pre-emption), or nothing to do (it finished).

Under run.py the directory is named by the command line's overrides (``isl.training.config.run_name``),
under isl.training.cli by its logger (``runs/cli/<name>``), so the same command finds the same directory.
What the run was started with is kept in ``run-config.yaml``; a directory is never resumed with
a config that would change the results.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from isl.training.checkpoints import LAST, PREV
from isl.core.files import atomic_write
from isl.training.loggers import redact

log = logging.getLogger(__name__)
RUN_CONFIG = "run-config.yaml"
RESULT = "result.json"
ERROR = "error.txt"
# Keys that do not change what a run computes: where things are, how it is logged and on what
# hardware, and how long it goes on (a longer budget extends a finished run). Not
# budget.test_protocol: it decides what the test rows measure, and a run resumed under the
# other protocol would log two kinds of rows.
NEUTRAL = ("paths", "logger", "trainer", "viz", "checkpoint", "name", "transfer", "budget.points",
           "budget.eval_every", "budget.evals_per_decade",
           "data.mnist_dir", "data.search_dirs", "data.download", "data.source", "data.path")
# Results-deciding keys added to isl after runs were made without them, each with the value that
# computes what isl computed before the key existed: a run whose run-config.yaml lacks one
# resumes (or counts as finished) when the key has that value now. Add every new key here;
# tests/test_rundir.py checks today's defaults against configs saved before.
ADDED: dict[str, object] = {
    "data.count": "rows", "curriculum.window": "points",                 # 2026-12-02
    "model.nll_epsilon": 0.0, "model.misalign_ffnn": False,             # 2026-12-02
    "model.class_inputs": False,                                       # 2026-12-02
    "model.lr_warmup_points": 0, "model.lr_warmup_start": 0.0,         # 2026-12-02
    "budget.test_protocol": "full",                                    # 2026-12-02
    "model.head": "mdn", "model.class_dropout": 0.0,                   # 2026-12-04
}


def results_config(cfg: DictConfig) -> dict:
    """The part of the config that decides a run's results (credential-like values redacted:
    it is written to ``run-config.yaml``)."""
    config = redact(OmegaConf.to_container(cfg, resolve=True))
    for key in NEUTRAL:
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return config


def _flat(tree, prefix="") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


class OtherConfigError(ValueError):
    """The directory holds a run started with another config: the command is refused, and the
    run there is left as it was (no error.txt: it did not fail)."""


@dataclass
class Start:
    checkpoint: Path | None = None   # resume from here
    step: int | None = None          # the checkpoint's optimizer step (metrics after it are redone)
    points: int = 0                  # sequence points processed at the checkpoint
    finished: str | None = None      # a finished run's summary, to print instead of training


def prepare(out_dir: Path, current: dict, budget: int, rename: str = "name=<new name>") -> Start:
    """Decide how the run in ``out_dir`` starts, after checking that the directory's earlier
    run (if any) had the same results-deciding config ``current`` (see ``results_config``).
    ``budget``: the points the run is to reach; ``rename``: how the user gives a run another
    directory, for the refusal."""
    out_dir = Path(out_dir)
    saved_path = out_dir / RUN_CONFIG
    if saved_path.is_file():
        saved = yaml.safe_load(saved_path.read_text()) or {}
        if changed := _differences(saved, current):
            raise OtherConfigError(
                f"{out_dir} holds a run started with another config ({'; '.join(changed[:5])}"
                f"{'; ...' if len(changed) > 5 else ''}). Resuming it would mix two experiments: "
                f"give this one its own directory with {rename}, or delete {out_dir} to "
                "start it over.")
    (out_dir / ERROR).unlink(missing_ok=True)  # a new attempt; the old traceback is in the log
    result = out_dir / RESULT
    if result.is_file():
        stored = json.loads(result.read_text())
        if stored.get("points", 0) >= budget:
            return Start(finished=f"already finished ({result}):\n" + stored["summary"])
    last, prev = out_dir / "checkpoints" / LAST, out_dir / "checkpoints" / PREV
    if last.is_file() or prev.is_file():
        return _resume(last, prev)
    atomic_write(saved_path, yaml.safe_dump(current, sort_keys=True))
    return Start()


def _resume(last: Path, prev: Path) -> Start:
    """Resume from ``last``, else from ``prev``, the save before it: when ``last`` is gone (a
    kill between the renames of a save) or unreadable (a damaged or foreign file: ours are
    written atomically). An unreadable ``last`` is moved aside, so that the next save does not
    keep it as the previous one."""
    unreadable = {}
    for path in (last, prev):
        if not path.is_file():
            continue
        try:
            checkpoint = _read(path)
        except ValueError as err:
            unreadable[path] = str(err)
            continue
        if last in unreadable:
            aside = last.with_name(f"{LAST}.unreadable")
            last.replace(aside)
            log.warning("%s is not a readable checkpoint (%s), moved to %s: resuming from %s, the "
                        "save before it", last, unreadable[last], aside.name, prev.name)
        start = Start(checkpoint=path, step=int(checkpoint["global_step"]),
                      points=int(checkpoint.get("points_processed", 0)))
        log.info("Resuming from %s at %s sequence points", path, f"{start.points:,}")
        return start
    files = " nor from ".join(f"{path} ({why})" for path, why in unreadable.items())
    earlier = "" if prev in unreadable else f" (there is no earlier save, {prev.name}, to resume from)"
    raise ValueError(f"cannot resume from {files}: delete {'them' if len(unreadable) > 1 else 'it'} "
                     f"to start the run over{earlier}")


def _read(checkpoint: Path) -> dict:
    """A checkpoint to resume from, else a ValueError saying why in a few words (torch's own
    messages advise loading the file unsafely and filing an issue)."""
    size = checkpoint.stat().st_size
    if not size:
        raise ValueError("an empty file")
    try:
        with warnings.catch_warnings():  # torch's about the pickle protocol of a foreign file
            warnings.simplefilter("ignore")
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"damaged or not a checkpoint: torch.load fails with {type(err).__name__} "
                         f"on its {size:,} bytes") from None
    if not isinstance(state, dict) or "global_step" not in state:
        raise ValueError("not a checkpoint of a run: no global_step")
    return state


def _differences(saved: dict, current: dict) -> list[str]:
    a, b = _flat(saved), _flat(current)
    a.update({k: b[k] for k, value in ADDED.items() if k not in a and k in b and b[k] == value})
    return [f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def finish(out_dir: Path, result: dict) -> None:
    """Mark the run finished: written last and atomically, so a directory with ``result.json``
    holds a complete run (the report counts only these)."""
    atomic_write(Path(out_dir) / RESULT, json.dumps(result, indent=1, sort_keys=True) + "\n")
