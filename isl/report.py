"""Summarise a Hydra sweep: test-RMSE curves per curriculum and the paper's comparison table.

    python -m isl.report runs/multirun/experiment-exp1 [--out DIR] [--xscale log|linear] [--yscale log|linear]
                         [--at 2.5e5,1e6,5e6] [--window 10]

Writes ``<sweep>/report/`` (or ``--out``): ``rmse_sampled.png``, ``rmse_expected.png``,
``nll_px.png`` and ``bits_per_point.png`` (one panel per batching x model cell, one line per
curriculum, the trivial predictors' levels as purple lines), ``summary.md`` (the tables, the
reference levels, the figures, warnings, failed and unfinished jobs) and ``summary.csv`` (the
table, one row per cell and curriculum).

Jobs, their curves and how seeds are aligned: see ``isl.sweeps``.

**The test protocol** of the runs (``budget.test_protocol``) is named in the summary's header,
in every figure's title and in the table's ``test_protocol`` column. Under ``original`` (the
paper's code: a 50-sequence test batch every 10 training batches) the curves are the test
batches smoothed by a rolling mean over ``--window`` rows (10; the paper's R code takes the
window as a parameter, its value is not recorded), as ``isl.sweeps`` reads them; *final* is
still the whole test subset's evaluation at the end, so the end-point columns compare across
protocols, while *best* and *points to reach* are read on the smoothed curve.

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

**The cells side by side**, where two or more cells hold ``regular`` and another curriculum (an
ablation's variants, the warm-up experiment's units): one line per cell and curriculum, its final
sampled RMSE, expected-value RMSE and bits per point beside regular's, the speed-up and the
reduction, at the top of the summary.

**The likelihood table**, the proper scores of a mixture-density network, with the same
columns: ``test/nll_px`` (nats per point, the offset's density in pixels: comparable across
input units, unbounded below on pixel-grid data) and ``test/bits_per_point`` (the discretised
score: -log2 of the probability of the true step's pixel cell and flags; bounded, the one to
compare models by); *vs regular* is the difference of the final values.

**Reference levels** (``reference.json`` of each run, ``isl.data.reference``): what predicting
no movement, the previous offset or the mean offset, and sampling the training offsets without
context score on the same test set; listed per cell and drawn in every figure.

**Along the way**, per cell: the seed-mean test RMSE (sampled, and expected value) of each
curriculum at 1, 2.5 and 5 times the powers of ten points (or ``--at``), and how many times
those points ``regular`` needs to get as low (its first evaluation at least as good, divided
by the points; "> N×" where it never does): the speed-up read all along the curves.

**A transfer sweep** (``experiment=transfer``: classifiers, one line per start) gets the same
table in test accuracy against ``from scratch``: final and best accuracy, the points at which a
start first reaches scratch's best accuracy, the speed-up, and the gain in final accuracy.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

from isl.checks import positive_int_arg
from isl.sweeps import WINDOW, Cell, Curve, aggregate, find_jobs, load_job, mark_variants

LIKELIHOODS = {"nll_px": "NLL (nats/point, pixels)", "bits_per_point": "bits/point (discretised)"}
REFERENCES = {"zero_rmse": "no movement", "repeat_last_rmse": "repeat the last offset",
              "mean_rmse": "mean offset", "empirical_sample_rmse": "sample the training offsets",
              "empirical_nll_px": "training offsets' histogram",
              "empirical_bits_per_point": "training offsets' histogram"}
FIGURE_REFERENCES = {  # which trivial levels each figure shows
    "rmse_sampled": ["zero_rmse", "empirical_sample_rmse"],
    "rmse_expected": ["zero_rmse", "repeat_last_rmse", "mean_rmse"],
    "nll_px": ["empirical_nll_px"], "bits_per_point": ["empirical_bits_per_point"]}
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
NO_DENSITY = ("NLL in pixels is left empty (—) for runs with the categorical moves head "
              "(`model.head=moves`): it has no density, so no number there would compare with a "
              "density's; bits per point compares both heads.")
SCRATCH = "from scratch"  # the baseline line of a transfer sweep (task=classify)
ALONG = {"rmse_sampled": "RMSE (sampled)", "rmse_expected": "RMSE (expected value)", "accuracy": "accuracy"}


class ReportError(Exception):
    """The sweep cannot be summarised (no usable job): the message names the directory."""


def summarise(curves: dict[str, Curve]) -> list[dict]:
    """The table rows of one cell (keys as COLUMNS, without the cell's own)."""
    regular = curves.get("regular")
    target = np.nanmin(regular.mean()) if regular else math.nan
    regular_points = regular.first_reaching(target) if regular else math.nan
    regular_final = regular.final()[0] if regular else math.nan
    rows = []
    for name, curve in curves.items():
        mean = curve.mean()
        best = int(np.nanargmin(mean))  # NaN: a smoothed curve's gaps (isl.sweeps)
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


# --- writing -------------------------------------------------------------------------------------

def protocol_text(protocols: list[str], window: int, short: bool = False) -> str:
    """What the test curves measure, for a figure's title (``short``) or the summary."""
    from isl.callbacks import ORIGINAL_TEST_EVERY, ORIGINAL_TEST_SEQUENCES

    texts = {"full": "full" if short else "**full**: the whole test subset at every evaluation",
             "original": (f"original ({ORIGINAL_TEST_SEQUENCES}-sequence test batch every "
                          f"{ORIGINAL_TEST_EVERY} training batches, rolling mean over {window})" if short else
                          f"**original** (the paper's code): a test batch of the next "
                          f"{ORIGINAL_TEST_SEQUENCES} test sequences every {ORIGINAL_TEST_EVERY} "
                          f"training batches; its curves are a rolling mean over {window} test batches, "
                          "read at a grid of points; the whole test subset at 0 and at the end, "
                          "which gives *final*")}
    return ("test protocol: " if short else "Test protocol ") + "; ".join(texts.get(p, p) for p in protocols)


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


def reach_text(points: float, has_baseline: bool) -> str:
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
                   f"{reach_text(r['points_to_reach_regular_best'], has_regular)} | "
                   f"{fmt(r['speedup'], 'ratio')} | {fmt(r['final_reduction_pct'], 'pct')} | "
                   f"{mean_std(r['final_rmse_expected_mean'], r['final_rmse_expected_std'])} | "
                   f"{mean_std(r['final_accuracy_mean'], r['final_accuracy_std'])} |")
    return out


