"""StrokeDataModule: padded batches of stroke sequences under a curriculum that can change mid-run."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from isl.core.checks import positive_int
from isl.data.sampler import CurriculumBatchSampler, CurriculumState, check_batching
from isl.data.sequences import StrokeSet
from isl.core.units import to_units
from isl.data.scaling import SCALINGS, offset_units
from isl.data.sources import StrokeSource


@dataclass
class StrokeBatch:
    """Sequences padded to the longest in the batch (after curriculum truncation).

    ``steps[..., :2]`` are offsets in input units (``isl.core.units``), ``to_units(pixels, offset_shift,
    offset_scale)`` with the DataModule's numbers (row 0, the start point, converted alike);
    ``steps[..., 2:]`` the end-of-stroke and end-of-digit flags. Padding is zero and ``mask`` is
    False there. ``n_points`` counts the real steps (``data.count``), the paper's unit of progress.
    """

    steps: torch.Tensor    # (B, T, 4) float32
    mask: torch.Tensor     # (B, T) bool
    lengths: torch.Tensor  # (B,) int64
    labels: torch.Tensor   # (B,) int64
    indices: torch.Tensor  # (B,) int64, positions in the split
    n_points: int
    version: int           # curriculum version the batch was drawn under
    epoch: int             # sampler pass it was drawn in (-1 for test batches)
    draw: int              # sampler draw it came from (-1 for test batches)

    def __len__(self) -> int:
        return len(self.lengths)

    def to(self, device: torch.device) -> StrokeBatch:
        """The batch on ``device``; a no-op on the device it is on."""
        if self.steps.device == device:
            return self
        return replace(self, **{f.name: getattr(self, f.name).to(device, non_blocking=True)
                                for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)})


class _Indices(Dataset):
    """Hands the batch sampler's indices straight to ``collate``, which gathers in one go."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


# What a curriculum length and a processed point count: every row of a sequence, the start point
# included (isl), or the rows predicted, one fewer per sequence (the paper's code, whose length L
# is L targets, L + 1 rows, and whose points processed are its loss's target rows).
COUNTS = ("rows", "targets")


