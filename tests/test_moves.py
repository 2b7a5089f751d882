"""The categorical moves head (isl.models.moves): an exact, normalised likelihood over the data's
rows, sampling at a temperature, and the same scores as the mixture-density head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from isl.data.datamodule import StrokeDataModule
from isl.models.module import SequenceMDN
from isl.models.moves import END, JUMP, LIFT, MOVES, REACH, Moves, OffGridRowError

SHIFT, SCALE = torch.tensor([-17.0, -18.0]), torch.tensor([34.0, 34.0])  # range units of MNIST


def units(xy) -> torch.Tensor:
    return (torch.as_tensor(xy, dtype=torch.float32) - SHIFT) / SCALE


def row(dx, dy, eos=0, eod=0) -> torch.Tensor:
    return torch.cat([units([dx, dy]), torch.tensor([float(eos), float(eod)])])


def every_row() -> torch.Tensor:
    """Every row the head can give: each whole-pixel offset on the canvas with flags 0 0 (the 8
    moves among them), the pen lift and the end row."""
    values = torch.arange(-REACH, REACH + 1, dtype=torch.float32)
    dx, dy = torch.meshgrid(values, values, indexing="ij")
    plain = torch.stack([dx.reshape(-1), dy.reshape(-1)], -1)
    rows = torch.cat([units(plain), torch.zeros(len(plain), 2)], -1)
    return torch.cat([rows, row(0, 0, 1, 0)[None], row(0, 0, 1, 1)[None]])


def random_moves(batch=(3,), seed=0) -> Moves:
    g = torch.Generator().manual_seed(seed)
    return Moves(torch.randn(*batch, 11, generator=g) * 2, torch.randn(*batch, 55, generator=g) * 2,
                 torch.randn(*batch, 55, generator=g) * 2, torch.randn(*batch, 10, generator=g), SHIFT, SCALE)


def test_the_likelihood_of_a_hand_computed_case():
    kind = torch.zeros(11)
    kind[4], kind[LIFT], kind[END], kind[JUMP] = math.log(2), math.log(3), math.log(4), math.log(5)
    dx, dy = torch.zeros(55), torch.zeros(55)
    dx[REACH + 1], dy[REACH + 0] = math.log(10), math.log(2)  # P(dx = 1) = 10/64, P(dy = 0) = 2/56
    m = Moves(kind, dx, dy, torch.zeros(10), SHIFT, SCALE)
    total = 7 + 2 + 3 + 4 + 5                               # kinds: 7 moves at 1, move 4 at 2, ...
    p_jump = 5 / total
    # Move 4 is (1, 0): as a move 2/21, and as a jump (1, 0) 5/21 * 10/64 * 2/56.
    expected = {
        (1, 0, 0, 0): 2 / total + p_jump * (10 / 64) * (2 / 56),
        (0, -1, 0, 0): 1 / total + p_jump * (1 / 64) * (1 / 56),
        (5, -7, 0, 0): p_jump * (1 / 64) * (1 / 56),
        (0, 0, 1, 0): 3 / total,
        (0, 0, 1, 1): 4 / total,
    }
    for r, p in expected.items():
        assert m.log_prob(row(*r)).exp().item() == pytest.approx(p, rel=1e-5), r


def test_the_probabilities_of_all_possible_next_rows_sum_to_one():
    m = random_moves()
    rows = every_row()
    log_p = m.map(lambda t: t.unsqueeze(1)).log_prob(rows.unsqueeze(0))   # (3, rows)
    assert torch.allclose(log_p.double().exp().sum(1), torch.ones(3, dtype=torch.float64), atol=1e-5)


def test_a_jump_never_seen_in_training_gets_a_probability():
    m = random_moves()
    for r in [(27, -27), (-27, 27), (0, 0), (13, 2)]:
        assert (m.log_prob(row(*r)) > -math.inf).all() and (m.log_prob(row(*r)).exp() > 0).all()


@pytest.mark.parametrize("bad", [(0.5, 0, 0, 0), (28, 0, 0, 0), (1, 0, 1, 0), (0, 0, 0, 1)],
                         ids=["off the pixel grid", "off the canvas", "lift with an offset", "end without lift"])
def test_a_row_the_head_cannot_encode_is_refused(bad):
    with pytest.raises(OffGridRowError, match="whole-pixel offsets"):
        random_moves().log_prob(row(*bad))


def test_the_expected_offset_is_the_mean_over_every_row():
    m = random_moves()
    rows = every_row()
    p = m.map(lambda t: t.unsqueeze(1)).log_prob(rows.unsqueeze(0)).double().exp()  # (3, rows)
    pixels = rows[:, :2].double() * SCALE.double() + SHIFT.double()
    pixels[-2:] = 0  # lift and end rows move by nothing
    expected = p @ pixels
    got = m.mean() * SCALE + SHIFT
    assert torch.allclose(got.double(), expected, atol=1e-4)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampling_at_a_temperature_draws_each_row_with_the_tempered_probability(temperature):
    base = random_moves(batch=(), seed=3)
    n = 40_000
    m = base.map(lambda t: t.expand(n, *t.shape))
    drawn = m.sample_row(torch.Generator().manual_seed(1), temperature)
    tempered = Moves(base.kind_logits / temperature, base.dx_logits / temperature, base.dy_logits / temperature,
                     base.class_logits, SHIFT, SCALE)
    # Frequencies of the kinds of row drawn against the tempered probabilities.
    pixels = torch.round(drawn[:, :2] * SCALE + SHIFT)
    lift = (drawn[:, 2] == 1) & (drawn[:, 3] == 0)
    end = drawn[:, 3] == 1
    assert ((pixels[lift | end] == 0).all() and (drawn[end, 2] == 1).all())
    for r, count in [((0, 0, 1, 0), lift.sum()), ((0, 0, 1, 1), end.sum())] + [
            ((int(dx), int(dy), 0, 0), ((pixels == torch.tensor([dx, dy])).all(-1) & ~lift & ~end).sum())
            for dx, dy in MOVES.tolist()]:
        p = tempered.log_prob(row(*r)).exp().item()
        assert abs(count.item() / n - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-4, (r, count.item() / n, p)


def test_a_low_temperature_draws_the_most_likely_kind_and_jump():
    m = random_moves(batch=(200,), seed=4)
    drawn = m.sample_row(torch.Generator().manual_seed(0), temperature=1e-3)
    kind = m.kind_logits.argmax(-1)
    jump = torch.stack([m.dx_logits.argmax(-1), m.dy_logits.argmax(-1)], -1).float() - REACH
    expected = torch.where((kind < 8).unsqueeze(-1), MOVES[kind.clamp_max(7)], jump)
    expected[kind >= LIFT] = torch.where((kind[kind >= LIFT] == JUMP).unsqueeze(-1), jump[kind >= LIFT], 0.0)
    flags = torch.stack([(kind == LIFT) | (kind == END), kind == END], -1).float()
    assert set(kind.tolist()) >= {JUMP} and (kind < 8).any()   # the case covers moves and jumps
    assert torch.equal(torch.round(drawn[:, :2] * SCALE + SHIFT), expected) and torch.equal(drawn[:, 2:], flags)


def test_the_density_for_figures_holds_the_offsets_probability_over_the_canvas():
    m = random_moves(batch=())
    values = torch.arange(-REACH, REACH + 1, dtype=torch.float32)
    dx, dy = torch.meshgrid(values, values, indexing="ij")
    centres = units(torch.stack([dx.reshape(-1), dy.reshape(-1)], -1))
    cell_area = 1 / float(SCALE[0] * SCALE[1])               # a pixel cell in square input units
    mass = (m.log_density(centres).double().exp() * cell_area).sum()
    assert mass.item() == pytest.approx(1.0, abs=1e-5)


def test_the_bits_per_point_of_the_moves_head_are_its_loss_in_bits_on_real_data(real_source):
    dm = StrokeDataModule(real_source, num_train=200, num_test=100)
    dm.setup()
    model = SequenceMDN(hidden=16, head="moves")
    model.set_units(dm.offset_shift, dm.offset_scale)
    metrics = model.evaluate(dm.test_dataloader())
    assert "test/nll_px" not in metrics    # a categorical has no density
    assert metrics["test/bits_per_point"] == pytest.approx(metrics["test/loss"] / math.log(2), rel=1e-5)
    assert 0 < metrics["test/rmse_expected"] < metrics["test/rmse_sampled"]
