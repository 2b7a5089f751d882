"""The sweep report: numbers on a synthetic sweep with known curves, and end to end on the smoke grid."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

import preloaded
from conftest import MNIST_DIR, REPO, needs_mnist
from isl.tools import report
from isl.tools.report_markdown import NO_DENSITY
from isl.training.schedule import evaluation_points

COLUMNS = ["curriculum/stage", "lr", "points", "step", "test/accuracy", "test/loss", "test/nll_px",
           "test/bits_per_point", "test/rmse_expected", "test/rmse_sampled", "time/eval_sec", "time/wall_sec",
           "train/accuracy", "train/loss", "train/rmse_expected", "train/rmse_sampled"]


def write_job(sweep: Path, num: int, curriculum: str, batching: str, model: str, seed: int,
              points=None, rmse=None, error: str | None = None, extra: tuple = (),
              finished: bool = True, source: str | None = None, accuracy=None,
              budget: dict | None = None, arm: str | None = None, density: bool = True) -> Path:
    """A job directory as Hydra and the CSV logger write it; expected RMSE is half the sampled,
    NLL in pixels a tenth of it minus 1, bits a fifth; ``reference.json`` holds REFERENCE.
    With ``source``, a classifier of a transfer sweep started from that predictor; with ``arm``,
    a job of experiment=warmup, whose arm (not the command line) chose the curriculum; without
    ``density``, a run whose head has none (model.head=moves): no NLL in pixels."""
    overrides = [f"curriculum={curriculum}", f"batching={batching}", f"model={model}",
                 f"seed={seed}", "experiment=grid", *extra]
    if arm:
        overrides = [f"arm={arm}", f"seed={seed}", "experiment=warmup", *extra]
    # paths.runs_dir with slashes nests the job directory, as a real sweep does
    job = sweep / f"{num}-{','.join(sorted(overrides))},paths.runs_dir=/tmp/x" / "y,seed=1"
    (job / ".hydra").mkdir(parents=True)
    config = {"batching": {"by": batching}, "model": {"network": model},
              "curriculum": {"_target_": f"isl.curricula.{curriculum}.{curriculum.title()}"},
              "seed": seed, "budget": budget or {"points": 4000, "eval_every": 1000}}
    if source:
        config.update(task="classify", transfer={"source": source})
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    hydra = {"hydra": {"job": {"num": num},
                       "runtime": {"choices": {"curriculum": curriculum, "batching": batching,
                                               "model": model, "experiment": "grid",
                                               **({"arm": arm} if arm else {})}},
                       "overrides": {"hydra": ["hydra.mode=MULTIRUN"],
                                     "task": [*overrides, "paths.runs_dir=/tmp/x/y"]}}}
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    if points is not None:
        with (job / "metrics.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerow({"curriculum/stage": 0.0, "points": 0.0, "step": 0})
            for step, (p, r, a) in enumerate(zip(points, rmse, accuracy or [0.1] * len(points))):
                if p > 0:  # a sparse training row before each evaluation
                    writer.writerow({"lr": 0.0025, "points": p - 10, "step": step,
                                     "train/loss": 1.0, "train/rmse_sampled": r + 0.5,
                                     "train/rmse_expected": r / 2, "train/accuracy": 0.1})
                writer.writerow({"points": float(p), "step": step, "test/loss": 1.0, "test/accuracy": a,
                                 "test/nll_px": r / 10 - 1 if density else "", "test/bits_per_point": r / 5,
                                 "test/rmse_sampled": r, "test/rmse_expected": r / 2,
                                 "time/eval_sec": 0.1, "time/wall_sec": step})
        (job / "reference.json").write_text(json.dumps(REFERENCE))
    if error:
        (job / "error.txt").write_text(f"Traceback (most recent call last):\n  File x\n{error}\n\n")
    elif finished and points is not None:
        (job / "result.json").write_text("{}")
    return job


P1, P2 = [0, 1000, 2000, 3000, 4000], [0, 1010, 2020, 3030, 4040]
REFERENCE = {"test_sequences": 5000, "test_points": 192197, "zero_rmse": 0.958, "repeat_last_rmse": 1.016,
             "mean_rmse": 0.948, "empirical_sample_rmse": 1.353, "empirical_bits_per_point": 3.359,
             "empirical_nll_px": 2.328}


@pytest.fixture
def sweep(tmp_path):
    return write_sweep(tmp_path)


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    """(the sweep, its report with the default settings): written once, read by several tests."""
    sweep = write_sweep(tmp_path_factory.mktemp("default"))
    return sweep, report.write_report(sweep)


def write_sweep(root: Path) -> Path:
    sweep = root / "multirun" / "2026-11-23" / "16-36-34"
    num = iter(range(100))
    # cell sequences x lstm: regular mean [10 8 6 5 5] (best 5 at 3015 points), length mean [10 5 4 2 1]
    write_job(sweep, next(num), "regular", "sequences", "lstm", 1, P1, [10, 8, 6, 5, 4])
    write_job(sweep, next(num), "regular", "sequences", "lstm", 2, P2, [10, 8, 6, 5, 6])
    write_job(sweep, next(num), "length", "sequences", "lstm", 1, P1, [10, 6, 4, 2, 1])
    write_job(sweep, next(num), "length", "sequences", "lstm", 2, P2, [10, 4, 4, 2, 1])
    # cell points x lstm: length never reaches regular's best (2, first at 4020 points)
    for seed, p in ((1, P1), (2, P2)):
        write_job(sweep, next(num), "regular", "points", "lstm", seed, p, [10, 5, 4, 3, 2])
        write_job(sweep, next(num), "length", "points", "lstm", seed, p, [10, 9, 8, 7, 6])
    # a failure with partial metrics (left out of the averages), one without, one job without metrics
    write_job(sweep, next(num), "length", "sequences", "lstm", 3, P1[:3], [0.1, 0.1, 0.1],
              error="NonFiniteLossError: loss is nan in training at step 7")
    write_job(sweep, next(num), "regular", "points", "lstm", 3, error="RuntimeError: out of memory")
    write_job(sweep, next(num), "length", "points", "lstm", 3)
    # killed mid-run: metrics but no result.json (left out until resumed)
    write_job(sweep, next(num), "regular", "sequences", "lstm", 3, P1[:2], [0.1, 0.1], finished=False)
    return sweep


def rows_of(out: Path) -> dict[tuple, dict]:
    with (out / "summary.csv").open() as f:
        return {(r["batching"], r["curriculum"]): r for r in csv.DictReader(f)}


def non_white_fraction(png: Path) -> float:
    image = imread(png)[..., :3]
    return float((image.min(axis=-1) < 0.9).mean())


def test_table_numbers_match_hand_computed_values(sweep_report):
    sweep, out = sweep_report
    assert out == sweep / "report"
    rows = rows_of(out)
    assert len(rows) == 4
    regular, length = rows["sequences", "regular"], rows["sequences", "length"]
    assert regular["seeds"] == "2" and regular["seed_list"] == "1 2"
    assert length["seeds"] == "2"  # the failed seed 3 is not averaged in
    assert float(regular["final_rmse_mean"]) == pytest.approx(5.0)
    assert float(regular["final_rmse_std"]) == pytest.approx(math.sqrt(2))  # sample std of 4, 6
    assert float(regular["best_rmse"]) == pytest.approx(5.0)
    assert float(regular["best_points"]) == pytest.approx(3015)
    assert float(regular["points_to_reach_regular_best"]) == pytest.approx(3015)
    assert float(regular["speedup"]) == pytest.approx(1.0)
    assert float(regular["final_reduction_pct"]) == pytest.approx(0.0)
    assert float(regular["final_rmse_expected_mean"]) == pytest.approx(2.5)
    assert float(length["final_rmse_mean"]) == pytest.approx(1.0)
    assert float(length["final_rmse_std"]) == pytest.approx(0.0)
    assert float(length["best_rmse"]) == pytest.approx(1.0)
    assert float(length["best_points"]) == pytest.approx(4020)
    assert float(length["points_to_reach_regular_best"]) == pytest.approx(1005)  # mean 5 <= 5
    assert float(length["speedup"]) == pytest.approx(3015 / 1005)
    assert float(length["final_reduction_pct"]) == pytest.approx(80.0)

    slow = rows["points", "length"]
    assert slow["points_to_reach_regular_best"] == "" and slow["speedup"] == ""
    assert float(slow["final_reduction_pct"]) == pytest.approx(-200.0)
    assert float(rows["points", "regular"]["points_to_reach_regular_best"]) == pytest.approx(4020)


def test_proper_scores_and_reference_levels_beside_every_rmse(sweep_report):
    _, out = sweep_report
    rows = rows_of(out)
    regular, length = rows["sequences", "regular"], rows["sequences", "length"]
    # NLL = RMSE / 10 - 1: regular's final mean (4 + 6) / 20 - 1 = -0.5, length's 1 / 10 - 1 = -0.9
    assert float(regular["final_nll_px"]) == pytest.approx(-0.5)
    assert float(length["final_nll_px"]) == pytest.approx(-0.9)
    assert float(length["vs_regular_nll_px"]) == pytest.approx(-0.4)
    assert float(length["points_to_reach_regular_best_nll_px"]) == pytest.approx(1005)
    assert float(length["final_bits_per_point"]) == pytest.approx(0.2)
    assert float(regular["zero_rmse"]) == pytest.approx(0.958)
    md = (out / "summary.md").read_text()
    cell = md.split("## lstm, batching=sequences")[1].split("## lstm, batching=points")[0]
    assert "| length | -0.900 ± 0.000 | -0.900 (4,020) | 1,005 | -0.400 | 0.200 ± 0.000 |" in cell
    assert "| no movement | RMSE (expected value) | 0.958 |" in cell
    assert "| sample the training offsets | RMSE (sampled) | 1.353 |" in cell
    assert "| training offsets' histogram | bits/point (discretised) | 3.359 |" in cell
    assert "(5,000 sequences, 192,197 scored points)" in cell
    assert "**Warning**" not in md                               # seeds on one schedule
    for name in ("rmse_sampled", "rmse_expected", "nll_px", "bits_per_point"):
        assert non_white_fraction(out / f"{name}.png") > 0.01 and f"]({name}.png)" in md


def test_seeds_on_different_schedules_are_named_not_averaged_silently(tmp_path):
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "regular", "sequences", "lstm", 1, P1, [10, 8, 6, 5, 4])
    write_job(sweep, 1, "regular", "sequences", "lstm", 2, [0, 500, 1000, 1500, 2000, 2500],
              [10, 9, 8, 7, 6, 5], budget={"points": 4000, "eval_every": 500})
    md = (report.write_report(sweep) / "summary.md").read_text()
    warnings = [line for line in md.splitlines() if line.startswith("**Warning** (regular)")]
    assert len(warnings) == 2
    assert "schedules differ" in warnings[0] and "eval_every': 500" in warnings[0]
    assert "counts differ, curves cut at 5" in warnings[1]
    assert all("0-" in w and "1-" in w for w in warnings)        # both jobs named


def test_seeds_are_aligned_by_the_scheduled_point_each_evaluation_served(tmp_path):
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "regular", "sequences", "lstm", 1, P1, [10, 8, 6, 5, 4])
    # one batch crossed 1,000 and 2,000 points: seed 2's evaluation at 2,050 served both
    write_job(sweep, 1, "regular", "sequences", "lstm", 2, [0, 2050, 3000, 4000], [10, 7, 5, 3])
    md = (report.write_report(sweep) / "summary.md").read_text()
    # 2,000 pairs 6 with 7, the end 4 with 3 (by evaluation index it would pair 5 with 3)
    assert "| regular | 2 | 3.500 ± 0.707 | 3.500 (4,000) |" in md
    warning = next(line for line in md.splitlines() if line.startswith("**Warning** (regular)"))
    assert "left out" in warning and "`0-" in warning and "`1-" not in warning


def test_along_the_way_tables_read_the_gap_at_each_mark(sweep):
    md = (report.write_report(sweep, at=[1000, 2000, 3000, 9000]) / "summary.md").read_text()
    by_sequences, by_points = md.split("## lstm, batching=points")
    sampled = by_sequences.split("Along the way: seed-mean test RMSE (sampled)")[1]
    # 9000 is past every evaluation: left out; regular's seed mean is [10 8 6 5 5] at
    # [0 1005 2010 3015 4020] points, length's [10 5 4 2 1]
    assert "| points | 1,000 | 2,000 | 3,000 |\n" in sampled
    assert "| regular | 8.000 | 6.000 | 5.000 |" in sampled
    assert "| length | 5.000 | 4.000 | 2.000 |" in sampled
    # regular first gets to 5 at 3015 points (3x 1005); it never gets to 4 or 2 (past its end)
    assert "| regular's points to match length | 3.0× | > 2.0× | > 1.3× |" in sampled
    assert "| length | 2.500 | 2.000 | 1.000 |" in by_sequences  # expected value: half, as written
    # batching by points: regular's mean [10 5 4 3 2] is already at 9, 8 and 7 by 1005 points
    assert "| regular's points to match length | 1.0× | 0.5× | 0.3× |" in by_points


def test_a_baseline_already_as_good_before_training_reads_at_start(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in (1, 2):
        write_job(sweep, seed - 1, "regular", "sequences", "lstm", seed, P1, [5, 8, 6, 4, 3])
        write_job(sweep, seed + 1, "length", "sequences", "lstm", seed, P1, [20, 9, 4, 2, 1])
    md = (report.write_report(sweep, at=[1000, 2000]) / "summary.md").read_text()
    sampled = md.split("Along the way: seed-mean test RMSE (sampled)")[1]
    # length's 9 at 1,005 points is worse than regular's untrained 5; its 4 at 2,010 regular reaches at 3,015
    assert "| regular's points to match length | at start | 1.5× |" in sampled


def test_markdown_lists_failures_and_embeds_figures(sweep_report):
    _, out = sweep_report
    md = (out / "summary.md").read_text()
    assert "## lstm, batching=sequences" in md and "## lstm, batching=points" in md
    assert "| length | 2 | 1.000 ± 0.000 | 1.000 (4,020) | 1,005 | 3.0× | 80.0% | 0.500 ± 0.000 | 0.100 ± 0.000 |" in md
    assert "not reached" in md
    failed = md.split("## Failed jobs")[1].split("## Unfinished")[0]
    assert "NonFiniteLossError: loss is nan in training at step 7" in failed
    assert "RuntimeError: out of memory" in failed
    assert failed.count("\n- ") == 2
    unfinished = md.split("## Unfinished jobs")[1].split("##")[0]
    assert unfinished.count("\n- ") == 2 and "resumes them" in unfinished  # the silent and the killed
    assert "](rmse_sampled.png)" in md and "](rmse_expected.png)" in md
    assert "min–max" in md


def test_a_transfer_sweep_is_summarised_by_accuracy_against_scratch(tmp_path):
    sweep = tmp_path / "transfer"
    rmse = [40, 40, 40, 40, 40]  # a classifier's prediction head is not trained: RMSE says nothing
    starts = {"scratch": [[0.1, 0.2, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.3]],   # best 0.4 at 3000
              "length": [[0.1, 0.5, 0.7, 0.8, 0.9], [0.1, 0.3, 0.7, 0.8, 0.9]],    # 0.4 at 1000
              "regular": [[0.1, 0.2, 0.2, 0.3, 0.35], [0.1, 0.2, 0.2, 0.3, 0.35]]}  # never
    num = iter(range(100))
    for source, seeds in starts.items():
        for seed, accuracy in enumerate(seeds, start=1):
            write_job(sweep, next(num), "regular", "sequences", "lstm", seed, P1, rmse,
                      source=source, accuracy=accuracy, extra=(f"transfer.source={source}",))
    out = report.write_report(sweep)
    with (out / "summary.csv").open() as f:
        rows = {r["curriculum"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["from scratch", "from regular", "from length"]  # scratch first
    assert float(rows["from scratch"]["best_accuracy"]) == pytest.approx(0.4)
    assert float(rows["from length"]["final_accuracy_mean"]) == pytest.approx(0.9)
    assert float(rows["from length"]["points_to_reach_scratch_best"]) == 1000
    assert float(rows["from length"]["speedup"]) == pytest.approx(3.0)
    assert float(rows["from length"]["accuracy_gain"]) == pytest.approx(0.9 - 0.4)
    assert rows["from regular"]["points_to_reach_scratch_best"] == ""
    md = (out / "summary.md").read_text()
    assert "| start | seeds | final test accuracy |" in md and "final test RMSE" not in md
    assert "| from regular | 2 | 0.350 ± 0.000 | 0.350 (4,000) | not reached | — | -0.050 |" in md
    assert md.index("accuracy.png") < md.index("rmse_sampled.png")
    along = (report.write_report(sweep, at=[1000, 2000]) / "summary.md").read_text()
    along = along.split("Along the way")[1].split("## Figures")[0]
    assert "seed-mean test accuracy" in along and "RMSE" not in along
    assert "| from length | 0.400 | 0.700 |" in along
    assert "| from scratch's points to match from length | 3.0× | > 2.0× |" in along
    assert "| from scratch's points to match from regular | 1.0× | 0.5× |" in along


@pytest.mark.parametrize("xscale, yscale", [("linear", "linear"), ("log", "log")])
def test_figures_are_drawn(sweep, xscale, yscale):
    out = report.write_report(sweep, xscale=xscale, yscale=yscale)
    for name in ("rmse_sampled.png", "rmse_expected.png", "accuracy.png"):
        assert non_white_fraction(out / name) > 0.01


def test_overrides_that_differ_split_cells(tmp_path):
    sweep = tmp_path / "sweep"
    for num, threshold in enumerate(("3", "4")):
        write_job(sweep, 2 * num, "regular", "sequences", "lstm", 1, P1, [10, 8, 6, 5, 4],
                  extra=(f"curriculum.threshold={threshold}",))
        write_job(sweep, 2 * num + 1, "length", "sequences", "lstm", 1, P1, [10, 6, 4, 2, 1],
                  extra=(f"curriculum.threshold={threshold}",))
    out = report.write_report(sweep)
    with (out / "summary.csv").open() as f:
        variants = [r["variant"] for r in csv.DictReader(f)]
    assert variants == ["curriculum.threshold=3"] * 2 + ["curriculum.threshold=4"] * 2
    # The cells side by side, at the top: length's finals beside regular's in each cell.
    summary = (out / "summary.md").read_text()
    assert summary.index("## The cells side by side") < summary.index("## lstm, batching=sequences")
    for threshold in ("3", "4"):  # finals: sampled, expected = half, bits = a fifth (write_job)
        assert (f"| lstm, batching=sequences, curriculum.threshold={threshold} | 4.000 / 2.000 / 0.800 | "
                "length | 1.000 / 0.500 / 0.200 | 2.0× | 75.0% |") in summary


def test_a_head_without_a_density_leaves_its_nll_empty_and_says_why(tmp_path):
    for num, head in enumerate(("mdn", "moves")):
        for k, curriculum in enumerate(("regular", "length")):
            write_job(tmp_path, 2 * num + k, curriculum, "sequences", "lstm", 1, P1, [10, 8, 6, 5, 4 - k],
                      extra=(f"model.head={head}",), density=head == "mdn")
    out = report.write_report(tmp_path)
    rows = {(r["variant"], r["curriculum"]): r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows[("model.head=mdn", "length")]["final_nll_px"] == "-0.7"
    assert rows[("model.head=moves", "length")]["final_nll_px"] == ""           # empty, not a number
    assert rows[("model.head=moves", "length")]["final_bits_per_point"] == "0.6"
    summary = (out / "summary.md").read_text()
    moves = summary[summary.index("## lstm, batching=sequences, model.head=moves"):]
    assert "| length | — | — | — | — | 0.600 |" in moves and NO_DENSITY in moves
    assert NO_DENSITY not in summary[:summary.index("## lstm, batching=sequences, model.head=moves")]


def test_a_curve_of_too_few_evaluations_and_a_cell_without_regular_are_named(tmp_path):
    write_job(tmp_path, 0, "length", "sequences", "lstm", 1, [0, 4000], [10, 4])
    summary = (report.write_report(tmp_path) / "summary.md").read_text()
    assert "**Warning** (length): only 2 evaluation(s), too few for a curve" in summary
    assert "No `regular` runs in this cell: no speed-up or reduction to compute; sweep `curriculum=regular`" in summary


def test_one_cell_has_no_side_by_side_table(tmp_path):
    write_job(tmp_path, 0, "regular", "sequences", "lstm", 1, P1, [10, 8, 6, 5, 4])
    write_job(tmp_path, 1, "length", "sequences", "lstm", 1, P1, [10, 6, 4, 2, 1])
    assert "side by side" not in (report.write_report(tmp_path) / "summary.md").read_text()


def test_each_arm_of_the_warmup_experiment_is_a_line_of_its_units_cell(tmp_path):
    """experiment=warmup sweeps arm x data.scaling x seed: the arm names the line (two arms share
    a curriculum), the units split cells, seeds average, and regular is the baseline."""
    arms = {"regular": ("regular", [10, 8, 6, 5, 4]), "regular_lr_warmup": ("regular", [10, 9, 6, 4, 3]),
            "length": ("length", [10, 6, 4, 2, 1]), "length_warmup": ("length_warmup", [10, 4, 3, 2, 2]),
            "length_warmup_lr_warmup": ("length_warmup", [10, 8, 5, 4, 2])}
    sweep, num = tmp_path / "experiment-warmup", iter(range(100))
    for arm, (curriculum, rmse) in arms.items():
        for scaling in ("fixed", "std"):
            for seed in (1, 2):
                write_job(sweep, next(num), curriculum, "sequences", "lstm", seed, P1, rmse, arm=arm,
                          extra=(f"data.scaling={scaling}",))
    out = report.write_report(sweep)
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["curriculum"], r["seeds"]) for r in rows] == [
        (f"data.scaling={scaling}", arm, "2") for scaling in ("fixed", "std") for arm in arms]
    # regular's best, 4, first at 4,000 points; reached at 3,000, 2,000, 1,000 and 3,000
    assert [float(r["speedup"]) for r in rows[:5]] == pytest.approx([1, 4 / 3, 2, 4, 4 / 3])


def test_no_usable_job_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(report.ReportError, match=f"no usable job in {empty}"):
        report.write_report(empty)
    write_job(empty, 0, "regular", "sequences", "lstm", 1, error="ValueError: bad")
    assert report.main([str(empty)]) == 2
    assert f"no usable job in {empty}: 1 job(s)" in capsys.readouterr().err
    assert report.main([str(tmp_path / "nowhere")]) == 2


@pytest.mark.slow
@needs_mnist
def test_smoke_sweep_end_to_end(tmp_path, full_data_dir):
    env = {**os.environ, "ISL_MNIST_DIR": str(MNIST_DIR), "ISL_DATA_DIR": str(full_data_dir),
           "HOME": str(tmp_path)}                                  # no W&B credentials: offline
    env.pop("WANDB_API_KEY", None)
    env.pop("WANDB_MODE", None)
    runs = tmp_path / "runs"
    preloaded.run([sys.executable, "run.py", "-m", "experiment=smoke", f"paths.runs_dir={runs}"],
                  cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    (sweep,) = (runs / "multirun").glob("*")
    jobs = [d for d in sweep.iterdir() if (d / ".hydra").is_dir()]
    assert len(jobs) == 16
    for job in jobs:                                              # every job: CSV and a W&B run
        assert (job / "metrics.csv").is_file() and (job / "checkpoints" / "last.ckpt").is_file()
        assert len(list((job / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    result = preloaded.run([sys.executable, "-m", "isl.tools.report", str(sweep)], cwd=REPO, env=env,
                           check=True, capture_output=True, text=True, timeout=300)
    out = sweep / "report"
    assert str(out / "summary.md") in result.stdout
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    assert {(r["batching"], r["model"]) for r in rows} == {(b, m) for b in ("sequences", "points")
                                                           for m in ("lstm", "ffnn")}
    assert all(r["seeds"] == "1" and np.isfinite(float(r["final_rmse_mean"])) for r in rows)
    md = (out / "summary.md").read_text()
    # per cell: a row in the RMSE table and one in the proper scores' table; reference levels
    assert md.count("\n| regular |") == 8 and "16 jobs: 16 summarised, 0 failed" in md
    assert md.count("\n| no movement | RMSE (expected value) |") == 4
    assert all(np.isfinite(float(r["final_bits_per_point"])) and float(r["zero_rmse"]) > 0 for r in rows)
    for name in ("rmse_sampled.png", "rmse_expected.png", "nll_px.png", "bits_per_point.png"):
        assert non_white_fraction(out / name) > 0.01


def write_original_job(sweep: Path, num: int, curriculum: str, seed: int, rmse, full: tuple) -> Path:
    """A job under the original test protocol: a full evaluation at 0 and at the end (``full``:
    the two RMSEs) around test-batch rows (one per value of ``rmse``, every 10,000 points),
    which alone log ``test/rmse_sampled_alldata``."""
    budget = {"points": 10_000 * len(rmse), "eval_every": 10**6, "evals_per_decade": 4, "test_protocol": "original"}
    job = write_job(sweep, num, curriculum, "sequences", "lstm", seed, [0], [full[0]], budget=budget,
                    extra=("setup=original",))
    end = 10_000 * len(rmse) + 1500
    with (job / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "test/rmse_sampled_alldata"])
        writer.writeheader()
        for step, (p, r) in enumerate([(0, full[0]), *((10_000 * k, v) for k, v in enumerate(rmse, 1)),
                                       (end, full[1])]):
            batch = {"test/rmse_sampled_alldata": r + 1} if 0 < p < end else {}
            writer.writerow({"points": float(p), "step": step, "test/loss": 1.0, "test/accuracy": 0.1,
                             "test/nll_px": r / 10, "test/bits_per_point": r / 5, "test/rmse_sampled": r,
                             "test/rmse_expected": r / 2, **batch})
    return job


def test_the_original_protocol_s_test_batches_are_smoothed_and_its_end_is_the_full_evaluation(tmp_path):
    """1,000 noisy test-batch rows per run (+-1 about a straight line): the curve is their
    rolling mean over 10 rows, read at the budget's grid; final is the full evaluation."""
    sweep = tmp_path / "sweep"
    k = np.arange(1, 1001)
    for seed in (1, 2):
        write_original_job(sweep, seed, "regular", seed, 10 - k / 200 + (-1) ** k, full=(30.0, 4.0 + seed))
    out = report.write_report(sweep, at=[5e6])
    [row] = rows_of(out).values()
    assert row["test_protocol"] == "original"
    assert float(row["final_rmse_mean"]) == pytest.approx(5.5) and float(row["final_points"]) == 10_001_500
    md = (out / "summary.md").read_text()
    assert "Test protocol **original** (the paper's code): a test batch of the next 50 test sequences " \
           "every 10 training batches; its curves are a rolling mean over 10 test batches" in md
    assert "**Warning**" not in md                               # both seeds on one grid
    # at 5e6 points, the line's 7.5: the noise averages out over 10 rows (one row reads 8.5)
    assert "| regular | 7.500 |" in md.split("seed-mean test RMSE (sampled)")[1]
    raw = (report.write_report(sweep, out=tmp_path / "raw", at=[5e6], window=1) / "summary.md").read_text()
    assert "| regular | 8.500 |" in raw.split("seed-mean test RMSE (sampled)")[1]
    assert "rolling mean over 1 test batches" in raw
    # the grid (every 1/100 of the budget, 4 per decade) where the smoothed rows reach, and the two full evaluations
    assert int(row["evaluations"]) == 2 + sum(30_000 <= p <= 9_975_000 for p in
                                              evaluation_points(10**7, 10**5, 4)[1:-1])
    assert non_white_fraction(out / "rmse_sampled.png") > 0.01


def test_the_report_names_the_full_protocol_too(sweep):
    md = (report.write_report(sweep) / "summary.md").read_text()
    assert "Test protocol **full**: the whole test subset at every evaluation." in md
    assert {r["test_protocol"] for r in rows_of(sweep / "report").values()} == {"full"}
