"""What a sweep's report says, computed: its table rows per cell, the along-the-way readings, the cells
side by side and the figures to draw (``Report``, from ``build_report``); ``isl.tools.report`` writes it.
The measures are defined in ``isl.tools.report``'s docstring."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from isl.tools.sweeps import WINDOW, Cell, Curve, Job, aggregate, find_jobs, load_job, mark_variants

LIKELIHOODS = {"nll_px": "NLL (nats/point, pixels)", "bits_per_point": "bits/point (discretised)"}
REFERENCES = {"zero_rmse": "no movement", "repeat_last_rmse": "repeat the last offset",
              "mean_rmse": "mean offset", "empirical_sample_rmse": "sample the training offsets",
              "empirical_nll_px": "training offsets' histogram",
              "empirical_bits_per_point": "training offsets' histogram"}
COLUMNS = ["batching", "model", "variant", "test_protocol", "curriculum", "seeds", "seed_list", "evaluations",
           "final_points", "final_rmse_mean", "final_rmse_std", "best_rmse", "best_points",
           "points_to_reach_regular_best", "speedup", "final_reduction_pct",
           "final_rmse_expected_mean", "final_rmse_expected_std",
           *(f"{key}_{m}" for m in LIKELIHOODS for key in ("final", "final_std", "best", "best_points",
                                                            "points_to_reach_regular_best", "vs_regular")),
           *(f"{key}_{m}" for m in ("rmse_expected", *LIKELIHOODS)
             for key in ("speedup", "reduction_pct")),
           *(f"{key}_rmse_expected" for key in ("best", "best_points", "points_to_reach_regular_best")),
           "final_accuracy_mean", "final_accuracy_std", "best_accuracy", "best_accuracy_points",
           "points_to_reach_scratch_best", "accuracy_gain", *REFERENCES]
SCRATCH = "from scratch"  # the baseline line of a transfer sweep (task=classify)


class ReportError(Exception):
    """The sweep cannot be summarised (no usable job): the message names the directory."""


@dataclass
class Along:
    """The seed-mean ``metric`` of each line at the evaluations nearest ``marks`` points, and how many
    times those points ``baseline`` needs to do as well (``along_the_way``)."""
    metric: str
    baseline: str
    marks: list[float]
    values: dict[str, list[float | None]]  # per line and mark; None: no evaluation within 10% of the mark
    # per line but the baseline and per mark: (factor, reached); (0, True): the untrained baseline is
    # already as good; (its last points / the mark's, False): it never is; None: no factor to read
    factors: dict[str, list[tuple[float, bool] | None]]


@dataclass
class CellReport:
    """One cell's part of the report."""
    cell: Cell
    rows: list[dict]          # its rows of summary.csv (COLUMNS)
    transfer: bool            # classifiers, compared with SCRATCH by accuracy (is_transfer)
    has_baseline: bool        # regular (SCRATCH in a transfer cell) is one of its lines
    reference: dict           # the trivial predictors' levels (reference.json)
    warnings: list[tuple[str, list[str]]]  # (curriculum, its warnings), for the curricula with any
    along: list[Along]        # the along-the-way tables that have a mark

    @property
    def baseline(self) -> str:
        return SCRATCH if self.transfer else "regular"


@dataclass
class Report:
    """A sweep's report, ready to write (``isl.tools.report.write_report``)."""
    sweep: Path
    jobs: list[Job]
    cells: dict[Cell, dict[str, Curve]]  # the curves, for the figures
    parts: list[CellReport]
    protocols: list[str]      # the runs' budget.test_protocol values
    window: int               # rows of the rolling mean over the original protocol's test batches
    figures: list[str]        # the metrics to draw, one figure each
    side_by_side: list[tuple[Cell, dict, dict]]  # (cell, regular's row, another curriculum's row)

    @property
    def transfer(self) -> bool:
        return any(part.transfer for part in self.parts)

    @property
    def rows(self) -> list[dict]:
        return [r for part in self.parts for r in part.rows]


def build_report(sweep: Path, skip: Path | None = None, at: list[float] | None = None,
                 window: int = WINDOW) -> Report:
    """The report of ``sweep``; ``skip``: the report's own folder below it; ``at``: the points of the
    along-the-way tables (default: ``default_marks``); ``window``: the rows of the rolling mean over the
    original test protocol's batches."""
    jobs, cells = sweep_cells(sweep, skip, window)
    parts = [cell_report(cell, curves, at) for cell, curves in cells.items()]
    curves = [c for cell_curves in cells.values() for c in cell_curves.values()]
    # the moves head has no density: no figure for nll_px where no run has one (NO_DENSITY)
    likelihoods = [m for m in LIKELIHOODS if any(np.isfinite(c.mean(m)).any() for c in curves)]
    return Report(sweep=sweep, jobs=jobs, cells=cells, parts=parts, protocols=sorted({c.protocol for c in curves}),
                  window=window, figures=["rmse_sampled", "rmse_expected", *likelihoods, "accuracy"],
                  side_by_side=paired_with_regular([r for part in parts for r in part.rows]))


