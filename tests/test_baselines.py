"""Reference levels: trivial predictors scored by the definitions of the run's test metrics."""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest

import preloaded
from conftest import MNIST_DIR, REPO
from isl.data.reference import reference_levels
from isl.data.sequences import StrokeSet

# start point, three offsets (the last the end row); one pen lift in the second sequence
A = np.array([[5, 5, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]])
B = np.array([[9, 2, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [-1, 1, 0, 0], [0, 0, 1, 1]])


def test_levels_of_a_hand_made_set():
    strokes = StrokeSet.from_sequences([A, B], [3, 7])
    levels = reference_levels(strokes, strokes)
    xy = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [0, 0], [-1, 1], [0, 0]], float)
    previous = np.array([[0, 0], [1, 0], [1, 1], [0, 0], [0, 1], [0, 0], [-1, 1]], float)
    n = len(xy)
    assert levels["test_points"] == n and levels["test_sequences"] == 2
    assert levels["zero_rmse"] == pytest.approx(math.sqrt((xy ** 2).sum() / (2 * n)))
    assert levels["repeat_last_rmse"] == pytest.approx(math.sqrt(((xy - previous) ** 2).sum() / (2 * n)))
    mean = xy.mean(axis=0)
    assert levels["mean_rmse"] == pytest.approx(math.sqrt(((xy - mean) ** 2).sum() / (2 * n)))
    # sampling a training offset X for every target y: E (X - y)^2, by enumeration
    sampled = np.mean([((x - y) ** 2).sum() for x in xy for y in xy]) * n
    assert levels["empirical_sample_rmse"] == pytest.approx(math.sqrt(sampled / (2 * n)))
    # cells (1,0) (1,1) (0,1) (-1,1) once, (0,0) three times: add-one over the 5 cells seen
    p = {(1, 0): 2 / 12, (1, 1): 2 / 12, (0, 1): 2 / 12, (-1, 1): 2 / 12, (0, 0): 4 / 12}
    offset_bits = -sum(math.log2(p[tuple(map(int, c))]) for c in xy)
    eos = np.array([0, 0, 1, 0, 1, 0, 1]); eod = np.array([0, 0, 1, 0, 0, 0, 1])
    flag_bits = sum(-(f * math.log2(f.mean()) + (1 - f) * math.log2(1 - f.mean())).sum() for f in (eos, eod))
    assert levels["empirical_bits_per_point"] == pytest.approx((offset_bits + flag_bits) / n)
    assert levels["empirical_nll_px"] == pytest.approx(levels["empirical_bits_per_point"] * math.log(2))


def test_max_length_truncates_as_the_test_loader_does():
    strokes = StrokeSet.from_sequences([A, B], [3, 7])
    assert reference_levels(strokes, strokes, max_length=2)["test_points"] == 2


@pytest.mark.slow
@pytest.mark.skipif(MNIST_DIR is None, reason="real MNIST files not found")
def test_the_command_prints_one_json_line_for_the_run_s_test_set(full_data_dir):
    env = {**os.environ, "ISL_MNIST_DIR": str(MNIST_DIR), "ISL_DATA_DIR": str(full_data_dir)}
    result = preloaded.run([sys.executable, "-m", "isl.tools.baselines", "data.num_test=1000"], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    levels = json.loads(result.stdout.strip().splitlines()[-1])
    assert levels["test_sequences"] == 1000 and 35_000 < levels["test_points"] < 45_000
    # pixel offsets of single-pixel pen moves: about 1 px per coordinate for every trivial guess
    assert 0.8 < levels["zero_rmse"] < 1.1 and levels["empirical_sample_rmse"] > levels["zero_rmse"]
    assert 2 < levels["empirical_bits_per_point"] < 5
