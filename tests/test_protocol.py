"""The original code's test protocol (budget.test_protocol=original): a test batch of the next 50
test sequences after every 10th training batch (the 11th, 21st, ...), cycling over the test
subset, with the per-sequence ``rmse_stroke_alldata``; the whole subset still at 0 and at the end.
End to end, killed and resumed, and in the report: tests/test_resume.py."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from isl.training.callbacks import ORIGINAL_TEST_EVERY, ORIGINAL_TEST_SEQUENCES, PointsSchedule
from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN


def setting(source, num_test: int):
    """A real test subset, an untrained small LSTM in its units, and the schedule driven by hand
    (as Lightning calls it), every logged row kept."""
    dm = StrokeDataModule(source, num_train=200, num_test=num_test, seed=1)
    dm.setup()
    torch.manual_seed(0)
    net = SequenceMDN(hidden=16, components=3)
    net.set_units(dm.offset_shift, dm.offset_scale)
    rows = []
    net.write_metrics = lambda metrics: rows.append({**metrics, "points": net.points_processed})
    schedule = PointsSchedule(budget=10**9, eval_every=10**6, evals_per_decade=4, test_protocol="original")
    return dm, net, schedule, SimpleNamespace(datamodule=dm, should_stop=False), rows


def train_batches(schedule, trainer, net, n: int) -> None:
    for _ in range(n):
        net.points_processed += 1000
        schedule.on_train_batch_end(trainer, net, None, None, 0)


def sequence_errors(net, dm, indices) -> dict[int, tuple[float, int]]:
    """Each sequence's squared sampled error (pixels, dx and dy) and target points, computed
    here from the draw the evaluation makes (seed 0) on the same batch."""
    batch = dm.collate(indices, dm.test)
    with torch.no_grad():
        prediction = net(batch.steps)[0].map(lambda t: t[:, :-1])
        sampled = net.to_pixels(prediction.sample(torch.Generator().manual_seed(0))).double().numpy()
    out = {}
    for row, (i, n) in enumerate(zip(batch.indices.tolist(), batch.lengths.tolist())):
        true = dm.test.sequence(i)[1:n, :2].astype(np.float64)
        out[i] = (float(((sampled[row, :n - 1] - true) ** 2).sum()), n - 1)
    return out


def test_a_test_batch_after_every_10th_training_batch_cycles_through_the_test_subset(real_source):
    dm, net, schedule, trainer, rows = setting(real_source, num_test=120)
    schedule.on_train_start(trainer, net)                     # the full evaluation at 0
    train_batches(schedule, trainer, net, 45)
    assert [r["points"] for r in rows] == [0, 11000, 21000, 31000, 41000]
    assert "test/rmse_sampled_alldata" not in rows[0]
    whole = net.evaluate(dm.test_dataloader())
    assert rows[0]["test/rmse_sampled"] == whole["test/rmse_sampled"]        # all 120 sequences
    # 50 at a time in the test subset's order, wrapping around at 120 as the original's pointer
    expected = [np.arange(0, 50), np.arange(50, 100), np.r_[100:120, 0:30], np.arange(30, 80)]
    assert ORIGINAL_TEST_EVERY == 10 and ORIGINAL_TEST_SEQUENCES == 50
    for row, indices in zip(rows[1:], expected):
        alone = net.evaluate([dm.collate(indices, dm.test)])
        assert {k: row[k] for k in alone} == alone
    unwrapped = net.evaluate([dm.collate(np.arange(70, 120), dm.test)])
    assert rows[3]["test/rmse_sampled"] != unwrapped["test/rmse_sampled"]
    assert schedule.cursor == 80
    # the per-sequence statistic: every sequence's error at the last batch that held it
    latest = {}
    for row, indices in zip(rows[1:], expected):
        latest.update(sequence_errors(net, dm, indices))
        sq, points = map(sum, zip(*latest.values()))
        assert row["test/rmse_sampled_alldata"] == pytest.approx(np.sqrt(sq / (2 * points)), rel=1e-5)
    assert rows[1]["test/rmse_sampled_alldata"] == pytest.approx(rows[1]["test/rmse_sampled"], rel=1e-5)
    assert rows[4]["test/rmse_sampled_alldata"] != pytest.approx(rows[4]["test/rmse_sampled"], rel=1e-3)


def test_the_whole_subset_is_evaluated_only_at_0_and_at_the_end(real_source):
    dm, net, _, trainer, rows = setting(real_source, num_test=60)
    schedule = PointsSchedule(budget=25_500, eval_every=5_000, test_protocol="original")
    schedule.on_train_start(trainer, net)
    train_batches(schedule, trainer, net, 26)
    assert trainer.should_stop
    full = [r["points"] for r in rows if "test/rmse_sampled_alldata" not in r]
    assert full == [0, 26000] and len(rows) == 4                # test batches at 11,000 and 21,000
    assert schedule.last_metrics == {k: v for k, v in rows[-1].items() if k != "points"}  # result.json's
    assert schedule.cursor == 40                                 # 0-49, then 50-59 and 0-39


def test_the_protocol_s_state_goes_with_the_checkpoint(real_source):
    dm, net, schedule, trainer, rows = setting(real_source, num_test=120)
    schedule.on_train_start(trainer, net)
    train_batches(schedule, trainer, net, 25)
    again = PointsSchedule(budget=10**9, eval_every=10**6, evals_per_decade=4, test_protocol="original")
    again.load_state_dict(schedule.state_dict())
    again.on_train_start(trainer, net)
    train_batches(schedule, trainer, net, 10)                   # a test batch at the 31st...
    train_batches(again, trainer, net, 10)                      # ...and the same one, resumed
    test = [{k: v for k, v in row.items() if k.startswith("test/")} for row in rows[-2:]]
    assert test[0] == test[1] and "test/rmse_sampled_alldata" in test[0]
    assert (again.batches, again.cursor) == (schedule.batches, schedule.cursor) == (35, 30)
    assert torch.equal(again.latest, schedule.latest)


def test_an_unknown_protocol_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"budget.test_protocol must be one of \('full', 'original'\), got 'paper'"):
        PointsSchedule(1000, 100, test_protocol="paper")


def test_per_sequence_errors_add_up_to_the_batch_s(real_source):
    dm, net, *_ = setting(real_source, num_test=120)
    indices = np.arange(10, 60)
    table = torch.zeros(120, 2, dtype=torch.float64)
    metrics = net.evaluate([dm.collate(indices, dm.test)], sequence_errors=table)
    direct = sequence_errors(net, dm, indices)
    assert table[indices].numpy() == pytest.approx(np.array([direct[i] for i in indices]), rel=1e-5)
    assert not table[:10].any() and not table[60:].any()
    sq, points = table.sum(0).tolist()
    assert metrics["test/rmse_sampled"] == pytest.approx(np.sqrt(sq / (2 * points)), rel=1e-6)
    assert net.evaluate([dm.collate(indices, dm.test)]) == metrics     # the same draw without the table