def cell_report(cell: Cell, curves: dict[str, Curve], at: list[float] | None) -> CellReport:
    transfer = is_transfer(curves)
    baseline = SCRATCH if transfer else "regular"
    warnings = [(c.curriculum, c.warnings + ([f"only {len(c.points)} evaluation(s), too few for a curve: "
                                              "run with budget.evals_per_decade=4 (or a smaller budget.eval_every)"]
                                             if len(c.points) < 3 else []))
                for c in curves.values()]
    marks = at or default_marks(max(c.points[-1] for c in curves.values()))
    along = [along_the_way(curves, metric, baseline, marks)
             for metric in (("accuracy",) if transfer else ("rmse_sampled", "rmse_expected"))]
    return CellReport(cell=cell, rows=table_rows(cell, curves), transfer=transfer, has_baseline=baseline in curves,
                      reference=next(iter(curves.values())).reference,
                      warnings=[(name, w) for name, w in warnings if w], along=[a for a in along if a])


def sweep_cells(sweep: Path, skip: Path | None = None, window: int = WINDOW) -> tuple[list, dict]:
    """(the jobs of ``sweep``, their curves by cell: ``isl.tools.sweeps.aggregate``); ``skip``: a folder
    below it that holds no jobs (the report's own)."""
    sweep = Path(sweep)
    if not sweep.is_dir():
        raise ReportError(f"{sweep}: not a directory")
    jobs = sorted((load_job(sweep, d, window) for d in find_jobs(sweep, skip=skip)), key=lambda j: (j.num, j.name))
    mark_variants(jobs)
    cells = aggregate(jobs)
    if not cells:
        what = (f"{len(jobs)} job(s), none finished" if jobs
                else "no job directories (.hydra/ or error.txt)")
        raise ReportError(f"no usable job in {sweep}: {what}")
    return jobs, cells


def table_rows(cell: tuple, curves: dict[str, Curve]) -> list[dict]:
    """The rows of ``summary.csv`` for one cell (COLUMNS)."""
    rows = summarise_transfer(curves) if is_transfer(curves) else summarise(curves)
    return [{"batching": cell[0], "model": cell[1], "variant": cell[2],
             "test_protocol": curves[r["curriculum"]].protocol, **r} for r in rows]


def summarise(curves: dict[str, Curve]) -> list[dict]:
    """The table rows of one cell (keys as COLUMNS, without the cell's own)."""
    regular = curves.get("regular")
    target = np.nanmin(regular.mean()) if regular else math.nan
    regular_points = regular.first_reaching(target) if regular else math.nan
    regular_final = regular.final()[0] if regular else math.nan
    rows = []
    for name, curve in curves.items():
        mean = curve.mean()
        best = int(np.nanargmin(mean))  # NaN: a smoothed curve's gaps (isl.tools.sweeps)
        reach = curve.first_reaching(target)
        final, final_std = curve.final()
        expected, expected_std = curve.final("rmse_expected")
        accuracy, accuracy_std = curve.final("accuracy")
        rows.append({
            "curriculum": name, "seeds": len(curve.seeds),
            "seed_list": " ".join(str(s) for s in curve.seeds), "evaluations": int(np.isfinite(mean).sum()),
            "final_points": float(curve.points[-1]), "final_rmse_mean": final, "final_rmse_std": final_std,
            "best_rmse": float(mean[best]), "best_points": float(curve.points[best]),
            "points_to_reach_regular_best": reach,
            "speedup": regular_points / reach if reach > 0 else math.nan,
            "final_reduction_pct": 100 * (1 - final / regular_final) if regular_final > 0 else math.nan,
            "final_rmse_expected_mean": expected, "final_rmse_expected_std": expected_std,
            "final_accuracy_mean": accuracy, "final_accuracy_std": accuracy_std,
            **{k: curve.reference.get(k, math.nan) for k in REFERENCES}})
        for metric in LIKELIHOODS:
            rows[-1].update(likelihood_columns(curve, regular, metric))
        for metric in ("rmse_expected", *LIKELIHOODS):
            rows[-1].update(factor_columns(curve, regular, metric))
    return rows


def factor_columns(curve: Curve, regular: Curve | None, metric: str) -> dict:
    """The speed-up and the reduction of the final value against regular's, as the table's
    (sampled RMSE) columns define them, by another measure; for the expected-value RMSE also its
    best and the points to reach regular's best."""
    mean = curve.mean(metric)
    if regular is None or np.isnan(mean).all() or np.isnan(regular.mean(metric)).all():
        return {}
    target = np.nanmin(regular.mean(metric))
    reach, regular_reach = curve.first_reaching(target, metric), regular.first_reaching(target, metric)
    final, regular_final = curve.final(metric)[0], regular.final(metric)[0]
    out = {f"speedup_{metric}": regular_reach / reach if reach > 0 else math.nan,
           f"reduction_pct_{metric}": 100 * (1 - final / regular_final) if regular_final > 0 else math.nan}
    if metric == "rmse_expected":
        best = int(np.nanargmin(mean))
        out.update(best_rmse_expected=float(mean[best]), best_points_rmse_expected=float(curve.points[best]),
                   points_to_reach_regular_best_rmse_expected=reach)
    return out


