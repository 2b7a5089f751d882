"""The timed training loops of ``python -m isl.tools.bench`` (what each measures: see there)."""

from __future__ import annotations

import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from isl.data.datamodule import StrokeBatch, StrokeDataModule
from isl.models.module import LOGGING, SequenceMDN

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


# SimpleProfiler's actions, by what they time (a hook counts once, under its callback's part).
PARTS = {"training_steps": ("run_training_batch",),
         "data": ("[_TrainingEpochLoop].train_dataloader_next", "[Strategy]SingleDeviceStrategy.batch_to_device",
                  "[LightningDataModule]StrokeDataModule.on_before_batch_transfer"),
         "evaluation": ("[Callback]PointsSchedule.",),
         "checkpoints": ("[Callback]PointsCheckpoint.",)}


def run_split(args) -> dict:
    from lightning.pytorch.profilers import SimpleProfiler

    from isl.tools.baselines import compose
    from isl.curricula import Curriculum
    from isl.training.train import train

    profiler = SimpleProfiler()
    with tempfile.TemporaryDirectory() as runs:
        cfg = compose([*args.overrides, f"paths.runs_dir={runs}"])
        out = Path(runs) / "bench"
        out.mkdir()
        start = time.perf_counter()
        train(cfg, out, profiler=profiler)
        wall = time.perf_counter() - start
        points = json.loads((out / "result.json").read_text())["points"]
        with (out / "metrics.csv").open() as f:
            evaluations = sum(1 for row in csv.DictReader(f) if row.get("test/loss"))
    seconds = {name: sum(sum(durations) for action, durations in profiler.recorded_durations.items()
                         if action.startswith(prefixes) and action not in ("run_training_epoch",))
               for name, prefixes in PARTS.items()}
    curricula = tuple(f"[Callback]{c.__name__}." for c in _subclasses(Curriculum))
    seconds["curriculum"] = sum(sum(d) for a, d in profiler.recorded_durations.items() if a.startswith(curricula))
    seconds["other"] = wall - sum(seconds.values())
    logging_s = sum(profiler.recorded_durations.get(LOGGING, []))
    return {"overrides": args.overrides, "threads": torch.get_num_threads(),
            "points": points, "evaluations": evaluations,
            "wall_s": round(wall, 2), "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "shares": {k: round(v / wall, 3) for k, v in seconds.items()},
            "logging_s": round(logging_s, 3)}


def _subclasses(cls) -> list[type]:
    return [cls, *[s for sub in cls.__subclasses__() for s in _subclasses(sub)]]
