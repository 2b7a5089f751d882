"""Generation (isl.tools.generate): stepwise sampling until end of digit, bias, priming, and the CLI."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch
from matplotlib.image import imread

import preloaded
from conftest import MNIST_DIR, REPO
from isl.tools.generate import DEFAULT_START, END_ROW, generate, main
from isl.tools.starts import training_starts
from isl.models.module import NO_CLASS, SequenceMDN, load_model
from isl.models.moves import Moves

COMPONENTS = 5


def small_model(eos: float | None = None, eod: float | None = None, seed: int = 0,
                scale=(2.0, 3.0), shift=(0.0, 0.0)) -> SequenceMDN:
    """An untrained small LSTM MDN; ``eos``/``eod`` fix that flag's logit (weights zeroed)."""
    torch.manual_seed(seed)
    model = SequenceMDN(hidden=32, layers=2, components=COMPONENTS)
    model.set_units(torch.tensor(shift), torch.tensor(scale))
    with torch.no_grad():
        for index, logit in ((6 * COMPONENTS, eos), (6 * COMPONENTS + 1, eod)):
            if logit is not None:
                model.head.linear.weight[index] = 0
                model.head.linear.bias[index] = logit
    return model


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_every_sequence_stops_at_the_sampled_end_of_digit():
    out = generate(small_model(eod=50.0), 6, seeded(), max_steps=100)
    assert len(out) == 6
    for steps in out:  # the first drawn row is the end: start point, then the end row
        assert steps.dtype == np.float32 and steps.shape == (2, 4)
        np.testing.assert_array_equal(steps[0], [*DEFAULT_START, 0, 0])
        np.testing.assert_array_equal(steps[-1], END_ROW)


def test_each_sequence_starts_at_its_own_given_point():
    starts = np.array([[5.0, 6.0], [20.0, 9.0], [13.0, 21.0]])
    out = generate(small_model(eod=50.0), 3, seeded(), start=starts)
    np.testing.assert_array_equal(np.stack([s[0, :2] for s in out]), starts)
    with pytest.raises(ValueError, match=r"one per sequence, shape \(2, 2\); got shape \(3, 2\)"):
        generate(small_model(), 2, seeded(), start=starts)


def test_training_starts_are_drawn_from_the_training_digits_start_points(real_source):
    train = real_source.load("train")
    real = {tuple(p) for p in train.steps[train.starts[:-1], :2].tolist()}
    drawn = training_starts(500, np.random.default_rng(3), real_source)
    assert drawn.shape == (500, 2) and {tuple(p) for p in drawn.astype(int).tolist()} <= real
    assert len({tuple(p) for p in drawn.tolist()}) > 30  # many start points, not one fixed
    np.testing.assert_array_equal(drawn, training_starts(500, np.random.default_rng(3), real_source))


def test_the_length_limit_cuts_and_appends_the_end_row():
    out = generate(small_model(eos=-50.0, eod=-50.0), 4, seeded(), max_steps=17)
    for steps in out:
        assert steps.shape == (17 + 1, 4)                     # max_steps rows, then the end row
        np.testing.assert_array_equal(steps[-1], END_ROW)
        assert not steps[:-1, 2:].any()                       # no pen lift or end before it
        assert (np.abs(steps[1:-1, :2]) > 0).all()            # real, unrounded drawn offsets


def test_a_mixed_batch_ends_each_sequence_on_its_own():
    out = generate(small_model(eos=-50.0, eod=-1.5), 32, seeded(), max_steps=40)
    lengths = [len(s) for s in out]
    assert len(set(lengths)) > 3 and max(lengths) <= 41
    for steps in out:
        np.testing.assert_array_equal(steps[-1], END_ROW)
        assert not steps[:-1, 3].any()


def test_pen_lift_rows_are_in_the_published_form():
    out = generate(small_model(eos=50.0, eod=-50.0), 3, seeded(), max_steps=6)
    for steps in out:
        np.testing.assert_array_equal(steps[1:-1], np.tile([0, 0, 1, 0], (5, 1)))
        assert len(steps) == 7  # 6 rows, then the end row
        np.testing.assert_array_equal(steps[-1], END_ROW)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (-18.0, -18.0)])  # std and range scaling
def test_offsets_come_back_in_pixels_from_the_models_own_draw(shift):
    model, start = small_model(eos=-50.0, eod=-50.0, scale=(2.0, 3.0), shift=shift), (5.0, 20.0)
    out = generate(model, 3, seeded(7), max_steps=2, start=start)
    # The same draw by hand: the start row in input units in, one step out, back to pixels.
    unit, zero = torch.tensor([2.0, 3.0, 1.0, 1.0]), torch.tensor([*shift, 0.0, 0.0])
    first = (torch.tensor([[[*start, 0.0, 0.0]]]).expand(3, 1, 4) - zero) / unit
    with torch.no_grad():
        mixture, _ = model(first)
        drawn = model.sample_step(mixture, seeded(7)).squeeze(1) * unit + zero
    np.testing.assert_allclose(np.stack([s[1] for s in out]), drawn.numpy(), rtol=1e-5, atol=1e-5)
    assert all(s.shape == (3, 4) for s in out)


