"""The digit scorer (isl.tools.score): rendering, the JSON line, its cache, and that it tells real
digits (accuracy >= 0.97) from pen-like scribbles made by a generator of the tests' own."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import isl.tools.score as scorer_module
from conftest import MNIST_DIR
from isl.data.published import write_published
from isl.data.sequences import StrokeSet, check_sequence
from isl.models.scorer import DigitClassifier
from isl.tools.score import NOT_A_DIGIT, cache_path, centred, load_classifier, main, render, score
from isl.tools.scribbles import scribbles

NEIGHBOURS = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)]


def lattice_walks(n: int, seed: int) -> list[np.ndarray]:
    """Pen-down walks on the pixel grid that keep their direction or turn by 45 degrees, 20-60
    points, bouncing inside [4, 25]: written apart from isl.tools.scribbles, which the scorer trains on."""
    rng = np.random.default_rng(seed)
    walks = []
    for _ in range(n):
        keep, d = rng.uniform(0.6, 0.9), int(rng.integers(8))
        x, y = (int(v) for v in rng.integers(9, 21, 2))
        rows = [(x, y, 0, 0)]
        for _ in range(int(rng.integers(20, 61)) - 1):
            if rng.random() > keep:
                d = (d + int(rng.choice([-1, 1]))) % 8
            dx, dy = NEIGHBOURS[d]
            dx, dy = (dx if 4 <= x + dx <= 25 else -dx), (dy if 4 <= y + dy <= 25 else -dy)
            d, x, y = NEIGHBOURS.index((dx, dy)), x + dx, y + dy
            rows.append((dx, dy, 0, 0))
        walks.append(np.array([*rows, (0, 0, 1, 1)]))
    return walks


def heading_walks(n: int, seed: int) -> list[np.ndarray]:
    """A point moving one pixel at a time along a heading that drifts by Gaussian turns; the
    sequence steps from pixel to pixel of its path, 20-60 points, clipped to [3, 26]."""
    rng = np.random.default_rng(seed)
    walks = []
    for _ in range(n):
        length, turn, heading = int(rng.integers(20, 61)), rng.uniform(0.1, 0.5), rng.uniform(0, 2 * np.pi)
        position = rng.uniform(9, 20, 2)
        pixel = np.rint(position)
        rows = [(*pixel, 0, 0)]
        while len(rows) < length:
            heading += turn * rng.standard_normal()
            position = np.clip(position + (np.cos(heading), np.sin(heading)), 3, 26)
            step = np.rint(position) - pixel
            if step.any():
                rows.append((*step, 0, 0))
                pixel = pixel + step
        walks.append(np.array([*rows, (0, 0, 1, 1)]))
    return walks


def ink(image: np.ndarray) -> set[tuple[int, int]]:
    """The inked pixels as 1-based (x, y)."""
    rows, cols = np.nonzero(image)
    return {(int(c) + 1, int(r) + 1) for r, c in zip(rows, cols)}


# --- rendering -------------------------------------------------------------------------------
def test_render_draws_pen_down_segments_and_not_the_moves_after_pen_lifts():
    steps = np.array([[3, 2, 0, 0],    # start (3, 2)
                      [1, 0, 0, 0],    # (4, 2)
                      [2, 0, 0, 0],    # (6, 2): a 2-pixel move inside a stroke fills (5, 2)
                      [0, 1, 0, 0],    # (6, 3)
                      [0, 0, 1, 0],    # pen lift
                      [-3, 4, 0, 0],   # (3, 7): the move there is not drawn
                      [1, 1, 0, 0],    # (4, 8)
                      [0, 0, 1, 0],    # pen lift
                      [5, 0, 0, 0],    # (9, 8): a single-point stroke
                      [0, 0, 1, 1]])
    [image] = render([steps])
    assert image.shape == (28, 28) and image.dtype == np.uint8 and image.max() == 1
    assert ink(image) == {(3, 2), (4, 2), (5, 2), (6, 2), (6, 3), (3, 7), (4, 8), (9, 8)}


def test_render_takes_float_rows_rounds_them_and_drops_what_leaves_the_canvas():
    steps = np.array([[26.2, 13.9, 0, 0], [1.0, 0.0, 0, 0], [1.0, 0.0, 0, 0], [1.0, 0.0, 0, 0],
                      [0, 0, 1, 1]], dtype=np.float32)  # (26, 14) to (29.2, 13.9): x = 29 is off
    short = np.array([[1, 1, 0, 0], [0, 0, 1, 1]])       # a start point and the end: one pixel
    images = render([steps, short])
    assert ink(images[0]) == {(26, 14), (27, 14), (28, 14)}
    assert ink(images[1]) == {(1, 1)}
    assert render([]).shape == (0, 28, 28)


def test_render_matches_each_sequence_alone_in_a_batch(real_source):
    test = real_source.load("test", 20)
    sequences = [test.sequence(i) for i in range(20)]
    together = render(sequences)
    assert all(np.array_equal(together[i], render([s])[0]) for i, s in enumerate(sequences))
    points = test.points(0)[test.sequence(0)[:, 2] == 0]  # every pen-down point is inked
    assert {tuple(p) for p in points.tolist()} <= ink(together[0])


# --- scribbles (the negatives the scorer trains on) ------------------------------------------
def test_scribbles_are_pen_down_single_pixel_walks_in_the_published_form():
    made = scribbles(300, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(made, scribbles(300, seed=5)))
    strokes = []
    for steps in made:
        check_sequence(steps, "scribble")
        down = steps[:, 2] == 0
        assert 15 <= down.sum() <= 70
        jumps = np.concatenate([[True], steps[:-1, 2] == 1])  # the start and the moves after lifts
        assert (np.abs(steps[down & ~jumps, :2]).max(axis=1) == 1).all()  # every step one pixel
        points = np.cumsum(steps[:, :2], axis=0)[down]
        assert (points >= 3).all() and (points <= 26).all()   # inside the box digits lie in
        strokes.append(steps[:, 2].sum())
    assert set(strokes) == {1, 2}  # one or two strokes


# --- the JSON line ---------------------------------------------------------------------------
def biased_classifier(winner: int) -> DigitClassifier:
    """A classifier whose output is class ``winner`` with probability ~1, whatever the input."""
    model = DigitClassifier(NOT_A_DIGIT + 1).eval()
    last = model.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-20.0)
        last.bias[winner] = 20.0
    return model


def test_the_json_line_counts_recognised_digits_and_not_digits(real_source):
    test = real_source.load("test", 30)
    sequences = [test.sequence(i) for i in range(30)]
    three = score(biased_classifier(3), sequences, test.labels)
    assert list(three) == ["n", "accuracy", "accuracy_by_class", "recognised", "mean_top_probability",
                           "class_counts", "off_canvas", "recognised_centred", "mean_rows", "mean_strokes"]
    assert three["n"] == 30 and three["recognised"] == 1.0 and three["mean_top_probability"] == 1.0
    assert three["accuracy"] == round(float((test.labels == 3).mean()), 4)
    assert three["accuracy_by_class"] == {str(d): float(d == 3) for d in sorted(set(test.labels.tolist()))}
    assert three["class_counts"] == {**{str(d): 0 for d in range(10)}, "3": 30, "none": 0}
    none = score(biased_classifier(NOT_A_DIGIT), sequences)  # no labels: no accuracy
    assert "accuracy" not in none and none["recognised"] == 0.0 and none["mean_top_probability"] < 1e-6
    assert none["class_counts"]["none"] == 30
    json.dumps(none)
    with pytest.raises(ValueError, match="2 labels for 30"):
        score(biased_classifier(3), sequences, test.labels[:2])


def test_digits_generated_as_asked_classes_get_the_class_accuracy(real_source):
    test = real_source.load("test", 30)
    sequences = [test.sequence(i) for i in range(30)]
    threes = score(biased_classifier(3), sequences, classes=[3] * 30)   # --digit 3
    assert list(threes)[:5] == ["n", "recognised", "mean_top_probability", "class_counts", "class_accuracy"]
    assert threes["class_accuracy"] == 1.0
    in_turn = score(biased_classifier(3), sequences, test.labels, classes=np.arange(30) % 10)
    assert in_turn["accuracy"] == round(float((test.labels == 3).mean()), 4)   # labels stay apart
    assert in_turn["class_accuracy"] == 0.1                                     # 3 of 30 asked for 3
    assert in_turn["class_accuracy_by_class"] == {**{str(d): 0.0 for d in range(10)}, "3": 1.0}
    assert score(biased_classifier(NOT_A_DIGIT), sequences, classes=[3] * 30)["class_accuracy"] == 0.0
    with pytest.raises(ValueError, match="29 classes for 30"):
        score(biased_classifier(3), sequences, classes=[3] * 29)


def test_placement_is_told_from_shape_and_lengths_and_strokes_are_counted(real_source):
    test = real_source.load("test", 30)
    sequences = [test.sequence(i) for i in range(30)]
    moved = [s.astype(np.float32) for s in sequences]
    for s in moved[:10]:
        s[0, :2] += (17, 9)                                       # start far right and low
    for original, shifted in zip(sequences, moved):
        inked, centre = render([centred(shifted)])[0], render([centred(original)])[0]
        assert np.array_equal(inked, centre)                      # the same shape, the same place
        rows, cols = np.nonzero(centre)
        assert abs((cols.min() + cols.max()) / 2 - 13.5) <= 1 and abs((rows.min() + rows.max()) / 2 - 13.5) <= 1
    assert not np.array_equal(render(moved[:10]), render(sequences[:10]))
    result = score(biased_classifier(3), moved)
    assert result["off_canvas"] == round(np.mean([(np.cumsum(s[:, :2], 0) > 28).any() for s in moved]), 4)
    assert 0.2 <= result["off_canvas"] <= 1 / 3 and score(biased_classifier(3), sequences)["off_canvas"] == 0.0
    assert result["recognised_centred"] == 1.0
    assert result["mean_rows"] == round(np.mean([len(s) for s in sequences]), 2)
    assert result["mean_strokes"] == round(np.mean([s[:, 2].sum() for s in sequences]), 2) >= 1


def test_a_malformed_sequences_folder_is_named(tmp_path, capsys):
    assert main(["--sequences", str(tmp_path), "--split", "test"]) == 2
    assert "testlabels.txt" in capsys.readouterr().err


# --- the cache (small_scorer: conftest) ------------------------------------------------------
def test_the_classifier_is_trained_once_cached_and_reused(small_scorer, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="isl.tools.score")
    rng_state = torch.random.get_rng_state()
    first = load_classifier(small_scorer)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # training leaves it alone
    [cached] = (small_scorer.data_dir / "cache").glob("scorer-*.pt")
    assert "Trained the digit scorer" in caplog.text and str(cached) in caplog.text
    assert caplog.text.index("Training the digit scorer once") < caplog.text.index("Trained")  # said first
    monkeypatch.setattr(scorer_module, "train_classifier", lambda *a, **k: pytest.fail("retrained"))
    again = load_classifier(small_scorer)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_an_unreadable_cache_is_retrained(small_scorer, caplog):
    path = cache_path(small_scorer.load("train"), small_scorer.data_dir)
    path.write_bytes(b"truncated")
    load_classifier(small_scorer)
    assert "unreadable scorer cache" in caplog.text
    torch.load(path, weights_only=True)  # replaced by a readable one


def test_the_cache_key_follows_the_data_the_version_and_the_seed(real_source, monkeypatch, tmp_path):
    train = real_source.load("train", 200)
    key = cache_path(train, tmp_path)
    assert key == cache_path(train, tmp_path, seed=0) and key.parent == tmp_path / "cache"
    assert cache_path(train, tmp_path, seed=1) != key
    assert cache_path(real_source.load("train", 199), tmp_path) != key
    relabelled = StrokeSet(train.steps, train.starts, (train.labels + 1) % 10)
    assert cache_path(relabelled, tmp_path) != key
    monkeypatch.setattr(scorer_module, "SCORER_VERSION", scorer_module.SCORER_VERSION + 1)
    assert cache_path(train, tmp_path) != key


# --- the trained scorer (slow: trains once, ~3 min, unless its cache exists) ----------------
@pytest.mark.slow
def test_real_test_digits_are_classified_with_accuracy_of_at_least_097(scorer, capsys):
    model, source = scorer
    assert main(["--split", "test", "--n", "1000", "--data-dir", str(source.data_dir),
                 "--mnist-dir", str(MNIST_DIR)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 1000 and result["accuracy"] >= 0.97
    assert result["recognised"] >= 0.85 and sum(result["class_counts"].values()) == 1000


@pytest.mark.slow
@pytest.mark.parametrize("walks", [lattice_walks, heading_walks])
def test_pen_like_scribbles_are_mostly_not_recognised(scorer, walks):
    made = walks(1000, seed=2024)
    for steps in made[:50]:
        check_sequence(steps, walks.__name__)
    result = score(scorer[0], made)
    assert result["recognised"] <= 0.1, result
    assert result["class_counts"]["none"] >= 800


@pytest.mark.slow
def test_sequences_in_the_published_format_score_as_the_same_digits(scorer, tmp_path, capsys):
    model, source = scorer
    test = source.load("test", 300)
    write_published(test, tmp_path, "test")
    assert main(["--sequences", str(tmp_path), "--data-dir", str(source.data_dir)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == score(model, [test.sequence(i) for i in range(300)], test.labels)
    assert result["n"] == 300 and result["accuracy"] >= 0.95
    by_class = result["accuracy_by_class"]                          # per label, the overall one their mean
    counts = np.bincount(test.labels, minlength=10)
    assert set(by_class) == {str(d) for d in range(10)} and min(by_class.values()) >= 0.8
    assert sum(by_class[str(d)] * counts[d] for d in range(10)) / 300 == pytest.approx(result["accuracy"], abs=1e-3)