def likelihood_table(rows: list[dict], has_regular: bool) -> list[str]:
    if not any(f"final_{m}" in r for r in rows for m in LIKELIHOODS):
        return []
    out = ["| curriculum | " + " | ".join(f"final {label} | best (at points) | points to reach regular's "
                                         "best | vs regular" for label in LIKELIHOODS.values()) + " |",
           "| --- |" + " ---: | ---: | ---: | ---: |" * len(LIKELIHOODS)]
    for r in rows:
        cells = []
        for m in LIKELIHOODS:
            if f"final_{m}" not in r:
                cells += ["—"] * 4
                continue
            vs = r[f"vs_regular_{m}"]
            cells += [mean_std(r[f"final_{m}"], r[f"final_std_{m}"]),
                      f"{r[f'best_{m}']:.3f} ({fmt(r[f'best_points_{m}'], 'points')})",
                      reach_text(r[f"points_to_reach_regular_best_{m}"], has_regular),
                      "—" if math.isnan(vs) else f"{vs:+.3f}"]
        out.append(f"| {r['curriculum']} | " + " | ".join(cells) + " |")
    return out


def reference_table(reference: dict) -> list[str]:
    if not reference:
        return []
    keys = [k for k in REFERENCES if k in reference]
    return [f"Reference levels on the same test set ({reference.get('test_sequences', 0):,} sequences, "
            f"{reference.get('test_points', 0):,} scored points): what trivial predictors score.", "",
            "| predictor | metric | level |", "| --- | --- | ---: |",
            *(f"| {REFERENCES[k]} | {_reference_metric(k)} | {reference[k]:.3f} |" for k in keys), ""]