def test_whole_pixels_rounds_the_draw_that_is_kept_and_fed_back():
    model = small_model(eos=-50.0, eod=-50.0)
    plain = generate(model, 4, seeded(5), max_steps=12)
    whole = generate(model, 4, seeded(5), max_steps=12, whole_pixels=True)
    offsets = np.concatenate([s[1:-1, :2] for s in whole])
    assert np.array_equal(offsets, np.round(offsets)) and np.abs(offsets).max() >= 1
    assert not np.array_equal(np.concatenate([s[1:-1, :2] for s in plain]) % 1, np.zeros_like(offsets))
    # The first draw is the same one, rounded, and the rounded rows are what the network is fed.
    np.testing.assert_array_equal(np.stack([s[1, :2] for s in whole]),
                                  np.round(np.stack([s[1, :2] for s in plain])))
    fed, forward = [], model.forward
    model.forward = lambda x, *a, **k: fed.append(model.to_pixels(x[:, 0, :2])) or forward(x, *a, **k)
    whole = generate(model, 4, seeded(5), max_steps=12, whole_pixels=True)
    np.testing.assert_allclose(torch.stack(fed[1:], 1).numpy(), np.stack([s[1:-1, :2] for s in whole]), atol=1e-4)


def test_reproducible_under_a_seed_and_different_across_seeds():
    model = small_model(eod=-3.0)
    a = generate(model, 5, seeded(1), max_steps=30)
    b = generate(model, 5, seeded(1), max_steps=30)
    c = generate(model, 5, seeded(2), max_steps=30)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, c))
    assert model.training  # left in the mode it was in


def test_a_larger_bias_narrows_the_sampled_offsets():
    model = small_model(eos=-50.0, eod=-50.0)

    def spread(bias):
        out = generate(model, 16, seeded(3), bias=bias, max_steps=30)
        return np.concatenate([s[1:-1, :2] for s in out]).std(axis=0)

    plain, biased, sharp = spread(0.0), spread(1.0), spread(3.0)
    assert (biased < plain).all() and (sharp < 0.5 * plain).all()


def test_priming_keeps_the_real_rows_and_then_generates(real_source):
    test = real_source.load("test")
    k = 6
    prefixes = [test.sequence(i)[:k] for i in range(8)]
    model = small_model(eod=-2.0, scale=(1.5, 1.7))
    out = generate(model, 8, seeded(), prime=prefixes, max_steps=50)
    for prefix, steps in zip(prefixes, out):
        np.testing.assert_array_equal(steps[:k], prefix.astype(np.float32))
        assert len(steps) > k
        np.testing.assert_array_equal(steps[-1], END_ROW)
    # Ragged prefixes work in one batch; one as long as the limit leaves only the end row.
    ragged = [test.sequence(0)[:1], test.sequence(1)[:9], test.sequence(2)[:5]]
    out = generate(model, 3, seeded(), prime=ragged, max_steps=9)
    for prefix, steps in zip(ragged, out):
        np.testing.assert_array_equal(steps[:len(prefix)], prefix)
    assert len(out[1]) == 10


def test_invalid_arguments_are_refused():
    model = small_model()
    with pytest.raises(ValueError, match="bias"):
        generate(model, 2, seeded(), bias=-1.0)
    with pytest.raises(ValueError, match="prime"):
        generate(model, 2, seeded(), prime=[np.zeros((3, 4))])
    with pytest.raises(ValueError, match="end-of-digit"):
        generate(model, 1, seeded(), prime=[np.array([[10, 8, 0, 0], [0, 0, 1, 1]])])


def ink(path) -> float:
    """Fraction of drawn (dark or coloured) pixels in a PNG."""
    image = imread(path)[..., :3]
    return float((image.mean(axis=-1) < 0.6).mean())


