"""The training-speed benchmark runs and reports what BENCHMARKS.md quotes (not a timing test:
the figures themselves are measured on a quiet machine, see BENCHMARKS.md)."""

from __future__ import annotations

import json

import pytest

from isl.tools import bench


def test_the_train_benchmark_reports_both_loops_and_their_ratio(capsys):
    bench.main(["train", "--model", "ffnn", "--seq-len", "4", "--batch-seqs", "5", "--steps", "3",
                "--warmup", "1", "--repeats", "2"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == "ffnn" and result["seq_len"] == 4 and result["steps"] == 3
    assert result["points_per_sec"] > 0 and result["bare_points_per_sec"] > 0
    low, high = result["ratio_range"]
    assert 0 < low <= result["ratio"] <= high
    assert result["floor_ms_per_step"] > 0 and 0 < result["best_ratio"] < 1


def test_the_run_benchmark_splits_a_real_runs_wall_time(full_data_dir, monkeypatch, capsys):
    """A real run.py run, timed by part: every part is there, none negative, evaluation and the
    training steps take time, and the parts (with ``other``) add up to the wall time."""
    monkeypatch.setenv("ISL_DATA_DIR", str(full_data_dir))
    bench.main(["run", "budget.points=6000", "budget.eval_every=3000", "budget.evals_per_decade=0",
                "data.num_train=300", "data.num_test=50"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    seconds = result["seconds"]
    assert set(seconds) == {"training_steps", "data", "evaluation", "checkpoints", "curriculum", "other"}
    assert result["points"] >= 6000 and result["evaluations"] == 3          # at 0, 3,000 and the end
    assert seconds["training_steps"] > 0 and seconds["evaluation"] > 0 and seconds["checkpoints"] > 0
    assert all(v >= 0 for k, v in seconds.items() if k != "other")
    assert sum(seconds.values()) == pytest.approx(result["wall_s"], abs=0.05)
    assert sum(result["shares"].values()) == pytest.approx(1, abs=0.01)
