"""Run directories made by an earlier isl resume under today's: keys added since are in
``isl.training.rundir.ADDED`` with the value that computes what isl computed before them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml

from isl.training import rundir
from isl.tools.baselines import compose
from isl.training.checkpoints import LAST, PREV, AtomicCheckpointIO
from isl.models.module import SequenceMDN
from isl.training.rundir import ADDED, _flat, prepare, results_config

SAVED = yaml.safe_load((Path(__file__).parent / "data" / "run-configs-2026-12-02.yaml").read_text())


@pytest.mark.parametrize("overrides", sorted(SAVED))
def test_every_key_added_since_is_registered_with_its_default(overrides):
    old, now = _flat(SAVED[overrides]), _flat(results_config(compose(overrides.split() if overrides != "default" else [])))
    new = {k: now[k] for k in set(now) - set(old)}
    unregistered = {k: v for k, v in new.items() if k not in ADDED or ADDED[k] != v}
    assert not unregistered, (f"keys added since 2026-12-02 without an isl.training.rundir.ADDED entry holding their "
                              f"default (runs made before them would be refused): {unregistered}")


def test_a_run_without_an_added_key_resumes_only_at_the_old_value(tmp_path, monkeypatch):
    before = {"model": {"hidden": 8}}
    prepare(tmp_path, before, budget=10)  # writes run-config.yaml as an older isl would
    rundir.finish(tmp_path, {"points": 10, "summary": "done"})
    monkeypatch.setitem(rundir.ADDED, "model.warmup", 0)
    assert prepare(tmp_path, {"model": {"hidden": 8, "warmup": 0}}, budget=10).finished  # the old value
    with pytest.raises(ValueError, match=r"model.warmup: '\(unset\)' -> 100"):
        prepare(tmp_path, {"model": {"hidden": 8, "warmup": 100}}, budget=10)
    with pytest.raises(ValueError, match=r"model.depth: '\(unset\)' -> 1"):  # not registered
        prepare(tmp_path, {"model": {"hidden": 8, "depth": 1}}, budget=10)


def saved_twice(run_dir: Path) -> Path:
    """``run_dir``'s checkpoints after two saves (a small LSTM's state at 8 and 16 steps), as a
    run writes them: checkpoints/last.ckpt and the one before it, last.prev.ckpt."""
    prepare(run_dir, {"model": {"hidden": 16}}, budget=10**6)
    state = SequenceMDN(hidden=16, components=3).state_dict()
    for step in (8, 16):
        AtomicCheckpointIO().save_checkpoint({"global_step": step, "points_processed": 100 * step,
                                              "state_dict": state}, run_dir / "checkpoints" / LAST)
    return run_dir / "checkpoints"


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated", b"\x80\x04K\x01."],
                         ids=["empty", "truncated", "foreign pickle"])
def test_an_unreadable_last_checkpoint_resumes_from_the_one_before(tmp_path, caplog, damage):
    checkpoints = saved_twice(tmp_path)
    assert prepare(tmp_path, {"model": {"hidden": 16}}, budget=10**6).points == 1600
    (checkpoints / LAST).write_bytes(damage)
    with caplog.at_level(logging.WARNING):
        start = prepare(tmp_path, {"model": {"hidden": 16}}, budget=10**6)
    assert (start.checkpoint, start.step, start.points) == (checkpoints / PREV, 8, 800)
    assert f"{checkpoints / LAST} is not a readable checkpoint" in caplog.text
    # Moved aside: the next save keeps a good one as last.prev.ckpt, not this.
    assert not (checkpoints / LAST).exists() and (checkpoints / f"{LAST}.unreadable").read_bytes() == damage


def test_no_readable_checkpoint_is_one_line_naming_each_file_and_what_to_do(tmp_path):
    checkpoints = saved_twice(tmp_path)
    (checkpoints / PREV).unlink()
    (checkpoints / LAST).write_bytes(b"")
    with pytest.raises(ValueError) as err:
        prepare(tmp_path, {"model": {"hidden": 16}}, budget=10**6)
    assert str(err.value) == (f"cannot resume from {checkpoints / LAST} (an empty file): delete it to start the "
                              f"run over (there is no earlier save, {PREV}, to resume from)")
    torch.save({"global_step": 8}, checkpoints / PREV, pickle_protocol=4)
    (checkpoints / PREV).write_bytes((checkpoints / PREV).read_bytes()[:100])
    with pytest.raises(ValueError) as err:
        prepare(tmp_path, {"model": {"hidden": 16}}, budget=10**6)
    message = str(err.value)
    assert message.startswith(f"cannot resume from {checkpoints / LAST} (an empty file) nor from {checkpoints / PREV} "
                              "(damaged or not a checkpoint: torch.load fails with")
    assert message.endswith("delete them to start the run over") and "\n" not in message
    assert "weights_only" not in message and "file an issue" not in message


def test_a_job_is_named_by_what_differs_between_the_sweeps_jobs_or_by_its_old_name(tmp_path):
    """The overrides a sweep shares name its directory once; its jobs are named by the rest: the
    command line's sweeps and the experiment's swept keys the command line does not fix. A job
    directory under the old name (every override) is kept, so that sweeps started before resume."""
    from omegaconf import OmegaConf
    from isl.training.config import job_name
    OmegaConf.save({"hydra": {"overrides": {"task": ["experiment=heads", "model.head=moves", "seed=1,2",
                                                     "logger=csv,wandb", "data.scaling=std"]},
                              "sweeper": {"params": {"model.head": "moves,mdn", "curriculum": "regular,length",
                                                     "seed": "1,2,3"}}}},
                   tmp_path / "multirun.yaml")
    job = ["model.head=moves", "curriculum=length", "seed=2", "experiment=heads", "logger=wandb",
           "data.scaling=std"]
    old = "3-curriculum=length,data.scaling=std,model.head=moves,seed=2"
    assert job_name(3, str(tmp_path), old, job) == "3-curriculum-length_seed-2"
    (tmp_path / old).mkdir()
    assert job_name(3, str(tmp_path), old, job) == old
    assert job_name(0, str(tmp_path / "elsewhere"), "0-x", ["seed=1", "logger=csv"]) == "0-seed-1"
