"""The jobs of a Hydra sweep and their test curves, aligned over seeds.

**Jobs** are the directories below the sweep that hold a ``.hydra/`` folder or an
``error.txt``, however deep (an override such as ``paths.runs_dir=/tmp/x`` puts slashes in job
names). Curriculum, batching and model come from Hydra's group choices in ``.hydra/hydra.yaml``
(else from ``.hydra/config.yaml``), the seed from ``config.yaml``. An ``arm`` choice
(``experiment=warmup``: a curriculum with or without a learning-rate warm-up) names the job's
line in place of its curriculum, so each arm is a line of its cell, compared with ``regular``.
Any other command-line override whose value differs between jobs (``curriculum.threshold=3,4``)
splits cells, so different configurations are never averaged together as if they were seeds. Cells come
by batching and model, then in the order of their first job (a sweep lists its variants so). A
job with an ``error.txt`` is *failed*: it is listed with the last line of its traceback and left
out of the table and figures, even where it wrote some metrics (its last value would not be
final). A job is *finished* once it wrote ``result.json`` (last, atomically); one with neither is
*unfinished* (killed, pre-empted or still running: the sweep's command, run again, resumes it)
and is likewise only listed.

**Aggregation over seeds: by scheduled evaluation point.** The test set is evaluated at the
first batch boundary at or past each point of the run's schedule (``isl.training.schedule.evaluation_points``
of its ``budget``), so each evaluation serves the last scheduled point at or below its point
count; one batch can cross two close points (early log-spaced ones), which then share one
evaluation. Seeds with the same budget are aligned by the point each evaluation served: the
values of the points every seed has are averaged and plotted at the mean of their point counts,
and points some seed lacks are left out, naming the jobs in ``Curve.warnings``. This keeps every
plotted value a real measurement, with no interpolation across the gaps between evaluations.
Seeds whose schedules differ (another ``budget``) are averaged by evaluation index, cut at the
shortest, and named in the warnings too.

**The original test protocol** (``budget.test_protocol=original``, ``setup=original``): a test
row every 10 training batches, each over 50 test sequences, about 1,000 noisy rows in 10^7
points. Its curve is read as the paper's figures read it (R/processruns.R): a centred rolling
mean over ``window`` rows (of every metric and of the points; fewer rows at the ends),
interpolated at a grid fixed by the budget (every 1/100 of it and 4 log-spaced points per
decade over its last three), NaN where a run has no smoothed value (before its first, after its
last); the full evaluations at 0 and at the end are kept as measured, so a curve's final value
is the whole test subset's in both protocols. Every seed with the same budget has the same
grid, so they align by index.

**Reference levels**: each run's ``reference.json`` (``isl.data.reference``: what trivial
predictors score on its test set); a curve carries its first seed's.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from isl.training.schedule import evaluation_points

METRICS = ("rmse_sampled", "rmse_expected", "nll_px", "bits_per_point", "accuracy")
HIGHER_IS_BETTER = frozenset({"accuracy", "recognised"})  # the rest are errors and losses
ALLDATA = "rmse_sampled_alldata"  # logged by the original protocol's test batches only
WINDOW = 10                       # rows of the rolling mean over the original protocol's test batches
GRID_BINS, GRID_PER_DECADE = 100, 4  # where its smoothed curve is read
ORDER = {"curriculum": ["scratch", "regular", "regular_lr_warmup", "length", "length_warmup",  # "from X" as X
                        "length_warmup_lr_warmup", "classes", "sequences"],
         "batching": ["sequences", "points"], "model": ["lstm", "ffnn"]}
# Overrides that name the grid's axes or say where things go, never a different configuration.
NOT_A_VARIANT = {"seed", "curriculum", "batching", "model", "experiment", "transfer.source", "arm"}


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
    budget: dict = field(default_factory=dict)     # the config's budget: its evaluation schedule
    protocol: str = "full"                         # budget.test_protocol
    reference: dict = field(default_factory=dict)  # reference.json: trivial predictors' levels


def find_jobs(sweep: Path, skip: Path | None = None) -> list[Path]:
    marks = [*sweep.rglob(".hydra"), *sweep.rglob("error.txt")]
    dirs = {m.parent for m in marks if skip is None or skip not in m.parents}
    return sorted(dirs)


def read_evals(path: Path) -> dict[str, np.ndarray] | None:
    """The test evaluations of a Lightning ``metrics.csv`` (the rows with ``test/*`` filled);
    ``ALLDATA`` is NaN but in the original protocol's test-batch rows."""
    if not path.is_file():
        return None
    by_points: dict[float, dict[str, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("test/rmse_sampled") and row.get("points"):
                # A repeated evaluation at the same point count replaces the earlier one.
                by_points[float(row["points"])] = {m: float(row.get(f"test/{m}") or "nan")
                                                   for m in (*METRICS, ALLDATA)}
    if not by_points:
        return None
    points = sorted(by_points)
    return {"points": np.array(points),
            **{m: np.array([by_points[p][m] for p in points]) for m in (*METRICS, ALLDATA)}}


def smooth_test_batches(evals: dict[str, np.ndarray], budget: int, window: int = WINDOW) -> dict[str, np.ndarray]:
    """The original protocol's evaluations as its curve is drawn (see the module's docstring):
    the test-batch rows smoothed over ``window`` rows and read at the grid of ``budget``; the
    full evaluations as they are."""
    batch = ~np.isnan(evals[ALLDATA])
    if not batch.any():
        return evals
    grid = np.array([p for p in evaluation_points(budget, max(budget // GRID_BINS, 1), GRID_PER_DECADE)
                     if 0 < p < budget], dtype=float)
    x = rolling_mean(evals["points"][batch], window)
    inside = (grid >= x[0]) & (grid <= x[-1])
    out = {"points": np.concatenate([evals["points"][~batch], grid])}
    for m in (*METRICS, ALLDATA):
        read = np.where(inside, np.interp(grid, x, rolling_mean(evals[m][batch], window)), np.nan)
        out[m] = np.concatenate([evals[m][~batch], read])
    order = np.argsort(out["points"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Centred mean over ``window`` rows, over the rows there are at the ends (zoo::rollmean
    with partial windows, as the paper's R code)."""
    kernel = np.ones(min(window, len(values)))
    return np.convolve(values, kernel, "same") / np.convolve(np.ones(len(values)), kernel, "same")


def load_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load_job(sweep: Path, directory: Path, window: int = WINDOW) -> Job:
    name = directory.relative_to(sweep).as_posix() if directory != sweep else directory.name
    config = load_yaml(directory / ".hydra" / "config.yaml")
    hydra = load_yaml(directory / ".hydra" / "hydra.yaml").get("hydra", {})
    choices = hydra.get("runtime", {}).get("choices", {})
    head = name.split("/")[0].split("-")[0]
    num = str(hydra.get("job", {}).get("num", head))  # "???" in a single run's (python run.py)
    job = Job(name=name, num=int(num) if num.isdigit() else 10**9)
    target = str((config.get("curriculum") or {}).get("_target_", "?"))
    job.curriculum = str(choices.get("curriculum") or target.rsplit(".", 1)[-1].lower())
    if choices.get("arm"):
        job.curriculum = str(choices["arm"])
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
    job.budget = config.get("budget") or {}
    job.protocol = job.budget.get("test_protocol", "full")
    if job.protocol == "original" and job.evals is not None:
        job.evals = smooth_test_batches(job.evals, int(job.budget.get("points") or job.evals["points"][-1]), window)
    job.reference = load_json(directory / "reference.json")
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
    reference: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    protocol: str = "full"              # the seeds' budget.test_protocol

    def mean(self, metric: str = "rmse_sampled") -> np.ndarray:
        return self.values[metric].mean(axis=0)

    def first_reaching(self, target: float, metric: str = "rmse_sampled") -> float:
        """The points of the first evaluation whose seed mean is as good as ``target`` (<= for
        an RMSE, >= for accuracy); NaN where none is."""
        mean = self.mean(metric)
        hit = np.flatnonzero(mean >= target if metric in HIGHER_IS_BETTER else mean <= target)
        return float(self.points[hit[0]]) if hit.size else math.nan

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
    # Variants in the sweep's order (an ablation's reference row first, as its command lists it).
    first_job = {cell: min(j.num for members in by_name.values() for j in members)
                 for cell, by_name in groups.items()}
    for cell in sorted(groups, key=lambda c: (ordered("batching", c[0]), ordered("model", c[1]),
                                              first_job[c], c[2])):
        cells[cell] = {}
        for curriculum in sorted(groups[cell], key=lambda c: ordered("curriculum", c)):
            members = sorted(groups[cell][curriculum], key=lambda j: (j.seed is None, j.seed or 0, j.num))
            rows, warnings = aligned_rows(members)
            stack = {k: np.stack([j.evals[k][r] for j, r in zip(members, rows)]) for k in ("points", *METRICS)}
            cells[cell][curriculum] = Curve(curriculum, [j.seed for j in members],
                                            stack.pop("points").mean(axis=0), stack,
                                            members[0].reference, warnings, members[0].protocol)
    return cells


def aligned_rows(members: list[Job]) -> tuple[list[np.ndarray], list[str]]:
    """Which evaluation rows of each seed make the curve (see the module's docstring), and what
    makes averaging them questionable, naming the jobs."""
    budgets = {json.dumps(j.budget, sort_keys=True) for j in members}
    if len(budgets) == 1 and members[0].protocol == "full" and {"points", "eval_every"} <= set(members[0].budget):
        served = [np.unique(served_points(j), return_index=True) for j in members]  # (points, first rows)
        common = functools.reduce(np.intersect1d, [points for points, _ in served])
        rows = [first[np.isin(points, common)] for points, first in served]
        left_out = {j.name: len(j.evals["points"]) - len(r) for j, r in zip(members, rows)}
        if any(left_out.values()):
            return rows, ["evaluations at scheduled points some seed lacks (one batch crossed two "
                          "points) are left out: " + "; ".join(f"`{name}`: {n}" for name, n in left_out.items() if n)]
        return rows, []
    n = min(len(j.evals["points"]) for j in members)
    warnings = []
    if len(budgets) > 1:
        warnings.append("evaluation schedules differ (budget), averaged by evaluation index: " + "; ".join(
            f"`{j.name}`: {j.budget}" for j in members))
    counts = [len(j.evals["points"]) for j in members]
    if len(set(counts)) > 1:
        warnings.append(f"evaluation counts differ, curves cut at {n}: " + "; ".join(
            f"`{j.name}`: {c}" for j, c in zip(members, counts)))
    return [np.arange(n)] * len(members), warnings


def served_points(job: Job) -> np.ndarray:
    """The scheduled point each of the job's evaluations served: the last of its schedule at or
    below the evaluation's point count."""
    b = job.budget
    schedule = np.array(evaluation_points(int(b["points"]), int(b["eval_every"]), int(b.get("evals_per_decade") or 0)))
    return schedule[np.searchsorted(schedule, job.evals["points"], side="right") - 1]
