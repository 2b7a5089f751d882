"""The visual analyses: class belief, predicted densities, their snapshots during training, and
the ``python -m isl.tools.analyze`` command, on a small LSTM briefly trained on real sequences."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

import isl.viz  # noqa: F401  (Agg)
from isl.tools import analyze
from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN
from isl.viz.belief import class_probabilities, plot_class_belief, predict
from isl.viz.density import density_map, grid_axis, plot_density
from isl.viz.snapshots import GIF_NAME, DensitySnapshots

# In range units (the default) the densities take ~100 batches to sharpen; a batch of 50
# sequences holds ~2,000 points, so a snapshot comes every ~50 batches.
BATCHES, EVERY = 150, 100_000


def ink(image: Image.Image) -> float:
    """Fraction of pixels that are not (near) white."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    return float((rgb < 235).any(axis=-1).mean())


@pytest.fixture(scope="module")
def trained(real_source, tmp_path_factory):
    """(model, datamodule, snapshot callback, run dir, checkpoint): a 16-unit LSTM after
    BATCHES batches of 50 real sequences, with DensitySnapshots every EVERY points."""
    L.seed_everything(0, verbose=False)
    run_dir = tmp_path_factory.mktemp("run")
    dm = StrokeDataModule(real_source, num_train=2000, num_test=50,
                          batching={"by": "sequences", "size": 50}, seed=0)
    model = SequenceMDN(hidden=16, layers=1, components=5, class_loss_weight=1.0, lr=0.01)
    snapshots = DensitySnapshots(every_points=EVERY, digits=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=BATCHES, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, default_root_dir=run_dir, callbacks=[snapshots])
    trainer.fit(model, datamodule=dm)
    checkpoint = run_dir / "model.ckpt"
    trainer.save_checkpoint(checkpoint)
    model.eval()
    return model, dm, snapshots, run_dir, checkpoint


def test_class_probabilities_sum_to_one_at_every_step(trained):
    model, dm, *_ = trained
    steps = dm.test.sequence(0)
    probs = class_probabilities(model, steps)
    assert probs.shape == (len(steps), 10)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    # the belief is the network's own: the same logits as a batch through the model
    batch = dm.collate([0], dm.test)
    with torch.no_grad():
        logits = model(batch.steps)[0].class_logits[0]
    np.testing.assert_allclose(probs, torch.softmax(logits, -1).numpy(), atol=1e-5)


def test_class_belief_figure_is_drawn(trained, tmp_path):
    model, dm, *_ = trained
    path = plot_class_belief(model, dm.test.sequence(1), int(dm.test.labels[1]), tmp_path / "b" / "belief.png")
    assert path.is_file()
    with Image.open(path) as image:
        assert image.width > 400 and image.height > 300
        assert ink(image) > 0.04


def test_density_of_one_step_is_the_mixture_at_the_true_next_point(trained):
    """A 2-row sequence has one prediction: the map at the second point is its density there,
    per square pixel (the offset converted to input units, the density divided by the scales)."""
    model, dm, *_ = trained
    steps = dm.test.sequence(0)[:2]
    density = density_map(model, steps, resolution=0.25)
    axis = grid_axis(0.25)
    assert density.shape == (len(axis), len(axis))
    x, y = steps[:, :2].astype(int).sum(axis=0)  # absolute position of the second point
    mixture = predict(model, steps).map(lambda t: t[0])
    assert model.offset_shift.abs().sum() > 0                    # range scaling: shift and scale
    offset = (torch.tensor(steps[1, :2], dtype=torch.float32) - model.offset_shift) / model.offset_scale
    expected = mixture.log_density(offset).exp().item() / model.offset_scale.prod().item()
    assert density[4 * y, 4 * x] == pytest.approx(expected, rel=1e-4)


def test_density_map_concentrates_on_the_digit(trained):
    model, dm, *_ = trained
    for i in range(3):
        steps = dm.test.sequence(i)
        density = density_map(model, steps)
        # nearly all the predicted mass of the T - 1 next points lies on the canvas
        mass = density.sum() * 0.25 ** 2
        assert 0.7 * (len(steps) - 1) < mass < 1.5 * (len(steps) - 1)
        points = dm.test.points(i)
        at_digit = density[4 * points[:, 1], 4 * points[:, 0]].mean()
        # untrained ~1, ~3 after 40 batches, 6 to 15 after 150 (the order of sequences within a
        # batch moves it within that range); with the shift ignored ~1 or less
        assert at_digit > 4 * density.mean(), (i, at_digit, density.mean())


def test_density_figure_is_drawn(trained, tmp_path):
    model, dm, *_ = trained
    path = plot_density(model, dm.test.sequence(2), tmp_path / "density.png", title="a test digit")
    with Image.open(path) as image:
        assert ink(image) > 0.08


