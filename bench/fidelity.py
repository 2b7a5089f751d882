"""Fidelity: our sequences against published ones, for every published inputdata file in a folder.

    python bench/fidelity.py --published DIR [--mnist-dir DIR]

DIR holds files of the published set ({train,test}img-N-inputdata.txt). Prints one JSON line:
how many sequences are identical, how many visit exactly the same pixels, and the mean
intersection-over-union of the visited pixel sets.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np

from isl.data import mnist
from isl.data.pipeline import image_to_sequence
from isl.data.published import read_inputdata

NAME = re.compile(r"(train|test)img-(\d+)-inputdata\.txt")


def visited(steps: np.ndarray) -> set:
    points = np.cumsum(steps[:, :2].astype(np.int64), axis=0)
    return {tuple(p) for p in points[steps[:, 2] == 0]} | {tuple(points[-1])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--published", type=Path, required=True)
    parser.add_argument("--mnist-dir", default=os.environ.get(mnist.ENV_VAR))
    args = parser.parse_args()
    directory = mnist.locate_mnist(args.mnist_dir, download=False)
    images = {split: mnist.load_split(directory, split)[0] for split in ("train", "test")}

    identical = same_pixels = 0
    iou = []
    files = sorted(p for p in args.published.iterdir() if NAME.fullmatch(p.name))
    for path in files:
        split, index = NAME.fullmatch(path.name).groups()
        theirs, ours = read_inputdata(path), image_to_sequence(images[split][int(index)])
        identical += theirs.shape == ours.shape and bool((theirs == ours).all())
        a, b = visited(theirs), visited(ours)
        same_pixels += a == b
        iou.append(len(a & b) / len(a | b))
    print(json.dumps({"files": len(files), "identical_sequences": identical,
                      "identical_pixel_sets": same_pixels, "mean_pixel_iou": round(float(np.mean(iou)), 4)}))


if __name__ == "__main__":
    main()