class StrokeDataModule(L.LightningDataModule):
    def __init__(self, source: StrokeSource, num_train: int | None = 10_000, num_test: int | None = 5_000,
                 max_length: int = 100, batching: dict | None = None, test_batch_size: int = 500,
                 seed: int = 0, scaling: str = "range", offset_min: float = -22.6,
                 offset_range: float = 55.2, count: str = "rows"):
        super().__init__()
        if count not in COUNTS:
            raise ValueError(f"data.count must be one of {COUNTS}, got {count!r}")
        if scaling not in SCALINGS:
            raise ValueError(f"data.scaling must be one of {SCALINGS}, got {scaling!r}")
        for key, value in (("num_train", num_train), ("num_test", num_test)):
            positive_int(f"data.{key}", value, none="null (all)")
        if scaling == "fixed" and not (isinstance(offset_range, (int, float)) and offset_range > 0):
            raise ValueError(f"data.offset_range must be a number > 0 (pixels), got {offset_range!r}")
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"data.max_length must be an integer >= 2, got {max_length!r}")
        self.source = source
        self.num_train, self.num_test = num_train, num_test
        self.max_length = max_length
        self.batching = dict(batching or {"by": "sequences", "size": 50})
        if not {"by", "size"} <= set(self.batching) <= {"by", "size", "bucket", "bucket_sort"}:
            raise ValueError("batching takes the keys 'by', 'size' and optionally 'bucket' and "
                             f"'bucket_sort', got {sorted(self.batching)}")
        check_batching(**self.batching)
        self.test_batch_size = test_batch_size
        self.seed = seed
        self.scaling = scaling
        self.offset_min, self.offset_range = offset_min, offset_range
        self.count = count
        self.curriculum = CurriculumState()
        self.train: StrokeSet | None = None
        self.test: StrokeSet | None = None
        self.sampler: CurriculumBatchSampler | None = None

    @property
    def _start_rows(self) -> int:
        return int(self.count == "targets")

    def rows(self, length: int) -> int:
        """The rows a curriculum length (``data.count``) keeps of a sequence."""
        return length + self._start_rows

    @property
    def longest(self) -> int:
        """The longest training sequence as a curriculum length (``data.count``)."""
        return int(self.train.lengths.max()) - self._start_rows

    # --- data -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build (or download and build) the sequences once; ``setup`` then reads the cache."""
        for split in ("train", "test"):
            self.source.load(split)

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        self.train = self.source.load("train", self.num_train)
        self.test = self.source.load("test", self.num_test)
        shift, scale = offset_units(self.train, self.scaling, self.offset_min, self.offset_range)
        self.offset_shift = torch.tensor(shift, dtype=torch.float32)
        self.offset_scale = torch.tensor(scale, dtype=torch.float32)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        self.sampler = CurriculumBatchSampler(self.train.lengths, self.train.labels, self.curriculum,
                                              seed=self.seed, rank=rank, world=world, **self.batching)

    def collate(self, indices, strokes: StrokeSet | None = None, max_length: int | None = None) -> StrokeBatch:
        strokes = self.train if strokes is None else strokes
        indices = np.asarray(indices, dtype=np.int64)
        limit = self.max_length if max_length is None else min(max_length, self.max_length)
        lengths = np.minimum(strokes.lengths[indices], limit)
        width = int(lengths.max())
        t = np.arange(width)
        mask = t[None, :] < lengths[:, None]
        rows = np.where(mask, strokes.starts[indices][:, None] + t[None, :], 0)
        steps = torch.from_numpy(strokes.steps[rows].astype(np.float32))
        steps[..., :2] = to_units(steps[..., :2], self.offset_shift, self.offset_scale)
        steps[~torch.from_numpy(mask)] = 0
        return StrokeBatch(steps=steps, mask=torch.from_numpy(mask),
                           lengths=torch.from_numpy(lengths), labels=torch.from_numpy(
                               strokes.labels[indices].astype(np.int64)),
                           indices=torch.from_numpy(indices),
                           n_points=int(lengths.sum()) - self._start_rows * len(indices),
                           **self._provenance(strokes))

    def _provenance(self, strokes: StrokeSet) -> dict:
        """Curriculum version, sampler pass and draw of the batch being collated (-1: test)."""
        if strokes is not self.train:
            return {"version": self.curriculum.version, "epoch": -1, "draw": -1}
        draw, version, epoch = self.sampler.served
        return {"version": version, "epoch": epoch, "draw": draw}

    def _train_collate(self, indices) -> StrokeBatch:
        return self.collate(indices, max_length=self.curriculum.max_length)

    def train_dataloader(self) -> DataLoader:
        # In-process, on purpose: a batch is one numpy gather, and the curriculum state lives here.
        return DataLoader(_Indices(len(self.train)), batch_sampler=self.sampler,
                          collate_fn=self._train_collate)

    def test_dataloader(self) -> DataLoader:
        """The fixed test subset at full length, without curriculum. Batches are cut from the
        sequences sorted by length, which spares the padding; metrics are sums, so order is free."""
        by_length = np.argsort(self.test.lengths, kind="stable")
        return DataLoader(by_length, batch_size=self.test_batch_size,
                          collate_fn=lambda idx: self.collate(idx, self.test))

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        # Lightning's generic walk over the dataclass costs more than a small training step.
        return batch.to(device)

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        # Lightning fetches a batch ahead; one drawn before a curriculum change is redrawn here,
        # so the change applies to the very next training step.
        if (isinstance(batch, StrokeBatch) and self.trainer is not None and self.trainer.training
                and batch.version != self.curriculum.version):
            self.sampler.give_back_draw(batch.draw)
            batch = self._train_collate(self.sampler.next_shard())
        if isinstance(batch, StrokeBatch) and batch.draw >= 0:
            self.sampler.trained(batch.draw)  # no longer ahead: a checkpoint now has it trained
        return batch

    # --- curriculum: ``dm.curriculum.max_length = 4`` etc.; saved with checkpoints -------------
    def state_dict(self) -> dict:
        return {"curriculum": self.curriculum.state_dict(),
                "sampler": self.sampler.state_dict() if self.sampler else None}

    def load_state_dict(self, state: dict) -> None:
        self.curriculum.load_state_dict(state["curriculum"])
        if state["sampler"] is not None:
            self.setup()
            self.sampler.load_state_dict(state["sampler"])
