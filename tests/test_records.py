"""A sweep's records: kept without weights, read by the report, and restored so that the sweep's
own command skips what finished and trains only the rest."""

from __future__ import annotations

import csv

import pytest

from conftest import REPO
from isl.tools import records, report
from test_resume import RUN, command, run

SWEEP = ["name=kept", "seed=1,2", *[o for o in RUN if not o.startswith(("seed=", "budget.points"))],
         "budget.points=12000"]


@pytest.mark.slow
def test_records_keep_finished_jobs_without_weights_and_restore_to_resume(full_data_dir, tmp_path):
    runs = tmp_path / "runs"
    cmd = command(runs, *SWEEP, multirun=True)
    run(cmd, full_data_dir)
    sweep = runs / "multirun" / "kept"
    first, second = sorted(sweep.glob("[0-9]-*"))
    assert [first.name, second.name] == ["0-seed-1", "1-seed-2"]       # named by what differs
    (second / "result.json").unlink()  # as if killed before its end: not kept

    kept = tmp_path / "results" / "kept"
    assert records.main([str(sweep), "--to", str(kept)]) == 0
    assert [p.name for p in kept.iterdir() if p.is_dir()] == [first.name]
    files = {p.relative_to(kept / first.name).as_posix() for p in (kept / first.name).rglob("*") if p.is_file()}
    assert {"metrics.csv", "result.json", "reference.json", "run-config.yaml", ".hydra/config.yaml",
            ".hydra/hydra.yaml"} <= files
    assert not any(f.startswith("checkpoints") or f.endswith((".ckpt", ".png")) for f in files)
    assert (first / "checkpoints" / "last.ckpt").is_file()          # the sweep itself is untouched

    out = report.write_report(kept, out=tmp_path / "report")        # the report reads records
    with (out / "summary.csv").open() as f:
        [row] = list(csv.DictReader(f))
    assert row["curriculum"] == "length" and row["seeds"] == "1"

    finished = (first / "metrics.csv").read_text()
    for job in (first, second):                                       # a fresh clone: no runs/
        for path in sorted(job.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        job.rmdir()
    # Kept under a job name of before (every override): the sweep's command finds it by that name.
    job = [o.replace("seed=1,2", "seed=1") for o in SWEEP if not o.startswith(("name=", "checkpoint."))]
    old = first.with_name("0-" + ",".join(sorted(job)))
    (kept / first.name).rename(kept / old.name)
    assert records.main([str(kept), "--restore", "--to", str(sweep)]) == 0
    first = old
    again = run(cmd, full_data_dir)
    assert again.stdout.count("already finished") == 1                # the kept job is not redone
    assert (first / "metrics.csv").read_text() == finished
    assert (second / "result.json").is_file()                         # the other one trained
    assert records.main([str(sweep), "--to", str(kept)]) == 0         # and is kept in its turn
    assert sorted(p.name for p in kept.iterdir() if p.is_dir()) == [first.name, second.name]


def test_generation_scores_written_after_the_end_reach_the_record_and_are_never_undone(tmp_path):
    sweep, kept = tmp_path / "runs" / "s", tmp_path / "results" / "s"
    job = sweep / "0-curriculum=length,seed=1"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (job / "result.json").write_text("{}")
    (job / "generation.csv").write_text("points,recognised\n20100,0.002\n")
    assert records.main([str(sweep), "--to", str(kept)]) == 0
    assert (kept / job.name / "generation.csv").read_text() == (job / "generation.csv").read_text()
    with (job / "generation.csv").open("a") as f:                     # isl.tools.quality scores more copies
        f.write("35895,0.012\n")
    assert records.main([str(sweep), "--to", str(kept)]) == 0
    assert (kept / job.name / "generation.csv").read_text().endswith("35895,0.012\n")
    # Restoring an older record leaves the newer scores in runs/ as they are; a record without
    # scores gets them, one with other scores is not touched.
    (job / "generation.csv").write_text("points,recognised\n20100,0.002\n35895,0.012\n64921,0.016\n")
    assert records.main([str(kept), "--restore", "--to", str(sweep)]) == 0
    assert (job / "generation.csv").read_text().endswith("64921,0.016\n")
    (kept / job.name / "generation.csv").unlink()
    assert records.main([str(sweep), "--to", str(kept)]) == 0
    assert (kept / job.name / "generation.csv").read_text().endswith("64921,0.016\n")
    (job / "generation.csv").write_text("points,recognised\n20100,0.5\n20200,0.6\n")
    records.main([str(sweep), "--to", str(kept)])
    assert (kept / job.name / "generation.csv").read_text().endswith("64921,0.016\n")
    # Sets of generated digits made after the end reach the record, once; it keeps its own.
    (job / "generated").mkdir()
    (job / "generated" / "unprimed-t1.tar.gz").write_bytes(b"digits")
    assert records.main([str(sweep), "--to", str(kept)]) == 0
    assert (kept / job.name / "generated" / "unprimed-t1.tar.gz").read_bytes() == b"digits"
    (job / "generated" / "unprimed-t1.tar.gz").write_bytes(b"other")
    records.main([str(sweep), "--to", str(kept)])
    assert (kept / job.name / "generated" / "unprimed-t1.tar.gz").read_bytes() == b"digits"


def test_every_table_of_the_results_marked_as_from_records_matches_them(capsys):
    assert records.main(["check", str(REPO / "docs" / "results.md")]) == 0, capsys.readouterr().out


def test_a_published_number_changed_by_hand_fails_the_check_naming_table_and_cell(tmp_path, capsys):
    text = (REPO / "docs" / "results.md").read_text()
    marked = text.index("<!-- records: results/exp1-strat-10M")
    row = text.index("| length | ", marked)
    changed = tmp_path / "results.md"
    changed.write_text(text[:row] + text[row:].replace("0.665 ± 0.045", "0.675 ± 0.045", 1))
    assert records.main(["check", str(changed)]) == 1
    out = capsys.readouterr().out
    assert "the table from results/exp1-strat-10M" in out and "row 'length'" in out
    assert "final_rmse_expected_mean ± final_rmse_expected_std" in out and "0.675 ± 0.045" in out
    assert out.count("\n") == 1                                         # that cell alone