@pytest.mark.slow
def test_the_cli_draws_digits_from_a_real_checkpoint(full_data_dir, scorer, tmp_path, capsys):
    # The scorer fixture trained the digit scorer in the tools' data folder or found it there.
    assert scorer[1].data_dir == full_data_dir
    scorers = {path: path.stat().st_mtime_ns for path in (full_data_dir / "cache").glob("scorer-*.pt")}
    env = {**os.environ, "ISL_DATA_DIR": str(full_data_dir), "ISL_MNIST_DIR": str(MNIST_DIR)}
    trained = preloaded.run([sys.executable, "run.py", f"paths.runs_dir={tmp_path / 'runs'}",
                             "budget.points=6000", "data.num_train=300", "data.num_test=50"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    [checkpoint] = (tmp_path / "runs").rglob("last.ckpt")

    png = tmp_path / "primed.png"
    result = preloaded.run([sys.executable, "-m", "isl.tools.generate", str(checkpoint), "--n", "8",
                            "--out", str(png), "--prime", "15", "--seed", "1", "--cols", "4",
                            "--data-dir", str(full_data_dir), "--score"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    drawn, scored = result.stdout.splitlines()
    assert str(png) in drawn
    assert {path: path.stat().st_mtime_ns for path in (full_data_dir / "cache").glob("scorer-*.pt")} \
        == scorers                                                   # reused, not retrained
    scores = json.loads(scored)
    assert scores["n"] == 8 and 0 <= scores["accuracy"] <= 1 and 0 <= scores["recognised"] <= 1

    # Unprimed, in process; a baseline with nothing drawn but the frames and start dots.
    model = load_model(checkpoint)
    assert isinstance(model, SequenceMDN) and not model.training
    plain, blank = tmp_path / "plain.png", tmp_path / "blank.png"
    data = ["--data-dir", str(full_data_dir)]
    assert main([str(checkpoint), "--n", "8", "--out", str(plain), "--cols", "4", "--bias", "1", *data]) == 0
    record = json.loads((tmp_path / "plain.png.json").read_text())   # the grid's record
    assert record["command"] == f"python -m isl.tools.generate {checkpoint} --n 8 --out {plain} --cols 4 --bias 1 " \
        f"--data-dir {full_data_dir}" and record["points"] >= 6000
    assert main([str(checkpoint), "--n", "8", "--out", str(blank), "--cols", "4", "--max-steps", "1", *data]) == 0
    assert imread(png).shape == imread(blank).shape
    assert ink(png) > ink(blank) + 0.003  # ~500 pixels of strokes beyond frames and titles
    again = tmp_path / "again.png"
    main([str(checkpoint), "--n", "8", "--out", str(again), "--cols", "4", "--bias", "1", *data])
    assert np.array_equal(imread(plain), imread(again))  # same seed, same picture (starts too)
    capsys.readouterr()
    assert main([str(checkpoint), "--n", "8", "--out", str(again), "--max-steps", "1", "--score", *data]) == 0
    unprimed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert unprimed["n"] == 8 and "accuracy" not in unprimed  # unprimed digits have no label
    assert unprimed["reached_max_steps"] == 1.0 and unprimed["mean_rows"] == 2   # start + end row


def moves_model(seed: int = 0) -> SequenceMDN:
    """An untrained small LSTM with the moves head, in MNIST's range units."""
    torch.manual_seed(seed)
    model = SequenceMDN(hidden=32, layers=2, head="moves")
    model.set_units(torch.tensor([-17.0, -17.0]), torch.tensor([34.0, 34.0]))
    return model


def test_the_moves_head_generates_whole_pixel_rows_of_the_data_form():
    out = generate(moves_model(), 20, seeded(), max_steps=60)
    rows = np.concatenate([s[1:] for s in out])
    assert np.array_equal(rows, np.round(rows))                      # whole pixels, no rounding asked
    lift = rows[:, 2] == 1
    assert (rows[lift, :2] == 0).all() and (np.abs(rows[:, :2]) <= 27).all()
    assert all(tuple(s[-1]) == END_ROW for s in out)


def test_a_lower_temperature_draws_the_likelier_rows():
    """At T < 1 the drawn rows are those the model gives more probability: their mean log P
    (by the model itself, fed the rows drawn) rises as T falls, for either head."""
    for model in (moves_model(seed=1), small_model(seed=1)):
        mean_log_p = []
        for temperature in (1.5, 1.0, 0.3):
            out = generate(model, 40, seeded(2), max_steps=30, temperature=temperature)
            log_p = []
            for steps in out:
                x = torch.from_numpy(steps).clone()
                x[:, :2] = model.to_units(x[:, :2])
                prediction, _ = model(x[None])
                if model.hparams.head == "moves":
                    log_p.append(prediction.map(lambda t: t[0, :-1]).log_prob(x[1:]).mean().item())
                else:
                    log_p.append(-prediction.map(lambda t: t[:, :-1]).nll(x[None, 1:], torch.ones(1, len(x) - 1,
                                                                                             dtype=torch.bool)).item())
            mean_log_p.append(np.mean(log_p))
        assert mean_log_p[0] < mean_log_p[1] < mean_log_p[2], (model.hparams.head, mean_log_p)


def test_a_bias_is_refused_for_the_moves_head_and_a_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature below 1"):
        generate(moves_model(), 2, seeded(), bias=1.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        generate(moves_model(), 2, seeded(), temperature=0.0)


def test_a_class_conditional_start_is_drawn_from_training_digits_of_that_class(real_source):
    train = real_source.load("train")
    starts = train.steps[train.starts[:-1], :2]
    classes = np.arange(300) % 10
    drawn = training_starts(300, np.random.default_rng(0), real_source, classes)
    for digit in range(10):
        of_class = {tuple(p) for p in starts[train.labels == digit].tolist()}
        assert {tuple(p) for p in drawn[classes == digit].astype(int).tolist()} <= of_class
    ones, zeros = drawn[classes == 1], drawn[classes == 0]
    assert ones[:, 0].mean() > zeros[:, 0].mean() + 1   # a 1 starts further right than a 0


def test_saved_digits_read_back_in_the_published_format_with_and_without_labels(tmp_path):
    from isl.data.published import read_generated, write_generated
    from isl.tools.generate import on_whole_pixels
    out = generate(small_model(seed=3), 5, seeded(), max_steps=20)
    whole = [on_whole_pixels(s) for s in out]
    # Rounded points: each drawn point lands on the pixel it was drawn in.
    for s, w in zip(out, whole):
        assert np.array_equal(np.cumsum(w[:, :2], 0), np.rint(np.cumsum(s[:, :2].astype(np.float64), 0)))
    write_generated(whole, tmp_path / "plain")
    sequences, labels = read_generated(tmp_path / "plain")
    assert labels is None and len(sequences) == 5
    assert all(np.array_equal(a, b) for a, b in zip(sequences, whole))
    write_generated(whole, tmp_path / "asked", labels=[3, 1, 4, 1, 5])
    assert (tmp_path / "asked" / "testimg-4-inputdata.txt").is_file()
    assert read_generated(tmp_path / "asked")[1].tolist() == [3, 1, 4, 1, 5]
    with pytest.raises(ValueError, match="off the whole pixels"):
        write_generated(out, tmp_path / "floats")


def conditional_moves(dropout: float = 0.5, seed: int = 0) -> SequenceMDN:
    torch.manual_seed(seed)
    model = SequenceMDN(hidden=32, layers=2, head="moves", class_inputs=True, class_dropout=dropout)
    model.set_units(torch.tensor([-17.0, -17.0]), torch.tensor([34.0, 34.0]))
    return model


def test_class_dropout_feeds_no_class_to_that_fraction_of_training_sequences_only():
    model = conditional_moves(dropout=0.3)
    labels = torch.arange(10).repeat(400)
    model.train()
    fed = model.classes_for(labels)
    dropped = fed == NO_CLASS
    assert abs(dropped.float().mean().item() - 0.3) < 0.03 and torch.equal(fed[~dropped], labels[~dropped])
    model.eval()
    assert torch.equal(model.classes_for(labels), labels)               # evaluation sees every class
    # No class is an all-zero one-hot: the same prediction as a network fed zeros there.
    steps = torch.zeros(2, 3, 4)
    none, _ = model(steps, classes=torch.tensor([NO_CLASS, NO_CLASS]))
    zeros = torch.cat([steps, torch.zeros(2, 3, 10)], -1)
    direct = model.head(model.backbone(zeros)[0])
    assert torch.allclose(none.kind_logits, direct.kind_logits)
    with pytest.raises(ValueError, match="model.class_dropout must be a fraction"):
        SequenceMDN(hidden=8, class_dropout=0.2)                           # without class inputs


def test_guidance_moves_the_draw_away_from_the_unconditional_prediction():
    model = conditional_moves()
    cond = Moves(torch.tensor([2.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), torch.zeros(55), torch.zeros(55),
                 torch.zeros(10), model.head.offset_shift, model.head.offset_scale)
    free = cond.map(lambda t: t * 0.5)
    guided = cond.guide(free, 2.0)
    assert torch.allclose(guided.kind_logits[0], torch.tensor(2.0 + 2.0 * 1.0))   # 2 + w (2 - 1)
    with torch.no_grad():  # a class that matters: its input weights made large
        model.backbone.lstm.weight_ih_l0[:, 4:] *= 30
    out = generate(model, 10, seeded(), max_steps=20, classes=np.arange(10), guidance=1.5)
    assert len(out) == 10 and all(tuple(s[-1]) == END_ROW for s in out)
    unguided = generate(model, 10, seeded(), max_steps=20, classes=np.arange(10))
    assert any(len(a) != len(b) or not np.array_equal(a, b) for a, b in zip(out, unguided))
    with pytest.raises(ValueError, match="guidance must be > 0 and needs classes"):
        generate(model, 2, seeded(), classes=None, guidance=1.0)
