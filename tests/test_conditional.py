"""Class-conditional models (model.class_inputs): the class one-hot beside every row in training,
evaluation and generation, digits drawn on request, and every tool refusing a checkpoint whose
inputs are not the ones it feeds."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import MNIST_DIR
from isl.tools import analyze
from isl.data.datamodule import StrokeDataModule
from isl.tools.generate import asked_classes, generate, main
from isl.models.module import SequenceMDN, load_model
from isl.viz.belief import class_probabilities
from isl.viz.density import density_map


def trainer(steps: int) -> L.Trainer:
    return L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)


def datamodule(source) -> StrokeDataModule:
    return StrokeDataModule(source, num_train=300, num_test=50, batching={"by": "sequences", "size": 16})


@pytest.fixture(scope="module")
def checkpoints(real_source, tmp_path_factory):
    """(class-conditional, plain) checkpoints of small LSTMs trained for a few batches."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = []
    for class_inputs in (True, False):
        torch.manual_seed(0)
        fit = trainer(4)
        fit.fit(SequenceMDN(hidden=32, components=5, class_inputs=class_inputs), datamodule=datamodule(real_source))
        paths.append(folder / f"class_inputs-{class_inputs}.ckpt")
        fit.save_checkpoint(paths[-1])
    return tuple(paths)


# --- the model ------------------------------------------------------------------------------
@pytest.mark.parametrize("network", ["lstm", "ffnn"])
def test_the_class_is_fed_one_hot_beside_every_row_and_changes_every_prediction(network):
    torch.manual_seed(0)
    net = SequenceMDN(network=network, hidden=16, components=3, class_inputs=True).eval()
    steps = torch.rand(3, 7, 4)
    with torch.no_grad():
        zeros, _ = net(steps, classes=torch.tensor([0, 0, 0]))
        sevens, _ = net(steps, classes=torch.tensor([7, 7, 7]))
        one_hot = F.one_hot(torch.tensor([7, 7, 7]), 10)[:, None].expand(3, 7, 10).float()
        by_hand, _ = net.backbone(torch.cat([steps, one_hot], dim=-1))
    torch.testing.assert_close(sevens.mu, net.head(by_hand).mu)
    for field in ("mu", "log_pi", "eos_logit", "class_logits"):   # at every step, from the first
        differs = (getattr(zeros, field) - getattr(sevens, field)).abs().reshape(3, 7, -1).amax(-1)
        assert (differs > 1e-6).all(), field
    with pytest.raises(ValueError, match="model.class_inputs=true: it needs the class"):
        net(steps)
    with pytest.raises(ValueError, match="model.class_inputs=false: it reads no classes"):
        SequenceMDN(network=network, hidden=16)(steps, classes=torch.tensor([1, 2, 3]))


def test_the_default_model_is_unchanged_and_bad_settings_are_named():
    assert SequenceMDN(hidden=16).backbone.lstm.input_size == 4
    assert SequenceMDN(hidden=16, class_inputs=True).backbone.lstm.input_size == 14
    assert SequenceMDN(network="ffnn", hidden=16, class_inputs=True).backbone.net[0].in_features == 14
    with pytest.raises(ValueError, match="model.class_inputs must be true or false, got 'yes'"):
        SequenceMDN(class_inputs="yes")
    with pytest.raises(ValueError, match="model.class_inputs=true with model.class_loss_weight"):
        SequenceMDN(class_inputs=True, prediction_weight=0.0, class_loss_weight=1.0)


def test_training_and_evaluation_feed_each_batchs_own_labels(real_source):
    torch.manual_seed(0)
    net = SequenceMDN(hidden=16, components=3, class_inputs=True)
    fed, labels = [], []
    net.backbone.register_forward_hook(lambda module, inputs, output: fed.append(inputs[0].detach()))
    watch = L.Callback()
    watch.on_train_batch_start = lambda trainer, module, batch, i: labels.append(batch.labels.clone())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    dm = datamodule(real_source)
    fit = trainer(3)
    fit.callbacks.append(watch)
    fit.fit(net, datamodule=dm)
    assert len(fed) == len(labels) == 3 and len(set(torch.cat(labels).tolist())) > 3
    for inputs, batch_labels in zip(fed, labels):
        assert inputs.shape[-1] == 14
        expected = F.one_hot(batch_labels, 10).float()[:, None].expand(-1, inputs.shape[1], -1)
        assert torch.equal(inputs[..., 4:], expected)
    assert not torch.equal(before["backbone.lstm.weight_ih_l0"], net.backbone.lstm.weight_ih_l0)
    fed.clear()
    metrics = net.evaluate(dm.test_dataloader())
    test_labels = torch.cat([b.labels for b in dm.test_dataloader()])
    assert torch.equal(torch.cat([inputs[:, 0, 4:] for inputs in fed]).argmax(-1), test_labels)
    assert np.isfinite(metrics["test/bits_per_point"])


