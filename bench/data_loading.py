"""Benchmark: how long the DataModule takes to produce one training batch, per batching mode.

    python bench/data_loading.py [--batches 500]

A batch is one numpy gather in the training process; this shows it costs far less than a
training step, so the step never waits on data.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from isl.data.datamodule import StrokeDataModule
from isl.data.sources import MnistSource

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=500)
    parser.add_argument("--data-dir", default=os.environ.get("ISL_DATA_DIR", os.path.join(ROOT, "data")))
    args = parser.parse_args()
    source = MnistSource(search_dirs=[os.path.join(ROOT, "..", "shared", "data", "mnist")],
                         data_dir=args.data_dir)
    results = {}
    for by, size in (("sequences", 50), ("points", 2000)):
        for max_length in (None, 4):
            dm = StrokeDataModule(source, batching={"by": by, "size": size})
            dm.setup()
            dm.curriculum.max_length = max_length
            it = iter(dm.train_dataloader())
            next(it)
            start = time.perf_counter()
            points = sum(next(it).n_points for _ in range(args.batches))
            seconds = time.perf_counter() - start
            results[f"{by}{size}_len{max_length or 'full'}"] = {
                "us_per_batch": round(seconds / args.batches * 1e6),
                "points_per_s": round(points / seconds)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
