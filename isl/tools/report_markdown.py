"""The text of a sweep's report: ``summary.md`` from a ``Report`` (``isl.tools.report_tables``), its
tables and the titles the figures share with it."""

from __future__ import annotations

import math

from isl.tools.report_tables import LIKELIHOODS, REFERENCES, Along, CellReport, Report
from isl.tools.sweeps import Cell

NO_DENSITY = ("NLL in pixels is left empty (—) for runs with the categorical moves head "
              "(`model.head=moves`): it has no density, so no number there would compare with a "
              "density's; bits per point compares both heads.")
ALONG = {"rmse_sampled": "RMSE (sampled)", "rmse_expected": "RMSE (expected value)", "accuracy": "accuracy"}


def summary_markdown(report: Report, xscale: str) -> str:
    """``summary.md``: the header, the cells side by side, each cell's tables, the figures (drawn
    on an ``xscale`` axis) and the failed and unfinished jobs."""
    from isl.viz.curves import BAND

    jobs = report.jobs
    md = [f"# Sweep report: `{report.sweep}`", "",
          f"{len(jobs)} jobs: {sum(j.finished and j.error is None for j in jobs)} summarised, "
          f"{sum(j.error is not None for j in jobs)} failed, "
          f"{sum(not j.finished and j.error is None for j in jobs)} unfinished. "
          + ("Classifiers (task=classify), one line per start: test accuracy at the last point "
             "of each test sequence; *final*: mean ± sample std over seeds of each seed's last "
             "evaluation; *best*, *points to reach* and *speed-up* use the seed-mean curve "
             "(seeds aligned by the scheduled point each evaluation served); *speed-up* = scratch's points to its best / "
             "the start's points to reach it; *gain* = final accuracy − scratch's final."
             if report.transfer else
             "RMSE in pixels of the next pen offset (per coordinate, as the paper's code); "
             "*final*: mean ± sample std over seeds of each seed's last evaluation; *best*, "
             "*points to reach* and *speed-up* use the seed-mean curve (seeds aligned by the "
             "scheduled point each evaluation served); *speed-up* = regular's points to its best / the curriculum's "
             "points to reach it; *reduction* = 100 × (1 − final / regular's final), positive "
             "where the final sampled RMSE is lower than regular's."), "",
          protocol_text(report.protocols, report.window) + ".", ""]
    if report.side_by_side:
        md += ["## The cells side by side", "", "Final values: mean ± sample std over seeds; speed-up "
               "and reduction in sampled RMSE, as in each cell's table.", "", *side_by_side(report.side_by_side), ""]
    for part in report.parts:
        md += cell_markdown(part)
    rmse_figures = ["![Test RMSE, sampled](rmse_sampled.png)", "",
                    "![Test RMSE, expected value](rmse_expected.png)", "",
                    "![Test NLL in pixels](nll_px.png)", "", "![Test bits per point](bits_per_point.png)", ""]
    accuracy_figure = ["![Test accuracy](accuracy.png)", ""]
    md += ["## Figures", "",
           f"Line: mean over seeds; band: {BAND} over seeds. "
           + ("The evaluation before training (0 points) is off the log axis. " if xscale == "log" else "")
           + "Dotted grey: regular's best (seed mean); purple: trivial predictors on the same test set.", "",
           *(accuracy_figure + rmse_figures if report.transfer else rmse_figures + accuracy_figure)]
    failed = [j for j in jobs if j.error is not None]
    unfinished = [j for j in jobs if not j.finished and j.error is None]
    md += ["## Failed jobs", "", *([f"- `{j.name}`: {j.error}" for j in failed] or ["None."]), "",
           "## Unfinished jobs", "",
           *(["Killed, pre-empted or still running; the sweep's command, run again, resumes them.",
              ""] if unfinished else []),
           *([f"- `{j.name}`" for j in unfinished] or ["None."]), ""]
    return "\n".join(md)


def cell_markdown(part: CellReport) -> list[str]:
    """One cell's section: its table(s), reference levels, warnings and along-the-way tables."""
    rows = part.rows
    if part.transfer:
        md = [f"## {cell_title(part.cell)}", "", *transfer_table(rows, part.has_baseline), ""]
    else:
        md = [f"## {cell_title(part.cell)}", "", *markdown_table(rows, part.has_baseline), ""]
        if likelihood := likelihood_table(rows, part.has_baseline):
            md += ["Proper scores (lower is better):", "", *likelihood, ""]
            if any("final_bits_per_point" in r and "final_nll_px" not in r for r in rows):
                md += [NO_DENSITY, ""]
        md += reference_table(part.reference)
    for curriculum, warnings in part.warnings:
        md += [f"**Warning** ({curriculum}): {w}" for w in warnings] + [""]
    if not part.has_baseline:
        how = ("sweep `curriculum=regular` beside the others (e.g. `curriculum=regular,length`)"
               if part.baseline == "regular" else "the sweep's scratch arm, `transfer.source=scratch`")
        md += [f"No `{part.baseline}` runs in this cell: no speed-up or reduction to compute; {how}.", ""]
    for along in part.along:
        md += [f"Along the way: seed-mean test {ALONG[along.metric]} at selected points.", "",
               *along_table(along), ""]
    return md


def protocol_text(protocols: list[str], window: int, short: bool = False) -> str:
    """What the test curves measure, for a figure's title (``short``) or the summary."""
    from isl.training.callbacks import ORIGINAL_TEST_EVERY, ORIGINAL_TEST_SEQUENCES

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


def side_by_side(pairs: list[tuple[Cell, dict, dict]]) -> list[str]:
    """The cells compared at a glance (``isl.tools.report_tables.paired_with_regular``): a curriculum's
    final scores beside regular's, the speed-up and the reduction."""
    def finals(r: dict) -> str:
        bits = (mean_std(r["final_bits_per_point"], r["final_std_bits_per_point"])
                if "final_bits_per_point" in r else "—")
        return (f"{mean_std(r['final_rmse_mean'], r['final_rmse_std'])} / "
                f"{mean_std(r['final_rmse_expected_mean'], r['final_rmse_expected_std'])} / {bits}")

    out = ["| cell | regular: final sampled / expected RMSE / bits per point | curriculum | its final "
           "sampled / expected RMSE / bits per point | speed-up | reduction vs regular |",
           "| --- | --- | --- | --- | ---: | ---: |"]
    for cell, regular, r in pairs:
        out.append(f"| {cell_title(cell)} | {finals(regular)} | {r['curriculum']} | {finals(r)} | "
                   f"{fmt(r['speedup'], 'ratio')} | {fmt(r['final_reduction_pct'], 'pct')} |")
    return out


def along_table(along: Along) -> list[str]:
    """An along-the-way table: the values at the marks, then the baseline's points to match each line
    as a multiple of the mark ("> N×" where it never does)."""
    out = ["| points | " + " | ".join(fmt(m, "points") for m in along.marks) + " |",
           "| --- |" + " ---: |" * len(along.marks)]
    for name, values in along.values.items():
        out.append(f"| {name} | " + " | ".join("—" if v is None else f"{v:.3f}" for v in values) + " |")
    for name, factors in along.factors.items():
        out.append(f"| {along.baseline}'s points to match {name} | "
                   + " | ".join(_factor_text(f) for f in factors) + " |")
    return out


def _factor_text(factor: tuple[float, bool] | None) -> str:
    if factor is None:
        return "—"
    value, reached = factor
    if not reached:
        return "> " + fmt(value, "ratio")
    return "at start" if value == 0 else fmt(value, "ratio")  # not a ratio of 0: the untrained baseline does as well