def _reference_metric(key: str) -> str:
    if key == "empirical_sample_rmse":
        return "RMSE (sampled)"
    if key.endswith("_rmse"):
        return "RMSE (expected value)"
    return LIKELIHOODS["nll_px" if key.endswith("nll_px") else "bits_per_point"]


def transfer_table(rows: list[dict], has_scratch: bool) -> list[str]:
    out = ["| start | seeds | final test accuracy | best test accuracy (at points) | points to reach "
           "scratch's best | speed-up | gain vs scratch |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        gain = "—" if math.isnan(r["accuracy_gain"]) else f"{r['accuracy_gain']:+.3f}"
        out.append(f"| {r['curriculum']} | {r['seeds']} | "
                   f"{mean_std(r['final_accuracy_mean'], r['final_accuracy_std'])} | "
                   f"{r['best_accuracy']:.3f} ({fmt(r['best_accuracy_points'], 'points')}) | "
                   f"{reach_text(r['points_to_reach_scratch_best'], has_scratch)} | "
                   f"{fmt(r['speedup'], 'ratio')} | {gain} |")
    return out


def side_by_side(rows: list[dict]) -> list[str]:
    """The cells compared at a glance (an ablation's variants, the warm-up's units): one line per
    cell and curriculum other than regular, its final scores beside regular's, the speed-up and
    the reduction. Empty unless two or more cells have regular and another curriculum."""
    by_cell: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_cell.setdefault((r["batching"], r["model"], r["variant"]), {})[r["curriculum"]] = r
    cells = {cell: by_name for cell, by_name in by_cell.items() if "regular" in by_name and len(by_name) > 1}
    if len(cells) < 2:
        return []

    def finals(r: dict) -> str:
        bits = (mean_std(r["final_bits_per_point"], r["final_std_bits_per_point"])
                if "final_bits_per_point" in r else "—")
        return (f"{mean_std(r['final_rmse_mean'], r['final_rmse_std'])} / "
                f"{mean_std(r['final_rmse_expected_mean'], r['final_rmse_expected_std'])} / {bits}")

    out = ["| cell | regular: final sampled / expected RMSE / bits per point | curriculum | its final "
           "sampled / expected RMSE / bits per point | speed-up | reduction vs regular |",
           "| --- | --- | --- | --- | ---: | ---: |"]
    for cell, by_name in cells.items():
        for name, r in by_name.items():
            if name != "regular":
                out.append(f"| {cell_title(cell)} | {finals(by_name['regular'])} | {name} | {finals(r)} | "
                           f"{fmt(r['speedup'], 'ratio')} | {fmt(r['final_reduction_pct'], 'pct')} |")
    return out


def default_marks(last_points: float) -> list[float]:
    """1, 2.5 and 5 times the powers of ten from 10^4 up to the sweep's end."""
    return [m * 10.0 ** k for k in range(4, 10) for m in (1, 2.5, 5) if m * 10.0 ** k <= last_points * 1.05]


def along_the_way(curves: dict[str, Curve], metric: str, baseline: str, marks: list[float]) -> list[str]:
    """The seed-mean ``metric`` of each line at the evaluations nearest ``marks`` points (within
    10%; marks without one are left out), and how many times those points the baseline needs to
    do as well: where the gap between two curves is read changes the factor, so the table shows
    it all along, not only at the baseline's best."""
    def nearest(curve: Curve, mark: float) -> int | None:  # of the evaluations with a value
        distance = np.where(np.isnan(curve.mean(metric)), np.inf, abs(curve.points - mark))
        i = int(np.argmin(distance))
        return i if distance[i] <= 0.1 * mark else None

    marks = [m for m in marks if any(nearest(c, m) is not None for c in curves.values())]
    if not marks:
        return []
    out = ["| points | " + " | ".join(fmt(m, "points") for m in marks) + " |",
           "| --- |" + " ---: |" * len(marks)]
    for name, curve in curves.items():
        cells = [nearest(curve, m) for m in marks]
        out.append(f"| {name} | " + " | ".join("—" if i is None else f"{curve.mean(metric)[i]:.3f}"
                                              for i in cells) + " |")
    base = curves.get(baseline)
    for name, curve in curves.items() if base else ():
        if name == baseline:
            continue
        ratios = []
        for i in (nearest(curve, m) for m in marks):
            if i is None or curve.points[i] <= 0:
                ratios.append("—")
                continue
            matched = base.first_reaching(curve.mean(metric)[i], metric)
            if math.isnan(matched):
                ratios.append("> " + fmt(base.points[-1] / curve.points[i], "ratio"))
            else:  # an untrained baseline already as good reads as a ratio of 0: say so instead
                ratios.append("at start" if matched == 0 else fmt(matched / curve.points[i], "ratio"))
        out.append(f"| {baseline}'s points to match {name} | " + " | ".join(ratios) + " |")
    return out


def sweep_cells(sweep: Path, skip: Path | None = None, window: int = WINDOW) -> tuple[list, dict]:
    """(the jobs of ``sweep``, their curves by cell: ``isl.sweeps.aggregate``); ``skip``: a folder
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


def write_report(sweep: Path, out: Path | None = None, xscale: str = "log", yscale: str = "linear",
                 at: list[float] | None = None, window: int = WINDOW) -> Path:
    """Write the report of ``sweep`` into ``out`` (default ``<sweep>/report``); returns ``out``.
    ``at``: the points of the along-the-way tables (default: 1, 2.5 and 5 times powers of ten);
    ``window``: the rows of the rolling mean over the original test protocol's batches."""
    from isl.viz.curves import BAND, plot_curves

    out = Path(out) if out else Path(sweep) / "report"
    jobs, cells = sweep_cells(sweep, out, window)
    out.mkdir(parents=True, exist_ok=True)
    protocols = sorted({c.protocol for curves in cells.values() for c in curves.values()})
    protocol = protocol_text(protocols, window, short=True)

    figures = {}
    for metric, label in (("rmse_sampled", "sampled"), ("rmse_expected", "expected value")):
        figures[metric] = plot_curves(cells, metric, out / f"{metric}.png", xscale=xscale,
                                      title=f"Test RMSE ({label}) per curriculum\n{protocol}",
                                      cell_title=cell_title, yscale=yscale,
                                      references={k: REFERENCES[k] for k in FIGURE_REFERENCES[metric]})
    for metric, label in LIKELIHOODS.items():
        if not any(np.isfinite(c.mean(metric)).any() for curves in cells.values() for c in curves.values()):
            continue  # the moves head has no density: nothing to draw for nll_px (NO_DENSITY)
        figures[metric] = plot_curves(cells, metric, out / f"{metric}.png", xscale=xscale,
                                      title=f"Test {label} per curriculum\n{protocol}", cell_title=cell_title,
                                      ylabel=f"test {label}", yscale=yscale if metric == "bits_per_point" else "linear",
                                      references={k: REFERENCES[k] for k in FIGURE_REFERENCES[metric]})
    figures["accuracy"] = plot_curves(cells, "accuracy", out / "accuracy.png", xscale=xscale,
                                      title=f"Test accuracy (class at the last point)\n{protocol}",
                                      cell_title=cell_title, ylabel="test accuracy", higher_is_better=True)

    table = []
    transfer = any(is_transfer(curves) for curves in cells.values())
    md = [f"# Sweep report: `{sweep}`", "",
          f"{len(jobs)} jobs: {sum(j.finished and j.error is None for j in jobs)} summarised, "
          f"{sum(j.error is not None for j in jobs)} failed, "
          f"{sum(not j.finished and j.error is None for j in jobs)} unfinished. "
          + ("Classifiers (task=classify), one line per start: test accuracy at the last point "
             "of each test sequence; *final*: mean ± sample std over seeds of each seed's last "
             "evaluation; *best*, *points to reach* and *speed-up* use the seed-mean curve "
             "(seeds aligned by the scheduled point each evaluation served); *speed-up* = scratch's points to its best / "
             "the start's points to reach it; *gain* = final accuracy − scratch's final."
             if transfer else
             "RMSE in pixels of the next pen offset (per coordinate, as the paper's code); "
             "*final*: mean ± sample std over seeds of each seed's last evaluation; *best*, "
             "*points to reach* and *speed-up* use the seed-mean curve (seeds aligned by the "
             "scheduled point each evaluation served); *speed-up* = regular's points to its best / the curriculum's "
             "points to reach it; *reduction* = 100 × (1 − final / regular's final), positive "
             "where the final sampled RMSE is lower than regular's."), "",
          protocol_text(protocols, window) + ".", ""]
    for cell, curves in cells.items():
        rows = table_rows(cell, curves)
        if is_transfer(curves):
            md += [f"## {cell_title(cell)}", "", *transfer_table(rows, SCRATCH in curves), ""]
        else:
            md += [f"## {cell_title(cell)}", "", *markdown_table(rows, "regular" in curves), ""]
            if likelihood := likelihood_table(rows, "regular" in curves):
                md += ["Proper scores (lower is better):", "", *likelihood, ""]
                if any("final_bits_per_point" in r and "final_nll_px" not in r for r in rows):
                    md += [NO_DENSITY, ""]
            md += reference_table(next(iter(curves.values())).reference)
        for curve in curves.values():
            warnings = curve.warnings + ([f"only {len(curve.points)} evaluation(s), too few for a curve: "
                                          "run with budget.evals_per_decade=4 (or a smaller budget.eval_every)"]
                                         if len(curve.points) < 3 else [])
            md += [f"**Warning** ({curve.curriculum}): {w}" for w in warnings]
            md += [""] if warnings else []
        table += rows
        baseline = SCRATCH if is_transfer(curves) else "regular"
        if baseline not in curves:
            how = ("sweep `curriculum=regular` beside the others (e.g. `curriculum=regular,length`)"
                   if baseline == "regular" else "the sweep's scratch arm, `transfer.source=scratch`")
            md += [f"No `{baseline}` runs in this cell: no speed-up or reduction to compute; {how}.", ""]
        marks = at or default_marks(max(c.points[-1] for c in curves.values()))
        for metric in (("accuracy",) if is_transfer(curves) else ("rmse_sampled", "rmse_expected")):
            if lines := along_the_way(curves, metric, baseline, marks):
                md += [f"Along the way: seed-mean test {ALONG[metric]} at selected points.", "", *lines, ""]
    if overview := side_by_side(table):
        at = md.index(protocol_text(protocols, window) + ".") + 2
        md[at:at] = ["## The cells side by side", "", "Final values: mean ± sample std over seeds; speed-up "
                     "and reduction in sampled RMSE, as in each cell's table.", "", *overview, ""]
    rmse_figures = ["![Test RMSE, sampled](rmse_sampled.png)", "",
                    "![Test RMSE, expected value](rmse_expected.png)", "",
                    "![Test NLL in pixels](nll_px.png)", "", "![Test bits per point](bits_per_point.png)", ""]
    accuracy_figure = ["![Test accuracy](accuracy.png)", ""]
    md += ["## Figures", "",
           f"Line: mean over seeds; band: {BAND} over seeds. "
           + ("The evaluation before training (0 points) is off the log axis. " if xscale == "log" else "")
           + "Dotted grey: regular's best (seed mean); purple: trivial predictors on the same test set.", "",
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
                        help="y-axis of the RMSE and bits figures (default: linear; log shows late "
                             "differences between curricula that an early spike would flatten)")
    parser.add_argument("--at", type=lambda text: [float(x) for x in text.split(",")],
                        help="points of the along-the-way tables, e.g. 2.5e5,1e6,5e6 "
                             "(default: 1, 2.5 and 5 times the powers of ten)")
    parser.add_argument("--window", type=positive_int_arg, default=WINDOW,
                        help=f"rows of the rolling mean over the original test protocol's batches "
                             f"(default: {WINDOW})")
    args = parser.parse_args(argv)
    try:
        out = write_report(args.sweep, args.out, args.xscale, args.yscale, args.at, args.window)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {out / 'summary.md'}\ntable: {out / 'summary.csv'}\n"
          "figures: " + ", ".join(str(p) for p in sorted(out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