def test_snapshots_write_a_gif_every_so_many_points(trained):
    model, _, snapshots, run_dir, _ = trained
    path = run_dir / GIF_NAME  # out_dir=None: the trainer's default_root_dir
    assert snapshots.path == path and path.is_file()
    frames = 1 + model.points_processed // EVERY  # before training, then every EVERY points
    points = [f[0] for f in snapshots.frames]
    assert len(points) == frames and points[0] == 0
    for k, p in enumerate(points[1:], start=1):                # at the batch that passes k * EVERY
        assert 0 <= p - k * EVERY < 4000, points
    with Image.open(path) as gif:
        assert gif.n_frames == frames
        gif.seek(frames - 1)
        assert ink(gif) > 0.05
    # the densities do change as the network learns
    first, last = snapshots.frames[0][1][0], snapshots.frames[-1][1][0]
    assert not np.allclose(first, last)


def test_snapshots_check_their_arguments():
    with pytest.raises(ValueError, match="viz.density_every must be a positive integer"):
        DensitySnapshots(0)
    with pytest.raises(ValueError, match="viz.density_digits"):
        DensitySnapshots(5, digits=0)


def test_analyze_writes_the_figures(trained, tmp_path, monkeypatch, real_source, capsys):
    *_, checkpoint = trained
    seen = {}

    def source(**kwargs):
        seen.update(kwargs)
        return real_source

    monkeypatch.setattr("isl.data.sources.MnistSource", source)
    monkeypatch.setenv("ISL_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "figures"
    assert analyze.main([str(checkpoint), "--out", str(out), "--digits", "0,3"]) == 0
    assert seen["data_dir"] == str(tmp_path / "data")
    for name in ("class-belief-0.png", "class-belief-3.png", "density-0.png", "density-3.png"):
        with Image.open(out / name) as image:
            assert ink(image) > 0.04, name
        record = json.loads((out / f"{name}.json").read_text())     # what it was drawn from
        assert record["command"].startswith("python -m isl.tools.analyze ") and "--digits 0,3" in record["command"]
        assert record["checkpoint"] == str(checkpoint.resolve())
        assert record["points"] == torch.load(checkpoint, weights_only=True)["points_processed"] > 0
    assert "digit 3" in capsys.readouterr().out


@pytest.mark.parametrize("untrained, drawn, missing", [
    ("prediction_weight", "class-belief-3.png", "density-3.png"),   # a transfer classifier
    ("class_loss_weight", "density-3.png", "class-belief-3.png"),   # a predictor
])
def test_analyze_draws_only_what_the_checkpoint_was_trained_on(trained, tmp_path, monkeypatch, real_source,
                                                               capsys, untrained, drawn, missing):
    *_, checkpoint = trained
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state["hyper_parameters"][untrained] = 0.0
    torch.save(state, tmp_path / "one-head.ckpt")
    monkeypatch.setattr("isl.data.sources.MnistSource", lambda **kwargs: real_source)
    monkeypatch.setenv("ISL_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "figures"
    assert analyze.main([str(tmp_path / "one-head.ckpt"), "--out", str(out), "--digits", "3"]) == 0
    assert (out / drawn).is_file() and not (out / missing).exists()
    assert f"model.{untrained}=0" in capsys.readouterr().err


def test_analyze_rejects_bad_digits(tmp_path):
    with pytest.raises(SystemExit):
        analyze.main([str(tmp_path / "x.ckpt"), "--out", str(tmp_path), "--digits", "1,12"])
    assert analyze.main([str(tmp_path / "missing.ckpt"), "--out", str(tmp_path)]) == 2


def test_analyze_along_training_draws_one_frame_per_kept_copy(trained, tmp_path, monkeypatch, real_source,
                                                               capsys):
    model, *_, checkpoint = trained
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    job = tmp_path / "job"
    (job / "checkpoints").mkdir(parents=True)
    untrained = SequenceMDN(**state["hyper_parameters"])
    torch.save({**state, "state_dict": untrained.state_dict()}, job / "checkpoints" / "points-0000000000.ckpt")
    torch.save(state, job / "checkpoints" / "points-0000300000.ckpt")
    torch.save(state, job / "checkpoints" / "last.ckpt")
    monkeypatch.setattr("isl.data.sources.MnistSource", lambda **kwargs: real_source)
    monkeypatch.setenv("ISL_DATA_DIR", str(tmp_path / "data"))
    assert analyze.main([str(job / "checkpoints" / "last.ckpt"), "--digits", "0,3", "--along"]) == 0
    gif = job / "figures" / "density-along-training.gif"
    assert "2 copies from 0 to 300,000 points" in capsys.readouterr().out
    with Image.open(gif) as frames:
        assert frames.n_frames == 2
        first = np.asarray(frames.convert("RGB"), dtype=np.int16)
        frames.seek(1)
        last = np.asarray(frames.convert("RGB"), dtype=np.int16)
    assert np.abs(first - last).max() > 50            # untrained vs trained densities differ
    # A run that kept no copies is refused, naming the key that keeps them.
    alone = tmp_path / "alone" / "checkpoints"
    alone.mkdir(parents=True)
    torch.save(state, alone / "last.ckpt")
    assert analyze.main([str(alone / "last.ckpt"), "--digits", "3", "--along"]) == 2
    assert "checkpoint.keep_per_decade" in capsys.readouterr().err
