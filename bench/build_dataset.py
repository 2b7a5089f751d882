"""Benchmark: build all 70,000 MNIST stroke sequences from the IDX files, no cache.

    python bench/build_dataset.py [--mnist-dir DIR] [--workers N]

Prints one JSON line: wall seconds for reading + building both splits on all cores, and the
single-process rate on the first 2,000 images measured in the same run, for the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from isl.data import pipeline, mnist


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mnist-dir", default=os.environ.get(mnist.ENV_VAR))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    directory = mnist.locate_mnist(args.mnist_dir, download=False)

    start = time.perf_counter()
    total = 0
    for split in ("train", "test"):
        images, labels = mnist.load_split(directory, split)
        total += len(pipeline.build(images, labels, args.workers))
    wall = time.perf_counter() - start

    images, labels = mnist.load_split(directory, "train")
    start = time.perf_counter()
    pipeline.build(images[:2000], labels[:2000], workers=1)
    serial_ms = (time.perf_counter() - start) / 2000 * 1e3

    print(json.dumps({"images": total, "workers": args.workers, "wall_s": round(wall, 2),
                      "images_per_s": round(total / wall), "serial_ms_per_image": round(serial_ms, 3),
                      "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
