"""One run over several processes (trainer=ddp): ranks share the curriculum and split the data."""

from __future__ import annotations

import csv
import os
import sys

import numpy as np
import pytest

from isl.data.sampler import CurriculumBatchSampler, CurriculumState
import preloaded
from conftest import MNIST_DIR, REPO, needs_mnist


def replicas(world, **kwargs):
    state = CurriculumState()
    lengths = np.random.default_rng(0).integers(10, 60, 500)
    labels = np.arange(500) % 10
    return state, [CurriculumBatchSampler(lengths, labels, state, rank=r, world=world, seed=3, **kwargs)
                   for r in range(world)]


def serve(sampler):
    """The sampler's next batch for its rank, with the pass it belongs to."""
    batch = sampler.next_shard()
    return sampler.unused[sampler.draws][1][sampler.rank][0], batch


def test_ranks_take_disjoint_shares_of_one_pass():
    state, ranks = replicas(2, size=20, bucket=4)
    seen = [np.concatenate([r.next_shard() for _ in range(12)]) for r in ranks]  # 24 of 25 batches
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0]) | set(seen[1])) == 480


def test_a_draw_given_back_on_every_rank_keeps_the_replicas_identical_and_drops_nothing():
    state, ranks = replicas(2, size=20, bucket=4)
    served = [serve(r) for _ in range(3) for r in ranks]
    [serve(r) for r in ranks]                        # fetched ahead of a curriculum change...
    draw = ranks[0].draws
    state.max_length = 8
    served += [serve(r) for r in ranks]              # (the next is drawn under the new state)
    for r in ranks:
        r.give_back_draw(draw)                       # ...so given back, on every rank
    assert ranks[0].state_dict() == ranks[1].state_dict()
    while ranks[0].epoch == 0:
        served += [serve(r) for r in ranks]
    first_pass = np.concatenate([b for epoch, b in served if epoch == 0]).tolist()
    assert sorted(first_pass) == list(range(500))    # every sequence once, none lost or doubled


def checkpointed(ranks, trained: int) -> tuple[dict, list, list]:
    """The sampler state a checkpoint holds after ``trained`` draws went into training and one
    more was fetched ahead (as Lightning does), with the batches served on every rank."""
    served = [serve(r) for _ in range(trained) for r in ranks]
    for r in ranks:
        for draw in range(1, r.draws + 1):
            r.trained(draw)
    ahead = [serve(r) for r in ranks]
    assert len({str(r.state_dict()) for r in ranks}) == 1
    return ranks[0].state_dict(), served, ahead


def first_pass(ranks, served) -> list[int]:
    """Serve on until the pass ends; every sequence the pass visited, in order of service."""
    while ranks[0].epoch == 0:
        served += [serve(r) for r in ranks]
    return sorted(np.concatenate([b for epoch, b in served if epoch == 0]).tolist())


@pytest.mark.parametrize("before, after", [(1, 2), (2, 1)])
def test_a_stream_saved_on_one_number_of_processes_goes_on_whole_on_another(before, after, caplog):
    saved, served, ahead = checkpointed(replicas(before, size=20, bucket=4)[1], trained=5)
    _, ranks = replicas(after, size=20, bucket=4)
    with caplog.at_level("INFO", logger="isl.data.sampler"):
        for r in ranks:
            r.load_state_dict(saved)
    resumed = [serve(r) for _ in range(-(-len(ahead) // after)) for r in ranks]
    for (epoch, batch), (ahead_epoch, ahead_batch) in zip(resumed, ahead):  # fetched ahead: first
        assert epoch == ahead_epoch and batch.tolist() == ahead_batch.tolist()
    assert first_pass(ranks, served + resumed) == list(range(500))  # each sequence once, none lost
    assert f"Saved on {before} process(es), resumed on {after}" in caplog.text


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("head", ["mdn", "moves"])
def test_a_run_over_two_cpu_processes(tmp_path, head):
    env = {**os.environ, "ISL_MNIST_DIR": str(MNIST_DIR)}
    result = preloaded.run(
        [sys.executable, "run.py", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", f"model.head={head}",
         "curriculum=length", "curriculum.threshold=50",  # easy: untrained RMSE is ~40 px
         "budget.points=20000", "budget.eval_every=10000", "data.num_train=500",
         "data.num_test=100", "trainer.log_every_n_steps=5", f"paths.runs_dir={tmp_path}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained lstm with the length curriculum") == 1   # rank 0 reports
    [metrics] = tmp_path.rglob("metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    points = [float(r["points"]) for r in rows if r["test/rmse_sampled"]]
    assert points[0] == 0 and points[-1] >= 20000                 # counted over both processes
    stages = [float(r["curriculum/stage"]) for r in rows if r.get("curriculum/stage")]
    assert stages == sorted(stages) and stages[-1] >= 2           # one curriculum for both ranks


@pytest.mark.slow
@needs_mnist
def test_a_run_resumed_on_another_number_of_processes_goes_on(tmp_path):
    """Started on one process, continued on two (trainer=ddp), then on one again: each resume
    says what changed and the run goes on to its budget with one curriculum and one count."""
    env = {**os.environ, "ISL_MNIST_DIR": str(MNIST_DIR), "OMP_NUM_THREADS": "1"}
    common = ["name=moving", "curriculum=length", "curriculum.threshold=50", "curriculum.min_points=1500",
              "budget.eval_every=3000", "data.num_train=500", "data.num_test=100",
              "trainer.log_every_n_steps=5", f"paths.runs_dir={tmp_path}"]
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    logs = []
    for budget, processes in ((3000, []), (6000, ddp), (9000, [])):
        result = preloaded.run([sys.executable, "run.py", *common, *processes, f"budget.points={budget}"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        logs.append(result.stdout + result.stderr)
    assert "Saved on 1 process(es), resumed on 2" in logs[1]
    assert "Saved on 2 process(es), resumed on 1" in logs[2]
    rows = list(csv.DictReader((tmp_path / "moving" / "metrics.csv").open()))
    points = [float(r["points"]) for r in rows]
    assert points == sorted(points) and points[-1] >= 9000          # one count across the three
    tested = [p for p, r in zip(points, rows) if r["test/rmse_sampled"]]
    assert tested[0] == 0 and len(tested) == len(set(tested))        # each evaluation once
    stages = [float(r["curriculum/stage"]) for r in rows if r.get("curriculum/stage")]
    assert stages == sorted(stages) and len(stages) == len(set(stages))
