"""The training-speed benchmark runs and reports what BENCHMARKS.md quotes (not a timing test:
the figures themselves are measured on a quiet machine, see BENCHMARKS.md)."""

from __future__ import annotations

import json

from isl import bench


def test_the_train_benchmark_reports_both_loops_and_their_ratio(capsys):
    bench.main(["train", "--model", "ffnn", "--seq-len", "4", "--batch-seqs", "5", "--steps", "3",
                "--warmup", "1", "--repeats", "2"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == "ffnn" and result["seq_len"] == 4 and result["steps"] == 3
    assert result["points_per_sec"] > 0 and result["bare_points_per_sec"] > 0
    low, high = result["ratio_range"]
    assert 0 < low <= result["ratio"] <= high
    assert result["floor_ms_per_step"] > 0 and 0 < result["best_ratio"] < 1
