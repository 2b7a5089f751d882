"""Transfer from prediction to classification: start a classifier from a trained predictor."""

from __future__ import annotations

import csv
import os
import shutil
import sys

import lightning as L
import pytest
import torch

from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN
from isl.tools.transfer import predictor_checkpoint
import preloaded
from conftest import MNIST_DIR, REPO, needs_mnist


def fit(model, source, steps, callbacks=(), ckpt_path=None):
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        callbacks=list(callbacks))
    trainer.fit(model, datamodule=StrokeDataModule(source, num_train=300, num_test=50), ckpt_path=ckpt_path)
    return trainer


def test_a_classifier_started_from_a_predictor_keeps_its_weights(real_source, tmp_path):
    predictor = SequenceMDN(hidden=16)
    trainer = fit(predictor, real_source, steps=3)
    path = tmp_path / "predictor.ckpt"
    trainer.save_checkpoint(path)
    classifier = SequenceMDN(hidden=16, prediction_weight=0.0, class_loss_weight=1.0, init_from=str(path))
    assert not torch.equal(classifier.head.linear.weight, predictor.head.linear.weight)
    at_start = {}
    watch = L.Callback()
    watch.on_train_start = lambda trainer, module: at_start.update(
        {k: v.clone() for k, v in module.state_dict().items()})
    fit(classifier, real_source, steps=3, callbacks=[watch])  # Lightning loads it...
    for key, value in predictor.state_dict().items():
        assert torch.equal(at_start[key], value), key
    assert not torch.equal(classifier.head.linear.weight, at_start["head.linear.weight"])  # ...then trains


def test_a_resumed_classifier_takes_its_weights_from_its_checkpoint_alone(real_source, tmp_path):
    """The predictor it started from may have moved or gone since: only the first start reads it."""
    predictor_path = tmp_path / "predictor.ckpt"
    fit(SequenceMDN(hidden=16), real_source, steps=2).save_checkpoint(predictor_path)
    classifier = SequenceMDN(hidden=16, prediction_weight=0.0, class_loss_weight=1.0,
                             init_from=str(predictor_path))
    fit(classifier, real_source, steps=3).save_checkpoint(tmp_path / "classifier.ckpt")
    predictor_path.unlink()
    saved = torch.load(tmp_path / "classifier.ckpt", weights_only=True)["state_dict"]
    at_start = {}
    watch = L.Callback()
    watch.on_train_start = lambda trainer, module: at_start.update(
        {k: v.clone() for k, v in module.state_dict().items()})
    resumed = SequenceMDN(hidden=16, prediction_weight=0.0, class_loss_weight=1.0,
                          init_from=str(predictor_path))
    fit(resumed, real_source, steps=5, callbacks=[watch], ckpt_path=tmp_path / "classifier.ckpt")
    assert resumed.global_step == 5
    for key, value in saved.items():
        assert torch.equal(at_start[key], value), key


def test_a_checkpoint_of_another_shape_or_none_at_all_is_refused_clearly(real_source, tmp_path):
    trainer = fit(SequenceMDN(hidden=16), real_source, steps=1)
    trainer.save_checkpoint(tmp_path / "small.ckpt")
    with pytest.raises(ValueError, match=r"model.init_from: .*small.ckpt is a different network: backbone"):
        SequenceMDN(hidden=32).load_pretrained(str(tmp_path / "small.ckpt"))
    with pytest.raises(FileNotFoundError, match="model.init_from: no checkpoint at"):
        fit(SequenceMDN(init_from=str(tmp_path / "missing.ckpt")), real_source, steps=1)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        SequenceMDN().load_pretrained(str(tmp_path / "junk.ckpt"))


def test_a_predictor_trained_on_inputs_in_other_units_is_refused(real_source, tmp_path):
    predictor = SequenceMDN(hidden=16)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(predictor, datamodule=StrokeDataModule(real_source, num_train=300, num_test=50,
                                                       scaling="std"))
    trainer.save_checkpoint(tmp_path / "std.ckpt")
    classifier = SequenceMDN(hidden=16, prediction_weight=0.0, class_loss_weight=1.0,
                             init_from=str(tmp_path / "std.ckpt"))
    with pytest.raises(ValueError, match=r"std.ckpt was trained on offsets in other input units .*"
                                         r"data.scaling"):
        fit(classifier, real_source, steps=1)               # this run's data: range scaling


def test_nothing_to_learn_is_refused():
    with pytest.raises(ValueError, match="prediction_weight and model.class_loss_weight"):
        SequenceMDN(prediction_weight=0.0, class_loss_weight=0.0)


def test_scratch_needs_no_sweep_and_a_missing_source_job_is_named(tmp_path):
    assert predictor_checkpoint(None, "scratch", 1, "lstm") is None
    with pytest.raises(ValueError, match="needs transfer.sweep"):
        predictor_checkpoint(None, "length", 1, "lstm")
    with pytest.raises(ValueError, match="curriculum=length and seed=1, found none"):
        predictor_checkpoint(str(tmp_path), "length", 1, "lstm")


def test_a_source_job_without_weights_is_named_with_what_to_do(tmp_path):
    # a job as isl.tools.records keeps it (experiment 1's records: result.json, metrics, no checkpoints)
    record = next((REPO / "results" / "exp1-strat-10M").glob("3-*curriculum=length,seed=1"))
    shutil.copytree(record, tmp_path / record.name)
    with pytest.raises(ValueError, match=f"job {record.name} has no checkpoints/last.ckpt .*train it again"):
        predictor_checkpoint(str(tmp_path), "length", 1, "lstm")


@pytest.mark.slow
@needs_mnist
def test_transfer_sweep_from_scratch_and_from_predictors_end_to_end(tmp_path):
    env = {**os.environ, "ISL_MNIST_DIR": str(MNIST_DIR)}
    tiny = ["budget.points=3000", "budget.eval_every=1500", "data.num_train=300", "data.num_test=100",
            "trainer.log_every_n_steps=5", f"paths.runs_dir={tmp_path}"]
    preloaded.run([sys.executable, "run.py", "-m", "curriculum=regular,length", "seed=1", *tiny],
                  cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    (predictors,) = (tmp_path / "multirun").glob("*")
    result = preloaded.run([sys.executable, "run.py", "-m", "experiment=transfer", "logger=csv",
                            f"transfer.sweep={predictors}", "transfer.source=scratch,regular,length",
                            "seed=1", *tiny], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("to classify, starting from") == 2           # scratch has no start
    sweeps = sorted((tmp_path / "multirun").glob("*"))
    transfer = next(s for s in sweeps if s != predictors)
    jobs = [d for d in transfer.iterdir() if (d / "metrics.csv").is_file()]
    assert len(jobs) == 3
    for job in jobs:
        rows = [r for r in csv.DictReader((job / "metrics.csv").open()) if r["test/accuracy"]]
        assert len(rows) >= 2 and float(rows[-1]["points"]) >= 3000
    report = preloaded.run([sys.executable, "-m", "isl.tools.report", str(transfer)], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    summary = (transfer / "report" / "summary.md").read_text()
    assert all(f"| from {s} |" in summary for s in ("scratch", "regular", "length"))
    assert (transfer / "report" / "accuracy.png").is_file()
