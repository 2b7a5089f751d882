"""A sweep's finished runs kept in git, so that its report can be made again anywhere and the
sweep resumed on a fresh clone.

    python -m isl.tools.records runs/multirun/experiment-ablation      # -> results/experiment-ablation
    python -m isl.tools.records --restore results/experiment-ablation  # -> runs/multirun/experiment-ablation
    python -m isl.tools.records check docs/results.md                  # every marked table against its records

A *record* is what a finished job's directory holds but its weights and pictures: Hydra's
``.hydra/`` (the report reads the job's choices there), ``run-config.yaml``, ``metrics.csv``,
``reference.json``, ``result.json``, ``generation.csv``, ``run.log`` and ``generated/`` (the
digits behind its generation scores, ``isl.tools.quality``). Only finished jobs
(``result.json``) are kept: an unfinished one without its checkpoint could not resume.
``isl.tools.report`` reads a records directory as it reads a sweep. Restored into ``runs/``, the sweep's
own command finds its finished jobs there and only reports them (``isl.training.rundir``), so a sweep too
long for one session goes on where the last one stopped; records already in ``runs/`` are left
as they are. What is written after a job finished is brought into its record too:
``generation.csv`` (``isl.tools.quality`` appends the scores of its kept weights) where the record holds
an earlier state of it, in either direction (a record taken before the scoring is refreshed, and a
newer file is never replaced by an older one), and each ``generated/`` set the record lacks.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
from pathlib import Path

from isl.tools.sweeps import find_jobs

ROOT = Path(__file__).resolve().parents[2]
RESULTS, SWEEPS = ROOT / "results", ROOT / "runs" / "multirun"
NOT_KEPT = shutil.ignore_patterns("checkpoints", "*.ckpt", "*.png", "*.gif", "wandb", "report")
APPENDED = "generation.csv"  # grows after the job's end, one row per scored copy of its weights
GENERATED = "generated"      # sets of generated digits, added after the job's end


def copy_finished(source: Path, dest: Path) -> list[str]:
    """Copy the record of every finished job under ``source`` to the same place under ``dest``,
    unless ``dest`` has that job already (then only bring what is written after the end up to
    date: its ``APPENDED`` file and ``GENERATED`` sets);
    return the jobs copied or brought up to date."""
    from isl.training.rundir import RESULT

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


# A table in a document that comes from records is marked on the line before it:
#   <!-- records: results/<sweep>; where: variant=...; columns: curriculum, final_rmse_mean ± final_rmse_std, -, ...; other: ... -->
# ``columns`` names, for each column of the table, the summary.csv field(s) of isl.tools.report its
# numbers are (one name per number in the cell, joined by ±; "-" for a column not checked), the
# first being the key that finds a row; ``where`` picks the cell (summary.csv fields), and
# ``other`` lists the beginnings of row keys that are not from the records (a trivial level, another
# experiment's row for comparison).
MARK = re.compile(r"<!--\s*records:\s*(?P<spec>.*?)\s*-->")
# A number as the document prints it: 1,234 / −0.5 / 9.5·10⁶ / 10⁷ (one significant digit more
# than it shows: 1.0·10⁷).
NUMBER = re.compile(r"(?P<sign>[−-])?(?:10(?P<bare>[⁰¹²³⁴⁵⁶⁷⁸⁹]+)"
                    r"|(?P<digits>\d[\d,]*(?:\.(?P<decimals>\d+))?)(?:·10(?P<power>[⁰¹²³⁴⁵⁶⁷⁸⁹]+))?)")
SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
NOT_A_NUMBER = ("—", "not reached", "–")


def printed_numbers(cell: str) -> list[tuple[float, float]]:
    """The numbers printed in a table cell, each with half a unit of its last printed digit."""
    found = []
    for m in NUMBER.finditer(cell.replace("**", "")):
        if m["bare"]:
            scale = 10.0 ** int(m["bare"].translate(SUPERSCRIPTS))
            found.append((scale * (-1 if m["sign"] else 1), 0.05 * scale))
            continue
        scale = 10.0 ** int(m["power"].translate(SUPERSCRIPTS)) if m["power"] else 1.0
        value = float(m["digits"].replace(",", "")) * scale * (-1 if m["sign"] else 1)
        found.append((value, 0.5 * 10.0 ** -len(m["decimals"] or "") * scale))
    return found


def check_table(spec: dict, lines: list[str], where: str) -> list[str]:
    """The cells of one marked table that differ from the records beyond their printed rounding."""
    from isl.tools.report_tables import sweep_cells, table_rows
    _, cells = sweep_cells(ROOT / spec["records"])
    rows = [r for cell, curves in cells.items() for r in table_rows(cell, curves)]
    for condition in filter(None, spec.get("where", "").split(",")):
        key, value = condition.strip().split("=", 1)
        rows = [r for r in rows if str(r[key]) == value]
    columns = [c.strip() for c in spec["columns"].split(",")]
    other = {o.strip() for o in spec.get("other", "").split(",") if o.strip()}
    by_key = {str(r[columns[0]]): r for r in rows}
    problems = []
    for line in lines:
        cells_of_line = [c.strip() for c in line.strip().strip("|").split("|")]
        key = cells_of_line[0].replace("*", "").replace("`", "").strip()
        if any(key.startswith(o) for o in other):
            continue
        if key not in by_key:
            problems.append(f"{where}: row {key!r} is in no record of {spec['records']} (rows: {sorted(by_key)})")
            continue
        for column, text in zip(columns[1:], cells_of_line[1:]):
            if column == "-":
                continue
            fields = [f.strip() for f in column.split("±")]
            values = [by_key[key].get(f, float("nan")) for f in fields]
            printed = printed_numbers(text)
            if len(printed) < len(values):  # a std of one seed is not printed (isl.tools.report's mean_std)
                values = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
            if any(t in text for t in NOT_A_NUMBER) and not printed:
                if not all(isinstance(v, float) and math.isnan(v) for v in values):
                    problems.append(f"{where}, row {key!r}, column {column!r}: printed {text!r}, records {values}")
                continue
            if len(printed) != len(values) or any(
                    not isinstance(v, (int, float)) or math.isnan(v) or abs(v - p) > half + 1e-9
                    for v, (p, half) in zip(values, printed)):
                problems.append(f"{where}, row {key!r}, column {column!r}: printed {text!r}, records "
                                + ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values))
    return problems


def check(document: Path) -> list[str]:
    """Every marked table of ``document`` against its records: the cells that differ."""
    lines = Path(document).read_text().splitlines()
    problems, tables = [], 0
    for number, line in enumerate(lines):
        if not (m := MARK.search(line)):
            continue
        tables += 1
        records, *parts = m["spec"].split(";")
        spec = {"records": records.strip(), **{k.strip(): v.strip() for k, v in (p.split(":", 1) for p in parts)}}
        start = number + 1
        while start < len(lines) and not lines[start].startswith("|"):
            start += 1
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        where = f"{document}:{start + 1} (the table from {spec['records']})"
        problems += check_table(spec, lines[start + 2:end], where)
    if not tables:
        problems.append(f"{document}: no table is marked as coming from records (<!-- records: ... -->)")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:
        checker = argparse.ArgumentParser(prog="python -m isl.tools.records check",
                                          description="recompute every table marked as coming from records")
        checker.add_argument("document", type=Path, help="e.g. docs/results.md")
        document = checker.parse_args(argv[1:]).document
        problems = check(document)
        print("\n".join(problems) if problems else f"{document}: every marked table matches its records")
        return 1 if problems else 0
    parser = argparse.ArgumentParser(prog="python -m isl.tools.records", description=__doc__.split("\n")[0])
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
