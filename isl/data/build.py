"""Build stroke sequences from MNIST images and write them in the published or the compact format.

    python -m isl.data.build --mnist-dir DIR --split train --limit 100 --format original --out DIR

``original`` writes the published set's files ({split}img-N-inputdata.txt, -targetdata.txt,
-points.txt and {split}labels.txt), so tools written for that set read ours; ``compact``
writes the single .npz that training reads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from isl.core.checks import positive_int_arg
from isl.data import mnist
from isl.data.flags import add_data_flags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m isl.data.build", description=__doc__.split("\n")[0])
    # locate_mnist falls back on $ISL_MNIST_DIR itself; this tool neither searches nor downloads.
    add_data_flags(parser, data_dir=None, mnist_dir=f"${mnist.ENV_VAR}; nothing is searched or downloaded")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--limit", type=positive_int_arg, default=None, help="only the first N images")
    parser.add_argument("--format", choices=("original", "compact"), default="original")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    from isl.data import pipeline  # scipy: after the arguments, so that --help is instant
    from isl.data.cache import write_strokes
    from isl.data.published import write_published

    images, labels = mnist.load_split(mnist.locate_mnist(args.mnist_dir, download=False), args.split)
    images, labels = images[:args.limit], labels[:args.limit]
    start = time.perf_counter()
    strokes = pipeline.build(images, labels, args.workers)
    if args.format == "original":
        write_published(strokes, args.out, args.split)
    else:
        write_strokes(args.out / f"{args.split}.npz", strokes)
    print(f"{len(strokes):,} {args.split} sequences ({len(strokes.steps):,} points) written to "
          f"{args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
