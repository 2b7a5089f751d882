"""A sweep's finished runs kept in git, so that its report can be made again anywhere and the
sweep resumed on a fresh clone.

    python -m isl.records runs/multirun/experiment-ablation      # -> results/experiment-ablation
    python -m isl.records --restore results/experiment-ablation  # -> runs/multirun/experiment-ablation

A *record* is what a finished job's directory holds but its weights and pictures: Hydra's
``.hydra/`` (the report reads the job's choices there), ``run-config.yaml``, ``metrics.csv``,
``reference.json``, ``result.json``, ``generation.csv``, ``run.log`` and ``generated/`` (the
digits behind its generation scores, ``isl.quality``). Only finished jobs
(``result.json``) are kept: an unfinished one without its checkpoint could not resume.
``isl.report`` reads a records directory as it reads a sweep. Restored into ``runs/``, the sweep's
own command finds its finished jobs there and only reports them (``isl.rundir``), so a sweep too
long for one session goes on where the last one stopped; records already in ``runs/`` are left
as they are. What is written after a job finished is brought into its record too:
``generation.csv`` (``isl.quality`` appends the scores of its kept weights) where the record holds
an earlier state of it, in either direction (a record taken before the scoring is refreshed, and a
newer file is never replaced by an older one), and each ``generated/`` set the record lacks.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from isl.rundir import RESULT
from isl.sweeps import find_jobs

ROOT = Path(__file__).resolve().parents[1]
RESULTS, SWEEPS = ROOT / "results", ROOT / "runs" / "multirun"
NOT_KEPT = shutil.ignore_patterns("checkpoints", "*.ckpt", "*.png", "*.gif", "wandb", "report")
APPENDED = "generation.csv"  # grows after the job's end, one row per scored copy of its weights
GENERATED = "generated"      # sets of generated digits, added after the job's end


def copy_finished(source: Path, dest: Path) -> list[str]:
    """Copy the record of every finished job under ``source`` to the same place under ``dest``,
    unless ``dest`` has that job already (then only bring what is written after the end up to
    date: its ``APPENDED`` file and ``GENERATED`` sets);
    return the jobs copied or brought up to date."""
    copied = []
    for job in find_jobs(source):
        name = job.relative_to(source)
        if not (job / RESULT).is_file():
            continue
        if not (dest / name).exists():
            shutil.copytree(job, dest / name, ignore=NOT_KEPT)
            copied.append(name.as_posix())
            continue
        if _extends(job / APPENDED, dest / name / APPENDED):
            shutil.copy2(job / APPENDED, dest / name / APPENDED)
            copied.append(f"{name.as_posix()} ({APPENDED})")
        for packed in sorted((job / GENERATED).glob("*.tar.gz")):
            if not (dest / name / GENERATED / packed.name).exists():
                (dest / name / GENERATED).mkdir(exist_ok=True)
                shutil.copy2(packed, dest / name / GENERATED / packed.name)
                copied.append(f"{name.as_posix()} ({GENERATED}/{packed.name})")
    for name in ("multirun.yaml",):  # the sweep's own config, beside its jobs
        if (source / name).is_file() and not (dest / name).exists():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, dest / name)
    return copied


def _extends(newer: Path, older: Path) -> bool:
    """Whether ``newer`` holds all of ``older`` (absent: nothing) and more after it."""
    if not newer.is_file():
        return False
    old = older.read_bytes() if older.is_file() else b""
    new = newer.read_bytes()
    return len(new) > len(old) and new.startswith(old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isl.records", description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="runs/multirun/<sweep> (or results/<sweep> with --restore)")
    parser.add_argument("--restore", action="store_true", help="copy records back into runs/multirun/")
    parser.add_argument("--to", type=Path, help="where to copy (default: results/<sweep>, "
                                                "or runs/multirun/<sweep> with --restore)")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        parser.error(f"{args.sweep} is not a directory")
    dest = args.to or (SWEEPS if args.restore else RESULTS) / args.sweep.resolve().name
    copied = copy_finished(args.sweep, dest)
    print(f"{len(copied)} finished job(s) copied or brought up to date in {dest}" + "".join(f"\n  {c}" for c in copied))
    return 0


if __name__ == "__main__":
    sys.exit(main())
