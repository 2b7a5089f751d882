"""Training-speed benchmarks, each printing one JSON line.

    python -m isl.bench train --model lstm --batch-seqs 50 --seq-len 40 --steps 30
    python -m isl.bench real --model lstm --steps 40

``train``: the real Lightning Trainer against a bare PyTorch loop. Both train the same
SequenceMDN (its own Adam and gradient-norm clipping) on the same synthetic batch, in one
process, alternating (each goes first every other time); the median of ``--repeats`` timings of each is reported
(``points_per_sec``, ``bare_points_per_sec``) and the median and range of the ratios of the
side-by-side pairs (``ratio``, ``ratio_range``). It also times Lightning's loop around a step
that does no work (``floor_ms_per_step``): no LightningModule can beat
``best_ratio`` = bare / (bare + floor) on this machine.

``real``: real points/s of the Lightning Trainer on real batches (the first 10,000 training
sequences, 50 per batch): random batches (bucket 1), stratified bucketing (the default) and
bucketing by length alone, with the share of padding in each.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from isl.data.datamodule import StrokeBatch, StrokeDataModule
from isl.models.module import SequenceMDN

LOG_EVERY = 20


def synthetic_batch(batch_seqs: int, seq_len: int, seed: int = 0) -> StrokeBatch:
    """Offsets of unit spread, a pen lift now and then, full-length sequences."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.zeros(batch_seqs, seq_len, 4)
    steps[..., :2] = torch.randn(batch_seqs, seq_len, 2, generator=g)
    steps[..., 2] = (torch.rand(batch_seqs, seq_len, generator=g) < 0.05).float()
    steps[:, -1, 2:] = 1
    lengths = torch.full((batch_seqs,), seq_len)
    return StrokeBatch(steps=steps, mask=torch.ones(batch_seqs, seq_len, dtype=torch.bool),
                       lengths=lengths, labels=torch.randint(0, 10, (batch_seqs,), generator=g),
                       indices=torch.arange(batch_seqs), n_points=batch_seqs * seq_len, version=0, epoch=0,
                       draw=0)


class _Batches(L.LightningDataModule):
    """Serves a fixed list of batches, moved to the device as StrokeDataModule moves them."""

    def __init__(self, batches: list[StrokeBatch]):
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None)

    transfer_batch_to_device = StrokeDataModule.transfer_batch_to_device


class _Timer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def lightning_seconds(model: SequenceMDN, batch: StrokeBatch, steps: int, warmup: int) -> float:
    timer = _Timer(warmup)
    with tempfile.TemporaryDirectory() as logs:
        trainer = L.Trainer(max_steps=steps + warmup, accelerator="auto", devices=1,
                            log_every_n_steps=LOG_EVERY, logger=CSVLogger(logs), callbacks=[timer],
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0)
        trainer.fit(model, datamodule=_Batches([batch] * (steps + warmup)))
    return timer.end - timer.start


class _Floor(SequenceMDN):
    """Lightning's loop alone: each step only hands Lightning an optimizer step (no gradients,
    so the optimizer does nothing), which Lightning needs to count it."""

    def training_step(self, batch, batch_idx):
        self.optimizers().step()


def bare_seconds(model: SequenceMDN, batch: StrokeBatch, steps: int, warmup: int) -> float:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    batch = batch.to(torch.device(device))
    optimizer = model.configure_optimizers()[0][0]
    for step in range(steps + warmup):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss, _ = model._measure(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), model.hparams.grad_clip)
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def real_benchmark(args) -> dict:
    from isl.data.sources import MnistSource

    source = MnistSource(search_dirs=[args.mnist_dir] if args.mnist_dir else [], data_dir=args.data_dir)
    result = {"model": args.model, "steps": args.steps}
    variants = {"random": (1, "stratified"), "stratified": (args.bucket, "stratified"),
                "length": (args.bucket, "length")}
    for variant, (bucket, sort) in variants.items():
        dm = StrokeDataModule(source, batching={"by": "sequences", "size": 50, "bucket": bucket,
                                                "bucket_sort": sort})
        dm.setup()
        loader = iter(dm.train_dataloader())
        batches = [next(loader) for _ in range(args.steps + args.warmup)]
        timed = batches[args.warmup:]
        points = sum(b.n_points for b in timed)
        padded = sum(b.steps.shape[0] * b.steps.shape[1] for b in timed)
        seconds = []
        for _ in range(args.repeats):
            torch.manual_seed(0)
            model = SequenceMDN(network=args.model)
            timer = _Timer(args.warmup)
            trainer = L.Trainer(max_steps=len(batches), accelerator="auto", devices=1, logger=False,
                                callbacks=[timer], enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, limit_val_batches=0)
            trainer.fit(model, datamodule=_Batches(batches))
            seconds.append(timer.end - timer.start)
        result[variant] = {"points_per_sec": round(points / statistics.median(seconds)),
                           "padding_share": round(1 - points / padded, 3)}
    return result


