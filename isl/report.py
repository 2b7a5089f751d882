"""Summarise a Hydra sweep: test-RMSE curves per curriculum and the paper's comparison table.

    python -m isl.report runs/multirun/experiment-exp1 [--out DIR] [--xscale log|linear] [--yscale log|linear]

Writes ``<sweep>/report/`` (or ``--out``): ``rmse_sampled.png`` and ``rmse_expected.png`` (one
panel per batching x model cell, one line per curriculum), ``summary.md`` (the tables, the
figures, failed and unfinished jobs) and ``summary.csv`` (the table, one row per
cell and curriculum).

**Jobs** are the directories below the sweep that hold a ``.hydra/`` folder or an
``error.txt``, however deep (an override such as ``paths.runs_dir=/tmp/x`` puts slashes in job
names). Curriculum, batching and model come from Hydra's group choices in ``.hydra/hydra.yaml``
(else from ``.hydra/config.yaml``), the seed from ``config.yaml``. Any other command-line
override whose value differs between jobs (``curriculum.threshold=3,4``) splits cells, so
different configurations are never averaged together as if they were seeds. A job with an
``error.txt`` is *failed*: it is listed with the last line of its traceback and left out of
the table and figures, even where it wrote some metrics (its last value would not be final).
A job is *finished* once it wrote ``result.json`` (last, atomically); one with neither is
*unfinished* (killed, pre-empted or still running: the sweep's command, run again, resumes it)
and is likewise only listed.

**Aggregation over seeds: by evaluation index.** The test set is evaluated at the start, at
the first batch boundary after every ``budget.eval_every`` points and at the end, so the k-th
evaluation of every seed falls within one batch of the same point count (one batch is 0.2% of
the default ``eval_every``). The seeds' k-th values are therefore averaged, and plotted at the
mean of their point counts; seeds with fewer evaluations (an early stop) cut the curve at the
shortest. This keeps every plotted value a real measurement, with no interpolation across the
log-spaced gaps between evaluations.

**The table**, per cell and curriculum (RMSE in pixels, the ``test/rmse_sampled`` the paper
reports unless named ``expected``):

- *final*: the mean ± sample standard deviation over seeds of each seed's last evaluation;
- *best*: the minimum of the seed-mean curve, and the points at which it is first reached;
- *points to reach regular's best*: the points of the first evaluation at which this
  curriculum's seed-mean curve is <= the minimum of ``regular``'s seed-mean curve in the same
  cell (for ``regular`` itself: the points to its own best); "not reached" otherwise;
- *speed-up*: regular's points to its best / this curriculum's points to reach it;
- *reduction*: ``100 * (1 - final / regular's final)``, the % reduction of the final test
  RMSE versus ``regular`` (the paper: about 20x and 74% for ``length``).

**A transfer sweep** (``experiment=transfer``: classifiers, one line per start) gets the same
table in test accuracy against ``from scratch``: final and best accuracy, the points at which a
start first reaches scratch's best accuracy, the speed-up, and the gain in final accuracy.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

METRICS = ("rmse_sampled", "rmse_expected", "accuracy")
ORDER = {"curriculum": ["scratch", "regular", "length", "classes", "sequences"],  # "from X" as X
         "batching": ["sequences", "points"], "model": ["lstm", "ffnn"]}
# Overrides that name the grid's axes or say where things go, never a different configuration.
NOT_A_VARIANT = {"seed", "curriculum", "batching", "model", "experiment", "transfer.source"}
COLUMNS = ["batching", "model", "variant", "curriculum", "seeds", "seed_list", "evaluations",
           "final_points", "final_rmse_mean", "final_rmse_std", "best_rmse", "best_points",
           "points_to_reach_regular_best", "speedup", "final_reduction_pct",
           "final_rmse_expected_mean", "final_rmse_expected_std", "final_accuracy_mean",
           "final_accuracy_std", "best_accuracy", "best_accuracy_points",
           "points_to_reach_scratch_best", "accuracy_gain"]
SCRATCH = "from scratch"  # the baseline line of a transfer sweep (task=classify)


class ReportError(Exception):
    """The sweep cannot be summarised (no usable job): the message names the directory."""


def ordered(kind: str, name: str) -> tuple:
    known = ORDER.get(kind, [])
    key = name.removeprefix("from ")
    return (known.index(key) if key in known else len(known), name)


@dataclass
class Job:
    name: str                       # the job directory relative to the sweep
    num: int                        # Hydra's job number (sort order)
    batching: str = "?"
    model: str = "?"
    curriculum: str = "?"
    seed: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    error: str | None = None        # last line of error.txt
    finished: bool = False          # result.json written
    evals: dict[str, np.ndarray] | None = None  # "points" and METRICS, one value per test evaluation
    variant: str = ""


def find_jobs(sweep: Path, skip: Path | None = None) -> list[Path]:
    marks = [*sweep.rglob(".hydra"), *sweep.rglob("error.txt")]
    dirs = {m.parent for m in marks if skip is None or skip not in m.parents}
    return sorted(dirs)


def read_evals(path: Path) -> dict[str, np.ndarray] | None:
    """The test evaluations of a Lightning ``metrics.csv`` (the rows with ``test/*`` filled)."""
    if not path.is_file():
        return None
    by_points: dict[float, dict[str, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("test/rmse_sampled") and row.get("points"):
                # A repeated evaluation at the same point count replaces the earlier one.
                by_points[float(row["points"])] = {m: float(row.get(f"test/{m}") or "nan") for m in METRICS}
    if not by_points:
        return None
    points = sorted(by_points)
    return {"points": np.array(points), **{m: np.array([by_points[p][m] for p in points]) for m in METRICS}}


def load_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def load_job(sweep: Path, directory: Path) -> Job:
    name = directory.relative_to(sweep).as_posix() if directory != sweep else directory.name
    config = load_yaml(directory / ".hydra" / "config.yaml")
    hydra = load_yaml(directory / ".hydra" / "hydra.yaml").get("hydra", {})
    choices = hydra.get("runtime", {}).get("choices", {})
    head = name.split("/")[0].split("-")[0]
    job = Job(name=name, num=int(hydra.get("job", {}).get("num", head if head.isdigit() else 10**9)))
    target = str((config.get("curriculum") or {}).get("_target_", "?"))
    job.curriculum = str(choices.get("curriculum") or target.rsplit(".", 1)[-1].lower())
    if config.get("task") == "classify":  # a transfer sweep: lines by the predictor started from
        job.curriculum = f"from {(config.get('transfer') or {}).get('source') or 'scratch'}"
    job.batching = str(choices.get("batching") or (config.get("batching") or {}).get("by", "?"))
    job.model = str(choices.get("model") or (config.get("model") or {}).get("network", "?"))
    job.seed = config.get("seed")
    for override in hydra.get("overrides", {}).get("task", []):
        key, _, value = str(override).lstrip("+~").partition("=")
        job.overrides[key] = value
    if (directory / "error.txt").is_file():
        lines = [ln.strip() for ln in (directory / "error.txt").read_text(errors="replace").splitlines()]
        job.error = next((ln for ln in reversed(lines) if ln), "(empty error.txt)")
    job.evals = read_evals(directory / "metrics.csv")
    job.finished = (directory / "result.json").is_file()
    return job


def mark_variants(jobs: list[Job]) -> None:
    """Name, per job, the overrides (other than the grid's axes) whose values differ between jobs."""
    keys = {k for job in jobs for k in job.overrides
            if k not in NOT_A_VARIANT and not k.startswith(("paths.", "hydra."))}
    varying = sorted(k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1)
    for job in jobs:
        job.variant = ",".join(f"{k}={job.overrides.get(k, '')}" for k in varying)


@dataclass
class Curve:
    """One curriculum in one cell: the seeds' test evaluations aligned by evaluation index."""
    curriculum: str
    seeds: list
    points: np.ndarray                  # mean over seeds of the k-th evaluation's point count
    values: dict[str, np.ndarray]       # metric -> (seeds, evaluations)

    def mean(self, metric: str = "rmse_sampled") -> np.ndarray:
        return self.values[metric].mean(axis=0)

    def final(self, metric: str = "rmse_sampled") -> tuple[float, float]:
        last = self.values[metric][:, -1]
        return float(last.mean()), float(last.std(ddof=1)) if len(last) > 1 else math.nan


Cell = tuple[str, str, str]  # (batching, model, variant)


def aggregate(jobs: list[Job]) -> dict[Cell, dict[str, Curve]]:
    groups: dict[Cell, dict[str, list[Job]]] = {}
    for job in jobs:
        if job.finished and job.error is None and job.evals is not None:
            cell = groups.setdefault((job.batching, job.model, job.variant), {})
            cell.setdefault(job.curriculum, []).append(job)
    cells = {}
    for cell in sorted(groups, key=lambda c: (ordered("batching", c[0]), ordered("model", c[1]), c[2])):
        cells[cell] = {}
        for curriculum in sorted(groups[cell], key=lambda c: ordered("curriculum", c)):
            members = sorted(groups[cell][curriculum], key=lambda j: (j.seed is None, j.seed or 0, j.num))
            n = min(len(j.evals["points"]) for j in members)
            stack = {k: np.stack([j.evals[k][:n] for j in members]) for k in ("points", *METRICS)}
            cells[cell][curriculum] = Curve(curriculum, [j.seed for j in members],
                                            stack.pop("points").mean(axis=0), stack)
    return cells


def summarise(curves: dict[str, Curve]) -> list[dict]:
    """The table rows of one cell (keys as COLUMNS, without the cell's own)."""
    regular = curves.get("regular")
    target = regular.mean().min() if regular else math.nan
    regular_points = regular.points[int(np.argmax(regular.mean() <= target))] if regular else math.nan
    regular_final = regular.final()[0] if regular else math.nan
    rows = []
    for name, curve in curves.items():
        mean = curve.mean()
        best = int(np.argmin(mean))
        reached = np.flatnonzero(mean <= target)
        reach = float(curve.points[reached[0]]) if reached.size else math.nan
        final, final_std = curve.final()
        expected, expected_std = curve.final("rmse_expected")
        accuracy, accuracy_std = curve.final("accuracy")
        rows.append({
            "curriculum": name, "seeds": len(curve.seeds),
            "seed_list": " ".join(str(s) for s in curve.seeds), "evaluations": len(mean),
            "final_points": float(curve.points[-1]), "final_rmse_mean": final, "final_rmse_std": final_std,
            "best_rmse": float(mean[best]), "best_points": float(curve.points[best]),
            "points_to_reach_regular_best": reach,
            "speedup": regular_points / reach if reach > 0 else math.nan,
            "final_reduction_pct": 100 * (1 - final / regular_final) if regular_final > 0 else math.nan,
            "final_rmse_expected_mean": expected, "final_rmse_expected_std": expected_std,
            "final_accuracy_mean": accuracy, "final_accuracy_std": accuracy_std})
    return rows


def is_transfer(curves: dict[str, Curve]) -> bool:
    """A cell of classifiers (task=classify), one line per start: compared by accuracy."""
    return all(name.startswith("from ") for name in curves)


def summarise_transfer(curves: dict[str, Curve]) -> list[dict]:
    """The table rows of a transfer cell: test accuracy against training from scratch, the
    classification counterpart of the prediction table (higher is better here)."""
    scratch = curves.get(SCRATCH)
    target = scratch.mean("accuracy").max() if scratch else math.nan
    scratch_points = (scratch.points[int(np.argmax(scratch.mean("accuracy") >= target))]
                      if scratch else math.nan)
    scratch_final = scratch.final("accuracy")[0] if scratch else math.nan
    rows = []
    for name, curve in curves.items():
        mean = curve.mean("accuracy")
        best = int(np.argmax(mean))
        reached = np.flatnonzero(mean >= target)
        reach = float(curve.points[reached[0]]) if reached.size else math.nan
        final, final_std = curve.final("accuracy")
        rows.append({
            "curriculum": name, "seeds": len(curve.seeds),
            "seed_list": " ".join(str(s) for s in curve.seeds), "evaluations": len(mean),
            "final_points": float(curve.points[-1]), "final_accuracy_mean": final,
            "final_accuracy_std": final_std, "best_accuracy": float(mean[best]),
            "best_accuracy_points": float(curve.points[best]), "points_to_reach_scratch_best": reach,
            "speedup": scratch_points / reach if reach > 0 else math.nan,
            "accuracy_gain": final - scratch_final})
    return rows


# --- writing -------------------------------------------------------------------------------------

def cell_title(cell: Cell) -> str:
    batching, model, variant = cell
    return f"{model}, batching={batching}" + (f", {variant}" if variant else "")


def fmt(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return {"rmse": f"{value:.3f}", "points": f"{value:,.0f}", "ratio": f"{value:.1f}×",
            "pct": f"{value:.1f}%"}[kind]


def mean_std(mean: float, std: float) -> str:
    return f"{mean:.3f}" + ("" if math.isnan(std) else f" ± {std:.3f}")


def reach(points: float, has_baseline: bool) -> str:
    if not has_baseline:
        return "—"
    return "not reached" if math.isnan(points) else fmt(points, "points")


def markdown_table(rows: list[dict], has_regular: bool) -> list[str]:
    out = ["| curriculum | seeds | final test RMSE | best test RMSE (at points) | points to reach "
           "regular's best | speed-up | reduction vs regular | final RMSE (expected) | final accuracy |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['curriculum']} | {r['seeds']} | {mean_std(r['final_rmse_mean'], r['final_rmse_std'])} | "
                   f"{r['best_rmse']:.3f} ({fmt(r['best_points'], 'points')}) | "
                   f"{reach(r['points_to_reach_regular_best'], has_regular)} | "
                   f"{fmt(r['speedup'], 'ratio')} | {fmt(r['final_reduction_pct'], 'pct')} | "
                   f"{mean_std(r['final_rmse_expected_mean'], r['final_rmse_expected_std'])} | "
                   f"{mean_std(r['final_accuracy_mean'], r['final_accuracy_std'])} |")
    return out


def transfer_table(rows: list[dict], has_scratch: bool) -> list[str]:
    out = ["| start | seeds | final test accuracy | best test accuracy (at points) | points to reach "
           "scratch's best | speed-up | gain vs scratch |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        gain = "—" if math.isnan(r["accuracy_gain"]) else f"{r['accuracy_gain']:+.3f}"
        out.append(f"| {r['curriculum']} | {r['seeds']} | "
                   f"{mean_std(r['final_accuracy_mean'], r['final_accuracy_std'])} | "
                   f"{r['best_accuracy']:.3f} ({fmt(r['best_accuracy_points'], 'points')}) | "
                   f"{reach(r['points_to_reach_scratch_best'], has_scratch)} | "
                   f"{fmt(r['speedup'], 'ratio')} | {gain} |")
    return out


def write_report(sweep: Path, out: Path | None = None, xscale: str = "log", yscale: str = "linear") -> Path:
    """Write the report of ``sweep`` into ``out`` (default ``<sweep>/report``); returns ``out``."""
    from isl.viz.curves import BAND, plot_curves

    sweep = Path(sweep)
    if not sweep.is_dir():
        raise ReportError(f"{sweep}: not a directory")
    out = Path(out) if out else sweep / "report"
    jobs = sorted((load_job(sweep, d) for d in find_jobs(sweep, skip=out)), key=lambda j: (j.num, j.name))
    mark_variants(jobs)
    cells = aggregate(jobs)
    if not cells:
        what = (f"{len(jobs)} job(s), none finished" if jobs
                else "no job directories (.hydra/ or error.txt)")
        raise ReportError(f"no usable job in {sweep}: {what}")
    out.mkdir(parents=True, exist_ok=True)

    figures = {}
    for metric, label in (("rmse_sampled", "sampled"), ("rmse_expected", "expected value")):
        figures[metric] = plot_curves(cells, metric, out / f"{metric}.png", xscale=xscale,
                                      title=f"Test RMSE ({label}) per curriculum",
                                      cell_title=cell_title, yscale=yscale)
    figures["accuracy"] = plot_curves(cells, "accuracy", out / "accuracy.png", xscale=xscale,
                                      title="Test accuracy (class at the last point)",
                                      cell_title=cell_title, ylabel="test accuracy")

    table = []
    transfer = any(is_transfer(curves) for curves in cells.values())
    md = [f"# Sweep report: `{sweep}`", "",
          f"{len(jobs)} jobs: {sum(j.finished and j.error is None for j in jobs)} summarised, "
          f"{sum(j.error is not None for j in jobs)} failed, "
          f"{sum(not j.finished and j.error is None for j in jobs)} unfinished. "
          + ("Classifiers (task=classify), one line per start: test accuracy at the last point "
             "of each test sequence; *final*: mean ± sample std over seeds of each seed's last "
             "evaluation; *best*, *points to reach* and *speed-up* use the seed-mean curve "
             "(seeds aligned by evaluation index); *speed-up* = scratch's points to its best / "
             "the start's points to reach it; *gain* = final accuracy − scratch's final."
             if transfer else
             "RMSE in pixels of the next pen offset (per coordinate, as the paper's code); "
             "*final*: mean ± sample std over seeds of each seed's last evaluation; *best*, "
             "*points to reach* and *speed-up* use the seed-mean curve (seeds aligned by "
             "evaluation index); *speed-up* = regular's points to its best / the curriculum's "
             "points to reach it; *reduction* = 100 × (1 − final / regular's final), positive "
             "where the final sampled RMSE is lower than regular's."), ""]
    for cell, curves in cells.items():
        if is_transfer(curves):
            rows = summarise_transfer(curves)
            md += [f"## {cell_title(cell)}", "", *transfer_table(rows, SCRATCH in curves), ""]
        else:
            rows = summarise(curves)
            md += [f"## {cell_title(cell)}", "", *markdown_table(rows, "regular" in curves), ""]
        table += [{"batching": cell[0], "model": cell[1], "variant": cell[2], **r} for r in rows]
        baseline = SCRATCH if is_transfer(curves) else "regular"
        if baseline not in curves:
            md += [f"No `{baseline}` runs in this cell: nothing to compare against.", ""]
    rmse_figures = ["![Test RMSE, sampled](rmse_sampled.png)", "",
                    "![Test RMSE, expected value](rmse_expected.png)", ""]
    accuracy_figure = ["![Test accuracy](accuracy.png)", ""]
    md += ["## Figures", "",
           f"Line: mean over seeds; band: {BAND} over seeds. "
           + ("The evaluation before training (0 points) is off the log axis. " if xscale == "log" else "")
           + "Dotted: regular's best (seed mean).", "",
           *(accuracy_figure + rmse_figures if transfer else rmse_figures + accuracy_figure)]
    failed = [j for j in jobs if j.error is not None]
    unfinished = [j for j in jobs if not j.finished and j.error is None]
    md += ["## Failed jobs", "", *([f"- `{j.name}`: {j.error}" for j in failed] or ["None."]), "",
           "## Unfinished jobs", "",
           *(["Killed, pre-empted or still running; the sweep's command, run again, resumes them.",
              ""] if unfinished else []),
           *([f"- `{j.name}`" for j in unfinished] or ["None."]), ""]
    (out / "summary.md").write_text("\n".join(md))
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in table:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isl.report", description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="the sweep directory (runs/multirun/<sweep>)")
    parser.add_argument("--out", type=Path, help="where to write (default: <sweep>/report)")
    parser.add_argument("--xscale", choices=("log", "linear"), default="log",
                        help="x-axis of the figures (default: log)")
    parser.add_argument("--yscale", choices=("log", "linear"), default="linear",
                        help="y-axis of the RMSE figures (default: linear; log shows late "
                             "differences between curricula that an early spike would flatten)")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.sweep, args.out, args.xscale, args.yscale)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {out / 'summary.md'}\ntable: {out / 'summary.csv'}\n"
          f"figures: {out / 'rmse_sampled.png'}, {out / 'rmse_expected.png'}, {out / 'accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
