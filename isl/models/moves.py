"""The categorical "moves" head: the next row as one of the data's discrete rows
(``model.head=moves``), beside the mixture-density head of ``isl.models.mdn``.

**How a row is encoded.** After the start point every row of a stroke sequence has whole-pixel
offsets and is one of
  - a *move*: one of the 8 single-pixel king moves (dx, dy in {-1, 0, 1}, not both 0), flags 0 0
    (94.5% of the MNIST training rows);
  - the *pen lift* ``0 0 1 0`` (1.4%) and the *end* row ``0 0 1 1`` (2.6%);
  - a *jump*: any whole-pixel offset with flags 0 0 (1.5%: every row after a pen lift, and a
    few 2-pixel steps inside strokes).
The head gives a *kind* over 11 outcomes (the 8 moves, lift, end, jump) and, for a jump, dx and dy
as two independent categoricals over the whole pixels -27..27 a 28 x 28 canvas allows. So

    P(row) = P(kind = the row's move) [the row is a move] + P(jump) P(dx) P(dy) [flags 0 0]
           + P(lift) [the row is 0 0 1 0] + P(end) [the row is 0 0 1 1],

exact and normalised over all rows (a move can also be drawn as a jump: both ways count), with
P > 0 for every whole-pixel offset on the canvas, seen in training or not. Its -log2 P(row) is
what the MDN's discretised score (``test/bits_per_point``) measures, so the two heads' bits per
point compare directly. It has no density: ``test/nll_px`` is left empty for it.

**Temperature** T divides every logit (kind, dx, dy) before sampling; T = 1 samples plainly.

Offsets enter and leave in input units (``isl.core.units``), as the MDN's do: the head holds the
units (``set_units``) and rounds a target's offset back to whole pixels to encode it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from isl.core.units import to_pixels, to_units

REACH = 27  # the largest whole-pixel offset on a 28 x 28 canvas
MOVES = torch.tensor([(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)],
                     dtype=torch.float32)
LIFT, END, JUMP = 8, 9, 10  # kinds after the 8 moves
KINDS = 11
OFFSETS = 2 * REACH + 1     # dx (or dy) = -27 .. 27
_ON_GRID = 1e-3             # pixels: how far a target's offset may lie from a whole pixel


class OffGridRowError(ValueError):
    """A target row that no categorical row encodes (an offset off the whole-pixel grid or the
    canvas, or flags that are not 0 0, 1 0 or 1 1 with a zero offset)."""


@dataclass
class Moves:
    """The predicted next-row distribution: logits of shape (..., 11), (..., 55), (..., 55),
    (..., C), and the units (shift, scale; each (2,), pixels) its offsets are given in."""

    kind_logits: torch.Tensor
    dx_logits: torch.Tensor
    dy_logits: torch.Tensor
    class_logits: torch.Tensor
    shift: torch.Tensor
    scale: torch.Tensor

    def map(self, fn) -> Moves:
        """The same distribution with ``fn`` applied to every logit tensor (e.g. a slice)."""
        return Moves(fn(self.kind_logits), fn(self.dx_logits), fn(self.dy_logits), fn(self.class_logits),
                     self.shift, self.scale)

    def guide(self, free: Moves, weight: float) -> Moves:
        """Classifier-free guidance (Ho & Salimans 2022): every logit moved ``weight`` times its
        difference from ``free``'s, the prediction of the same model given no class."""
        def guided(cond, uncond):
            return cond + weight * (cond - uncond)
        return Moves(guided(self.kind_logits, free.kind_logits), guided(self.dx_logits, free.dx_logits),
                     guided(self.dy_logits, free.dy_logits), self.class_logits, self.shift, self.scale)

    # --- likelihood ---------------------------------------------------------------------------
    def log_prob(self, target: torch.Tensor) -> torch.Tensor:
        """log P(row) of rows ``target`` (..., 4), offsets in input units -> (...).
        Raises OffGridRowError for a row no categorical row encodes."""
        xy = to_pixels(target[..., :2], self.shift, self.scale)
        cell = torch.round(xy)
        eos, eod = target[..., 2], target[..., 3]
        flags_ok = ((eos == 0) & (eod == 0)) | ((eos == 1) & (cell == 0).all(-1))
        if not (((xy - cell).abs() <= _ON_GRID).all() and (cell.abs() <= REACH).all() and flags_ok.all()):
            raise OffGridRowError("model.head=moves needs rows of whole-pixel offsets within the 28 x 28 "
                                  f"canvas (|dx|, |dy| <= {REACH}) with flags 0 0, or the rows 0 0 1 0 and "
                                  "0 0 1 1; the data holds another")
        log_kind = torch.log_softmax(self.kind_logits, -1)
        flagged = torch.where(eod == 1, log_kind[..., END], log_kind[..., LIFT])
        return torch.where((eos == 0) & (eod == 0), self._offset_log_prob(log_kind, cell.long()), flagged)

    def _offset_log_prob(self, log_kind: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """log P of the row (dx, dy, 0, 0) for whole-pixel offsets ``cell`` (..., 2) on the canvas:
        as a jump, plus as a move where it is one."""
        as_jump = (log_kind[..., JUMP]
                   + _pick(torch.log_softmax(self.dx_logits, -1), cell[..., 0] + REACH)
                   + _pick(torch.log_softmax(self.dy_logits, -1), cell[..., 1] + REACH))
        move = _move_index(cell)
        as_move = _pick(log_kind, move.clamp_min(0))
        return torch.where(move >= 0, torch.logaddexp(as_move, as_jump), as_jump)

    def nll(self, target: torch.Tensor, mask: torch.Tensor, epsilon: float = 0.0) -> torch.Tensor:
        """-log P(row) per real step, averaged over the real steps (the training loss).
        ``epsilon`` > 0: -log(P + epsilon), as ``isl.models.mdn.prediction_loss`` takes it."""
        log_p = self.log_prob(_fill(target, mask, self))
        if epsilon:
            log_p = torch.logaddexp(log_p, torch.full_like(log_p, math.log(epsilon)))
        return -log_p[mask].mean()

    def log_density(self, xy: torch.Tensor) -> torch.Tensor:
        """log density of the next offset at ``xy`` (..., 2) in input units, per square input unit,
        with each whole-pixel offset's probability (summed over the kinds that give it) spread
        evenly over its pixel cell: for density figures, which it makes comparable to the MDN's."""
        cell = torch.round(to_pixels(xy, self.shift, self.scale)).long()
        log_kind = torch.log_softmax(self.kind_logits, -1)
        inside = (cell.abs() <= REACH).all(-1)
        log_p = self._offset_log_prob(log_kind, cell.clamp(-REACH, REACH))
        # The offset 0 is also that of the pen lift and of the end row.
        at_zero = torch.logsumexp(torch.stack(torch.broadcast_tensors(log_p, log_kind[..., LIFT], log_kind[..., END])), 0)
        log_p = torch.where((cell == 0).all(-1), at_zero, log_p).masked_fill(~inside, -math.inf)
        return log_p + torch.log(self.scale).sum()  # per square pixel -> per square input unit

    # --- what is drawn and expected -----------------------------------------------------------
    def _offsets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The offsets of the 8 moves (8, 2) and of a jump's dx (or dy) values (55,), pixels."""
        device, dtype = self.kind_logits.device, self.kind_logits.dtype
        return MOVES.to(device, dtype), torch.arange(-REACH, REACH + 1, device=device, dtype=dtype)

    def mean(self) -> torch.Tensor:
        """The expected offset (..., 2) in input units: lift and end rows move by 0."""
        moves, values = self._offsets()
        p_kind = torch.softmax(self.kind_logits, -1)
        jump = torch.stack([torch.softmax(self.dx_logits, -1) @ values, torch.softmax(self.dy_logits, -1) @ values], -1)
        xy = p_kind[..., :8] @ moves + p_kind[..., JUMP:JUMP + 1] * jump
        return to_units(xy, self.shift, self.scale)

    def sample_row(self, generator: torch.Generator | None = None, temperature: float = 1.0,
                   bias: float = 0.0) -> torch.Tensor:
        """Draw one row (..., 4) per position, offsets in input units, at ``temperature`` > 0.
        (``bias`` is Graves's for a mixture's offsets; here there is none to sharpen.)"""
        if bias:
            raise ValueError("a bias sharpens the mixture-density head's offsets; the moves head "
                             "(model.head=moves) is sharpened by a temperature below 1")
        kind = _draw(self.kind_logits / temperature, generator)
        dx = _draw(self.dx_logits / temperature, generator) - REACH
        dy = _draw(self.dy_logits / temperature, generator) - REACH
        moves, _ = self._offsets()
        xy = torch.stack([dx, dy], -1).to(moves.dtype)
        xy = torch.where((kind < 8).unsqueeze(-1), moves[kind.clamp_max(7)], xy)
        xy = xy.masked_fill((kind == LIFT).unsqueeze(-1) | (kind == END).unsqueeze(-1), 0.0)
        flags = torch.stack([(kind == LIFT) | (kind == END), kind == END], -1).to(xy.dtype)
        return torch.cat([to_units(xy, self.shift, self.scale), flags], -1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw one offset per position (..., 2) in input units (as the MDN's ``sample``)."""
        return self.sample_row(generator)[..., :2]


def _move_index(cell: torch.Tensor) -> torch.Tensor:
    """Index into MOVES of whole-pixel offsets (..., 2), -1 where the offset is no move."""
    dx, dy = cell[..., 0], cell[..., 1]
    # MOVES in row-major order of (dy, dx) over the 3 x 3 block, centre left out.
    flat = (dy + 1) * 3 + (dx + 1)
    index = torch.where(flat > 4, flat - 1, flat)
    return torch.where((dx.abs() <= 1) & (dy.abs() <= 1) & (flat != 4), index, torch.full_like(index, -1))


def _pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[..., index]`` per position, broadcasting: (..., N), (...) -> (...)."""
    shape = torch.broadcast_shapes(values.shape[:-1], index.shape)
    return values.expand(*shape, values.shape[-1]).gather(-1, index.expand(shape).unsqueeze(-1)).squeeze(-1)


def _fill(target: torch.Tensor, mask: torch.Tensor, moves: Moves) -> torch.Tensor:
    """``target`` with padding rows replaced by a valid row (the pen lift), so only real rows
    are checked and encoded; their log P is masked out afterwards."""
    lift = torch.cat([to_units(torch.zeros(2, device=target.device, dtype=target.dtype), moves.shift, moves.scale),
                      torch.tensor([1.0, 0.0], device=target.device, dtype=target.dtype)])
    return torch.where(mask.unsqueeze(-1), target, lift)


def _draw(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``logits`` (..., N) from its softmax."""
    flat = torch.softmax(logits.reshape(-1, logits.shape[-1]).float(), -1)
    return torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1])


class MovesHead(nn.Module):
    """Hidden state (..., H) -> Moves: one linear layer to the kind, dx, dy and class logits."""

    def __init__(self, hidden: int, classes: int = 10):
        super().__init__()
        self.classes = classes
        self.linear = nn.Linear(hidden, KINDS + 2 * OFFSETS + classes)
        self.register_buffer("offset_shift", torch.zeros(2))
        self.register_buffer("offset_scale", torch.ones(2))

    def set_units(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        self.offset_shift.copy_(shift)
        self.offset_scale.copy_(scale)

    def forward(self, h: torch.Tensor) -> Moves:
        kind, dx, dy, classes = torch.split(self.linear(h), [KINDS, OFFSETS, OFFSETS, self.classes], dim=-1)
        return Moves(kind, dx, dy, classes, self.offset_shift, self.offset_scale)
