"""Summarise a Hydra sweep: test-RMSE curves per curriculum and the paper's comparison table.

    python -m isl.tools.report runs/multirun/experiment-exp1 [--out DIR] [--xscale log|linear] [--yscale log|linear]
                         [--at 2.5e5,1e6,5e6] [--window 10]

Writes ``<sweep>/report/`` (or ``--out``): ``rmse_sampled.png``, ``rmse_expected.png``,
``nll_px.png`` and ``bits_per_point.png`` (one panel per batching x model cell, one line per
curriculum, the trivial predictors' levels as purple lines), ``summary.md`` (the tables, the
reference levels, the figures, warnings, failed and unfinished jobs) and ``summary.csv`` (the
table, one row per cell and curriculum).

Jobs, their curves and how seeds are aligned: see ``isl.tools.sweeps``. The report is computed by
``isl.tools.report_tables`` and its text written by ``isl.tools.report_markdown``.

**The test protocol** of the runs (``budget.test_protocol``) is named in the summary's header,
in every figure's title and in the table's ``test_protocol`` column. Under ``original`` (the
paper's code: a 50-sequence test batch every 10 training batches) the curves are the test
batches smoothed by a rolling mean over ``--window`` rows (10; the paper's R code takes the
window as a parameter, its value is not recorded), as ``isl.tools.sweeps`` reads them; *final* is
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

from isl.core.checks import positive_int_arg
from isl.tools.report_markdown import cell_title, protocol_text, summary_markdown
from isl.tools.report_tables import COLUMNS, LIKELIHOODS, REFERENCES, Report, ReportError, build_report
from isl.tools.sweeps import WINDOW

FIGURES = {  # metric: (the title's first line, the y axis' label)
    "rmse_sampled": ("Test RMSE (sampled) per curriculum", "test RMSE (pixels)"),
    "rmse_expected": ("Test RMSE (expected value) per curriculum", "test RMSE (pixels)"),
    **{m: (f"Test {label} per curriculum", f"test {label}") for m, label in LIKELIHOODS.items()},
    "accuracy": ("Test accuracy (class at the last point)", "test accuracy")}
FIGURE_REFERENCES = {  # which trivial levels each figure shows
    "rmse_sampled": ["zero_rmse", "empirical_sample_rmse"],
    "rmse_expected": ["zero_rmse", "repeat_last_rmse", "mean_rmse"],
    "nll_px": ["empirical_nll_px"], "bits_per_point": ["empirical_bits_per_point"], "accuracy": []}
YSCALED = ("rmse_sampled", "rmse_expected", "bits_per_point")  # the figures --yscale applies to


def write_report(sweep: Path, out: Path | None = None, xscale: str = "log", yscale: str = "linear",
                 at: list[float] | None = None, window: int = WINDOW) -> Path:
    """Write the report of ``sweep`` into ``out`` (default ``<sweep>/report``); returns ``out``.
    ``at``: the points of the along-the-way tables (default: 1, 2.5 and 5 times powers of ten);
    ``window``: the rows of the rolling mean over the original test protocol's batches."""
    out = Path(out) if out else Path(sweep) / "report"
    report = build_report(sweep, out, at, window)
    out.mkdir(parents=True, exist_ok=True)
    write_figures(report, out, xscale, yscale)
    (out / "summary.md").write_text(summary_markdown(report, xscale))
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in report.rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    return out


def write_figures(report: Report, out: Path, xscale: str, yscale: str) -> None:
    """``<metric>.png`` in ``out`` for each of ``report.figures``."""
    from isl.viz.curves import plot_curves

    protocol = protocol_text(report.protocols, report.window, short=True)
    for metric in report.figures:
        title, ylabel = FIGURES[metric]
        plot_curves(report.cells, metric, out / f"{metric}.png", xscale=xscale, title=f"{title}\n{protocol}",
                    cell_title=cell_title, ylabel=ylabel, yscale=yscale if metric in YSCALED else "linear",
                    references={k: REFERENCES[k] for k in FIGURE_REFERENCES[metric]},
                    higher_is_better=metric == "accuracy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isl.tools.report", description=__doc__.split("\n")[0])
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