def likelihood_columns(curve: Curve, regular: Curve | None, metric: str) -> dict:
    """The table's columns for a proper score (lower is better), against regular's."""
    mean = curve.mean(metric)
    final, final_std = curve.final(metric)
    if np.isnan(mean).all():  # runs from before the metric existed
        return {}
    best = int(np.nanargmin(mean))
    target = np.nanmin(regular.mean(metric)) if regular else math.nan
    return {f"final_{metric}": final, f"final_std_{metric}": final_std, f"best_{metric}": float(mean[best]),
            f"best_points_{metric}": float(curve.points[best]),
            f"points_to_reach_regular_best_{metric}": curve.first_reaching(target, metric),
            f"vs_regular_{metric}": final - regular.final(metric)[0] if regular else math.nan}


def is_transfer(curves: dict[str, Curve]) -> bool:
    """A cell of classifiers (task=classify), one line per start: compared by accuracy."""
    return all(name.startswith("from ") for name in curves)


def summarise_transfer(curves: dict[str, Curve]) -> list[dict]:
    """The table rows of a transfer cell: test accuracy against training from scratch, the
    classification counterpart of the prediction table (higher is better here)."""
    scratch = curves.get(SCRATCH)
    target = np.nanmax(scratch.mean("accuracy")) if scratch else math.nan
    scratch_points = scratch.first_reaching(target, "accuracy") if scratch else math.nan
    scratch_final = scratch.final("accuracy")[0] if scratch else math.nan
    rows = []
    for name, curve in curves.items():
        mean = curve.mean("accuracy")
        best = int(np.nanargmax(mean))
        reach = curve.first_reaching(target, "accuracy")
        final, final_std = curve.final("accuracy")
        rows.append({
            "curriculum": name, "seeds": len(curve.seeds),
            "seed_list": " ".join(str(s) for s in curve.seeds), "evaluations": int(np.isfinite(mean).sum()),
            "final_points": float(curve.points[-1]), "final_accuracy_mean": final,
            "final_accuracy_std": final_std, "best_accuracy": float(mean[best]),
            "best_accuracy_points": float(curve.points[best]), "points_to_reach_scratch_best": reach,
            "speedup": scratch_points / reach if reach > 0 else math.nan,
            "accuracy_gain": final - scratch_final})
    return rows


def paired_with_regular(rows: list[dict]) -> list[tuple[Cell, dict, dict]]:
    """The cells compared at a glance (an ablation's variants, the warm-up's units): (cell, regular's
    row, the row of a curriculum other than regular), per cell and curriculum. Empty unless two or
    more cells have regular and another curriculum."""
    by_cell: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_cell.setdefault((r["batching"], r["model"], r["variant"]), {})[r["curriculum"]] = r
    cells = {cell: by_name for cell, by_name in by_cell.items() if "regular" in by_name and len(by_name) > 1}
    if len(cells) < 2:
        return []
    return [(cell, by_name["regular"], r) for cell, by_name in cells.items()
            for name, r in by_name.items() if name != "regular"]


def default_marks(last_points: float) -> list[float]:
    """1, 2.5 and 5 times the powers of ten from 10^4 up to the sweep's end."""
    return [m * 10.0 ** k for k in range(4, 10) for m in (1, 2.5, 5) if m * 10.0 ** k <= last_points * 1.05]


def along_the_way(curves: dict[str, Curve], metric: str, baseline: str, marks: list[float]) -> Along | None:
    """The seed-mean ``metric`` of each line at the evaluations nearest ``marks`` points (within
    10%; marks without one are left out, None without any), and how many times those points the
    baseline needs to do as well: where the gap between two curves is read changes the factor, so
    the report shows it all along, not only at the baseline's best."""
    def nearest(curve: Curve, mark: float) -> int | None:  # of the evaluations with a value
        distance = np.where(np.isnan(curve.mean(metric)), np.inf, abs(curve.points - mark))
        i = int(np.argmin(distance))
        return i if distance[i] <= 0.1 * mark else None

    marks = [m for m in marks if any(nearest(c, m) is not None for c in curves.values())]
    if not marks:
        return None
    nearest_of = {name: [nearest(curve, m) for m in marks] for name, curve in curves.items()}
    values = {name: [None if i is None else curves[name].mean(metric)[i] for i in evaluations]
              for name, evaluations in nearest_of.items()}
    base = curves.get(baseline)
    factors = {}
    for name, curve in curves.items() if base else ():
        if name == baseline:
            continue
        factors[name] = []
        for i in nearest_of[name]:
            if i is None or curve.points[i] <= 0:
                factors[name].append(None)
                continue
            matched = base.first_reaching(curve.mean(metric)[i], metric)
            factors[name].append((base.points[-1] / curve.points[i], False) if math.isnan(matched)
                                 else (matched / curve.points[i], True))
    return Along(metric=metric, baseline=baseline, marks=marks, values=values, factors=factors)