# --- refusing a checkpoint whose inputs differ ----------------------------------------------
def test_init_from_refuses_a_checkpoint_trained_with_other_class_inputs(checkpoints, real_source, tmp_path):
    conditional, plain = checkpoints
    with pytest.raises(ValueError, match=r"model.init_from: .*class_inputs-False.ckpt was trained with "
                                         r"model.class_inputs=false, this run has model.class_inputs=true"):
        SequenceMDN(hidden=32, components=5, class_inputs=True).load_pretrained(str(plain))
    classifier = SequenceMDN(hidden=32, components=5, prediction_weight=0.0, class_loss_weight=1.0,
                             init_from=str(conditional))
    with pytest.raises(ValueError, match=r"class_inputs-True.ckpt was trained with model.class_inputs=true, "
                                         r"this run has model.class_inputs=false"):
        trainer(1).fit(classifier, datamodule=datamodule(real_source))
    # A checkpoint saved before the key existed is a plain network's, and still loads.
    old = torch.load(plain, weights_only=True)
    del old["hyper_parameters"]["class_inputs"]
    torch.save(old, tmp_path / "old.ckpt")
    SequenceMDN(hidden=32, components=5).load_pretrained(str(tmp_path / "old.ckpt"))
    assert load_model(tmp_path / "old.ckpt").hparams.class_inputs is False


def test_the_analyses_refuse_a_class_conditional_checkpoint(checkpoints, tmp_path, capsys):
    conditional, _ = checkpoints
    assert analyze.main([str(conditional), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "isl.tools.analyze (the class belief) needs a model with model.class_inputs=false" in err
    assert "has model.class_inputs=true" in err and str(conditional) in err
    assert not list(tmp_path.iterdir())
    model, steps = load_model(conditional), np.array([[10, 8, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]])
    with pytest.raises(ValueError, match="class belief needs a model with model.class_inputs=false"):
        class_probabilities(model, steps)
    with pytest.raises(ValueError, match="model.class_inputs=true: it needs the class"):
        density_map(model, steps, resolution=1.0)
    assert not np.allclose(density_map(model, steps, 1.0, label=1), density_map(model, steps, 1.0, label=8))


# --- generation -----------------------------------------------------------------------------
def test_generation_draws_the_classes_asked_for_and_refuses_a_mismatch(checkpoints):
    conditional, plain = (load_model(p) for p in checkpoints)
    drawn = {c: generate(conditional, 4, torch.Generator().manual_seed(1), max_steps=20, classes=[c] * 4)
             for c in (1, 8)}
    assert not all(a.shape == b.shape and np.allclose(a, b) for a, b in zip(drawn[1], drawn[8]))
    with pytest.raises(ValueError, match="generating without classes needs a model with "
                                         "model.class_inputs=false; this model has model.class_inputs=true"):
        generate(conditional, 2)
    with pytest.raises(ValueError, match="generating with classes needs a model with model.class_inputs=true"):
        generate(plain, 2, classes=[3, 3])
    for bad in ([3], [3, 10], [[3], [3]]):
        with pytest.raises(ValueError, match="classes must be 2 digits 0-9"):
            generate(conditional, 2, classes=bad)


def test_the_classes_asked_for(checkpoints):
    conditional, plain = (load_model(p) for p in checkpoints)
    assert asked_classes(plain, 5) is None and asked_classes(plain, 5, 3) is None
    assert asked_classes(conditional, 4, 3).tolist() == [3, 3, 3, 3]
    assert asked_classes(conditional, 12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]   # in turn
    assert asked_classes(conditional, 3, labels=np.array([7, 2, 2])).tolist() == [7, 2, 2]  # primed


def test_the_cli_draws_the_digit_asked_for_and_scores_it(checkpoints, small_scorer, tmp_path, capsys):
    conditional, plain = checkpoints
    data = ["--data-dir", str(small_scorer.data_dir), "--mnist-dir", str(MNIST_DIR), "--max-steps", "30"]
    png = tmp_path / "threes.png"
    assert main([str(conditional), "--digit", "3", "--n", "16", "--score", "--out", str(png), *data]) == 0
    drawn, scored = capsys.readouterr().out.splitlines()
    assert str(png) in drawn and png.stat().st_size > 0
    scores = json.loads(scored)
    assert scores["n"] == 16 and 0 <= scores["recognised"] <= 1 and 0 <= scores["class_accuracy"] <= 1
    assert scores["class_accuracy"] == round(scores["class_counts"]["3"] / 16, 4)
    assert "class_accuracy_by_class" not in scores and "accuracy" not in scores

    assert main([str(conditional), "--n", "20", "--score", "--out", str(tmp_path / "all.png"), *data]) == 0
    scores = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(scores["class_accuracy_by_class"]) == {str(d) for d in range(10)}   # 0-9 in turn
    assert main([str(conditional), "--prime", "5", "--n", "8", "--score", "--out", str(tmp_path / "p.png"),
                 *data]) == 0
    scores = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert scores["class_accuracy"] == scores["accuracy"]                 # asked for the real labels

    with pytest.raises(SystemExit) as refused:
        main([str(plain), "--digit", "3", "--out", str(tmp_path / "no.png"), *data])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "--digit needs a model with model.class_inputs=true" in err
    assert f"{plain} has model.class_inputs=false" in err
    with pytest.raises(SystemExit):
        main([str(conditional), "--digit", "3", "--prime", "4", "--out", str(tmp_path / "no.png"), *data])
    assert "--digit and --prime exclude each other" in capsys.readouterr().err
    assert not (tmp_path / "no.png").exists()
