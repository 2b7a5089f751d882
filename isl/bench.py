"""Training-speed benchmark: the real Lightning Trainer against a bare PyTorch loop.

    python -m isl.bench train --model lstm --batch-seqs 50 --seq-len 40 --steps 30

Both train the same SequenceMDN with the same optimizer and gradient clipping on the same
synthetic batch, in one process, alternating; the median of ``--repeats`` timings of each is
reported as one JSON line (``points_per_sec``, ``bare_points_per_sec``, their ratio).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from isl.data.datamodule import StrokeBatch
from isl.models.module import SequenceMDN

GRAD_CLIP = 10.0
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
                       indices=torch.arange(batch_seqs), n_points=batch_seqs * seq_len, version=0, epoch=0)


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
                            gradient_clip_val=GRAD_CLIP, gradient_clip_algorithm="norm",
                            log_every_n_steps=LOG_EVERY, logger=CSVLogger(logs), callbacks=[timer],
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0)
        trainer.fit(model, DataLoader([batch] * (steps + warmup), batch_size=None))
    return timer.end - timer.start


def bare_seconds(model: SequenceMDN, batch: StrokeBatch, steps: int, warmup: int) -> float:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    batch = model.transfer_batch_to_device(batch, torch.device(device), 0)
    optimizer = model.configure_optimizers()["optimizer"]
    for step in range(steps + warmup):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss, _ = model._measure(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def train_benchmark(args) -> dict:
    batch = synthetic_batch(args.batch_seqs, args.seq_len)
    points = args.steps * batch.n_points
    ours, bare = [], []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        ours.append(lightning_seconds(SequenceMDN(network=args.model), batch, args.steps, args.warmup))
        torch.manual_seed(0)
        bare.append(bare_seconds(SequenceMDN(network=args.model), batch, args.steps, args.warmup))
    pps, bare_pps = points / statistics.median(ours), points / statistics.median(bare)
    return {"model": args.model, "batch_seqs": args.batch_seqs, "seq_len": args.seq_len,
            "steps": args.steps, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "threads": torch.get_num_threads(), "points_per_sec": round(pps), "bare_points_per_sec": round(bare_pps),
            "ratio": round(pps / bare_pps, 3)}


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
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    print(json.dumps(train_benchmark(args)))


if __name__ == "__main__":
    main()