def train_benchmark(args) -> dict:
    batch = synthetic_batch(args.batch_seqs, args.seq_len)
    points = args.steps * batch.n_points
    ours, bare, floor = [], [], []
    for repeat in range(args.repeats):
        # Each goes first every other time, so that neither gains from running after the other.
        for loop in ("lightning", "bare") if repeat % 2 == 0 else ("bare", "lightning"):
            torch.manual_seed(0)
            model = SequenceMDN(network=args.model, hidden=args.hidden, components=args.components)
            if loop == "lightning":
                ours.append(lightning_seconds(model, batch, args.steps, args.warmup))
            else:
                bare.append(bare_seconds(model, batch, args.steps, args.warmup))
        empty = _Floor(network=args.model, hidden=args.hidden, components=args.components)
        floor.append(lightning_seconds(empty, batch, args.steps, args.warmup))
    # The ratio of each side-by-side pair, then their median: a shared machine's speed drifts
    # over seconds, which a ratio of medians taken minutes apart would count as a difference.
    ratios = sorted(b / o for o, b in zip(ours, bare))
    return {"model": args.model, "hidden": args.hidden, "components": args.components,
            "batch_seqs": args.batch_seqs, "seq_len": args.seq_len,
            "steps": args.steps, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "threads": torch.get_num_threads(), "points_per_sec": round(points / statistics.median(ours)),
            "bare_points_per_sec": round(points / statistics.median(bare)),
            "ms_per_step": round(statistics.median(ours) / args.steps * 1e3, 3),
            "bare_ms_per_step": round(statistics.median(bare) / args.steps * 1e3, 3),
            "ratio": round(statistics.median(ratios), 3), "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
            "floor_ms_per_step": round(statistics.median(floor) / args.steps * 1e3, 3),
            "best_ratio": round(statistics.median(b / (b + f) for b, f in zip(bare, floor)), 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m isl.bench")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="training points/s: Lightning vs a bare loop")
    train.add_argument("--model", choices=("lstm", "ffnn"), default="lstm")
    train.add_argument("--batch-seqs", type=int, default=50)
    train.add_argument("--seq-len", type=int, default=40)
    train.add_argument("--steps", type=int, default=30)
    train.add_argument("--warmup", type=int, default=5)
    train.add_argument("--repeats", type=int, default=3)
    train.add_argument("--hidden", type=int, default=200, help="units per layer (2: what is left is "
                       "the per-step cost of the loop, the loss and the optimizer)")
    train.add_argument("--components", type=int, default=17)
    real = commands.add_parser("real", help="training points/s on real batches, bucketed or not")
    real.add_argument("--model", choices=("lstm", "ffnn"), default="lstm")
    real.add_argument("--steps", type=int, default=40)
    real.add_argument("--warmup", type=int, default=5)
    real.add_argument("--repeats", type=int, default=3)
    real.add_argument("--bucket", type=int, default=50)
    real.add_argument("--mnist-dir", default=None)
    real.add_argument("--data-dir", default="data")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    # Every Trainer announces its devices; the result is the JSON line.
    lightning = logging.getLogger("lightning.pytorch")
    level = lightning.level
    lightning.setLevel(logging.WARNING)
    try:
        print(json.dumps({"train": train_benchmark, "real": real_benchmark}[args.command](args)))
    finally:
        lightning.setLevel(level)


if __name__ == "__main__":
    main()
