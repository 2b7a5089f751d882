"""Copies of the weights kept along training (checkpoint.keep_per_decade): where, what they hold,
and that a resumed run keeps the same copies as one that ran through."""

from __future__ import annotations

import shutil

import lightning as L
import pytest
import torch

from isl.training.callbacks import PointsSchedule
from isl.training.schedule import evaluation_points
from isl.training.checkpoints import LAST, PREV, AtomicCheckpointIO, PointsCheckpoint
from isl.curricula.regular import Regular
from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN, load_model
from isl.training.train import kept_points

KEEP = [300, 700, 1500, 3000]


def test_copies_are_kept_at_the_evaluations_log_spaced_points():
    kept = kept_points(20_000_000, 4)
    assert kept[0] == 20_000 and kept[-1] == 20_000_000 and len(kept) == 13
    assert set(kept) <= set(evaluation_points(20_000_000, 2_000_000, 4))
    assert kept_points(20_000_000, 0) == []                            # the default: none
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="checkpoint.keep_per_decade must be an integer >= 0"):
            kept_points(1000, bad)


def run(source, folder, budget: int, resume: bool = False) -> None:
    """A small LSTM trained to ``budget`` points in ``folder`` (its checkpoints/), keeping KEEP;
    ``resume``: from the folder's last.ckpt, as run.py resumes a killed run."""
    L.seed_everything(1, verbose=False)
    dm = StrokeDataModule(source, num_train=200, num_test=20, batching={"by": "sequences", "size": 8}, seed=1)
    checkpoints = PointsCheckpoint(10**9, folder / "checkpoints", keep_at=KEEP)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, max_epochs=-1, enable_checkpointing=False, plugins=[AtomicCheckpointIO()],
                        callbacks=[Regular(), PointsSchedule(budget, budget), checkpoints])
    trainer.fit(SequenceMDN(hidden=16, components=3), datamodule=dm,
                ckpt_path=folder / "checkpoints" / LAST if resume else None, weights_only=True)


def kept(folder) -> dict[int, dict]:
    return {int(p.stem.split("-")[1]): torch.load(p, weights_only=True)
            for p in sorted((folder / "checkpoints").glob("points-*.ckpt"))}


def test_copies_hold_the_weights_at_each_point_and_a_resumed_run_keeps_the_same(real_source, tmp_path):
    run(real_source, tmp_path / "through", 3000)
    through = kept(tmp_path / "through")
    points = sorted(through)
    assert len(points) == len(KEEP)                                    # one copy per point...
    assert all(k <= p < k + 500 for k, p in zip(KEEP, points))         # ...at the first batch past it
    for p, copy in through.items():
        assert copy["points_processed"] == p and "optimizer_states" not in copy and "callbacks" not in copy
    first, last = through[points[0]]["state_dict"], through[points[-1]]["state_dict"]
    assert not torch.equal(first["head.linear.weight"], last["head.linear.weight"])
    model = load_model(tmp_path / "through" / "checkpoints" / f"points-{points[0]:010d}.ckpt")
    assert torch.equal(model.head.linear.weight, first["head.linear.weight"])

    run(real_source, tmp_path / "resumed", 1000)                      # stopped after 1,000 points...
    assert sorted(kept(tmp_path / "resumed")) == points[:2]
    # (A checkpoint from before copies were kept resumes keeping those still ahead only.)
    shutil.copytree(tmp_path / "resumed", tmp_path / "old")
    old = torch.load(tmp_path / "old" / "checkpoints" / LAST, weights_only=True)
    [state] = [v for k, v in old["callbacks"].items() if "PointsCheckpoint" in k]
    del state["kept_through"]
    torch.save(old, tmp_path / "old" / "checkpoints" / LAST)
    for copy in (tmp_path / "old" / "checkpoints").glob("points-*.ckpt"):
        copy.unlink()
    run(real_source, tmp_path / "old", 3000, resume=True)
    assert sorted(kept(tmp_path / "old")) == points[2:]
    run(real_source, tmp_path / "resumed", 3000, resume=True)          # ...and resumed to the end
    resumed = kept(tmp_path / "resumed")
    assert sorted(resumed) == points
    for p in points:
        for key, value in through[p]["state_dict"].items():
            assert torch.equal(resumed[p]["state_dict"][key], value), (p, key)



def test_a_new_last_checkpoint_keeps_the_one_it_replaces(real_source, tmp_path):
    run(real_source, tmp_path, 1000)
    first = torch.load(tmp_path / "checkpoints" / LAST, weights_only=True)
    assert not (tmp_path / "checkpoints" / PREV).exists()
    run(real_source, tmp_path, 3000, resume=True)
    last, prev = (torch.load(tmp_path / "checkpoints" / name, weights_only=True) for name in (LAST, PREV))
    assert 1000 <= prev["points_processed"] == first["points_processed"] < 3000 <= last["points_processed"]
    assert all(torch.equal(prev["state_dict"][k], v) for k, v in first["state_dict"].items())
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [LAST, PREV] + [f"points-{p:010d}.ckpt" for p in sorted(kept(tmp_path))]  # nothing staged left
