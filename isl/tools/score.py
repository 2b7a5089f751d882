"""Score stroke sequences as digits: draw them as 28x28 images and classify those.

    python -m isl.tools.score --split test --n 1000           # real test sequences
    python -m isl.tools.score --sequences DIR [--split test]  # files in the published format (with or
                                                        # without labels: isl.tools.generate --save)
    python -m isl.tools.generate CKPT --n 500 --out digits.png --score

Each prints one JSON line: ``n``; ``accuracy`` (where labels are known: the fraction whose
predicted class is their label; for digits saved by ``isl.tools.generate --save`` from a
class-conditional model the labels are the classes asked for) and ``accuracy_by_class``, the
same for each label; ``recognised``, the fraction whose top digit probability is
>= 0.9; ``mean_top_probability``; and ``class_counts``, how many are predicted as each digit
and as ``none`` (not a digit). For digits generated as asked classes (a class-conditional
model), ``class_accuracy``: the fraction predicted as the class asked for, and, where several
were asked, ``class_accuracy_by_class``: the same for each class asked. Then where drawings
fail, to tell placement from shape: ``off_canvas``, the fraction with a point outside the
canvas; ``recognised_centred``, the fraction recognised once each drawing is moved by whole
pixels to centre its bounding box (``centred``); ``mean_rows`` and ``mean_strokes`` (rows with
end-of-stroke = 1, the last stroke's included), to set beside the real digits'.

**Rendering** (``render``): pen-down segments between successive points, one pixel wide, as
the builder's thinned strokes are; the move after a pen lift is not drawn. Points stay where the
sequence puts them (1-based x = column + 1), so a digit drawn off the canvas loses what lies
outside it.

**The classifier** is a small CNN trained once on the renderings of the 60,000 training
sequences and cached in ``<data dir>/cache/scorer-<key>.pt``, the key made of the training
data's content, ``SCORER_VERSION`` and the seed (about 3 minutes of one CPU thread, with a
progress bar). Random shifts of up to 2 pixels in training make it judge a digit's shape rather
than MNIST's exact placement, which generated digits do not share.

**Not calling scribbles digits.** A softmax over the ten digits must put all its mass on digits,
and a network trained on digits alone has no reason to be unsure about a shape unlike all of
them: trained so, this network recognises 27% and 53% of two kinds of pen-like scribbles (the
tests' lattice and heading walks). Calibration (temperature scaling on held-out digits) cannot
fix that: it rescales confidence the same way for every input, and held-out digits contain no
scribbles to calibrate against. So the classifier has an 11th class, *not a digit*, trained on
15,000 synthetic scribbles (``isl.tools.scribbles``: smooth random walks of single-pixel steps with
random curvature, noise, length, box and stroke count); its probability is mass the digits do
not get. With it, about 1% of the tests' scribbles (made by generators of their own, with
other seeds) are recognised, at the same test accuracy (0.978 against 0.979 without it, 10,000
test digits; 93% of them recognised).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from isl.data.flags import add_data_flags
from isl.data.published import read_generated
from isl.data.sequences import DataFormatError, StrokeSet
from isl.core.files import atomic_write
from isl.tools.scribbles import scribbles

if TYPE_CHECKING:
    import torch

    from isl.data.sources import MnistSource
    from isl.models.scorer import DigitClassifier

log = logging.getLogger(__name__)

SIZE = 28
SCORER_VERSION = 1
NOT_A_DIGIT = 10           # the 11th class
RECOGNISED = 0.9           # top digit probability from which a drawing counts as that digit
SCRIBBLES = 15_000         # negatives beside the 60,000 digits (a quarter of the training set)
EPOCHS, BATCH, SHIFT = 4, 128, 2


def render(sequences: list[np.ndarray]) -> np.ndarray:
    """(N, 28, 28) uint8 images (1 = ink) of ``dx dy eos eod`` sequences (int or float rows).

    A segment from point t-1 to point t is drawn when the pen is down after point t-1
    (eos = 0 there); it is sampled at max(|dx|, |dy|) + 1 evenly spaced points, each rounded to
    its pixel, which for integer offsets is the usual digital line.
    """
    images = np.zeros((len(sequences), SIZE, SIZE), dtype=np.uint8)
    if not sequences:
        return images
    lengths = np.array([len(s) for s in sequences])
    rows = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1, 4) for s in sequences])
    owner = np.repeat(np.arange(len(sequences)), lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    summed = np.cumsum(rows[:, :2], axis=0)
    points = summed - (summed[first] - rows[first, :2])[owner]   # absolute, per sequence
    drawn = np.flatnonzero((owner[:-1] == owner[1:]) & (rows[:-1, 2] < 0.5))
    a, b = points[drawn], points[drawn + 1]
    samples = np.ceil(np.abs(b - a).max(axis=1)).astype(np.int64) + 1
    segment = np.repeat(np.arange(len(drawn)), samples)
    along = np.arange(len(segment)) - np.repeat(np.cumsum(samples) - samples, samples)
    t = (along / np.maximum(samples - 1, 1)[segment])[:, None]
    pixels = np.rint(a[segment] + t * (b - a)[segment]).astype(np.int64) - 1  # 1-based -> index
    inside = ((pixels >= 0) & (pixels < SIZE)).all(axis=1)
    images[owner[drawn][segment][inside], pixels[inside, 1], pixels[inside, 0]] = 1
    return images


def _shifted(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own random whole-pixel shift of up to SHIFT in x and y."""
    import torch
    import torch.nn.functional as F

    n = len(images)
    padded = F.pad(images, (SHIFT, SHIFT, SHIFT, SHIFT))
    dy, dx = torch.randint(0, 2 * SHIFT + 1, (2, n, 1), generator=generator)
    rows = (torch.arange(SIZE) + dy)[:, :, None]
    cols = (torch.arange(SIZE) + dx)[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols]


def train_classifier(train: StrokeSet, seed: int = 0) -> DigitClassifier:
    """A DigitClassifier fitted to the renderings of ``train`` and SCRIBBLES scribbles; the
    caller's global random state is left as it was."""
    import torch

    from isl.models.scorer import DigitClassifier

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the network's initial weights
        return _fit(DigitClassifier(NOT_A_DIGIT + 1), train, torch.Generator().manual_seed(seed), seed)


def _fit(model: DigitClassifier, train: StrokeSet, generator: torch.Generator, seed: int) -> DigitClassifier:
    import torch
    import torch.nn.functional as F

    digits = [train.sequence(i) for i in range(len(train))]
    images = torch.from_numpy(render(digits + scribbles(SCRIBBLES, seed)))
    labels = torch.cat([torch.from_numpy(train.labels.astype(np.int64)),
                        torch.full((SCRIBBLES,), NOT_A_DIGIT)])
    batches = -(-len(images) // BATCH)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=EPOCHS * batches)
    columns = (TextColumn("training the digit scorer"), BarColumn(), TextColumn("epoch {task.fields[epoch]}"),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("", total=EPOCHS * batches, epoch="")
        for epoch in range(EPOCHS):
            progress.update(task, epoch=f"{epoch + 1}/{EPOCHS}")
            order = torch.randperm(len(images), generator=generator)
            for batch in order.split(BATCH):
                loss = F.cross_entropy(model(_shifted(images[batch], generator)), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                progress.advance(task)
    return model.eval()


def cache_path(train: StrokeSet, data_dir: str | Path, seed: int = 0) -> Path:
    """Where the classifier trained on ``train`` is cached: keyed by the data's content, the
    scorer's version and the seed, so that any of them changing trains a new one."""
    content = hashlib.sha256()
    for array in (train.steps, train.starts, train.labels):
        content.update(np.ascontiguousarray(array).tobytes())
    key = hashlib.sha256(f"{content.hexdigest()}|scorer-{SCORER_VERSION}|seed-{seed}".encode()).hexdigest()[:16]
    return Path(data_dir) / "cache" / f"scorer-{key}.pt"


def load_classifier(source: MnistSource | None = None, seed: int = 0) -> DigitClassifier:
    """The classifier trained on ``source``'s training split (default: ``local_mnist()``),
    from its cache, else trained now and cached (atomically)."""
    import torch

    from isl.data.sources import local_mnist
    from isl.models.scorer import DigitClassifier

    source = source or local_mnist()
    train = source.load("train")
    path = cache_path(train, source.data_dir, seed)
    if path.exists():
        try:
            with torch.device("meta"):  # no initial weights: drawing them would use the global RNG
                model = DigitClassifier(NOT_A_DIGIT + 1)
            model.load_state_dict(torch.load(path, weights_only=True), assign=True)
            return model.eval()
        except Exception as err:  # noqa: BLE001 - a damaged file fails torch.load in many ways
            log.warning("Ignoring unreadable scorer cache %s (%s); retraining.", path, err)
    log.info("Training the digit scorer once (about 3 minutes of one CPU core); it is cached at %s", path)
    start = time.perf_counter()
    model = train_classifier(train, seed)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write(path, buffer.getbuffer())
    log.info("Trained the digit scorer in %.0f s, cached at %s", time.perf_counter() - start, path)
    return model


def probabilities(model: DigitClassifier, sequences: list[np.ndarray]) -> np.ndarray:
    """(N, 11) class probabilities of ``sequences``: digits 0-9, then not a digit."""
    import torch

    images = torch.from_numpy(render(sequences))
    with torch.no_grad():
        return torch.cat([model(part).softmax(-1) for part in images.split(1024)]).numpy()


def _accuracy(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, dict[str, float]]:
    """The fraction of ``predicted`` equal to ``truth``, and the same for each class in ``truth``
    (empty for one class)."""
    hit = predicted == truth
    by_class = {str(c): round(float(hit[truth == c].mean()), 4) for c in np.unique(truth)}
    return round(float(hit.mean()), 4), by_class if len(by_class) > 1 else {}


def score(model: DigitClassifier, sequences: list[np.ndarray], labels=None, classes=None) -> dict:
    """The scores of the module docstring for ``sequences`` (and their ``labels``, if known;
    the ``classes`` they were generated as, if asked for)."""
    if not sequences:
        raise ValueError("no sequences to score")
    p = probabilities(model, sequences)
    predicted = p.argmax(axis=1)
    top = p[:, :NOT_A_DIGIT].max(axis=1)
    counts = np.bincount(predicted, minlength=NOT_A_DIGIT + 1)
    result = {"n": len(sequences)}
    if labels is not None:
        if len(labels) != len(sequences):
            raise ValueError(f"{len(labels)} labels for {len(sequences)} sequences")
        result["accuracy"], by_class = _accuracy(predicted, np.asarray(labels))
        if by_class:  # e.g. generated digits saved with the class each was asked for
            result["accuracy_by_class"] = by_class
    result["recognised"] = round(float((top >= RECOGNISED).mean()), 4)
    result["mean_top_probability"] = round(float(top.mean()), 4)
    result["class_counts"] = {**{str(d): int(counts[d]) for d in range(NOT_A_DIGIT)},
                              "none": int(counts[NOT_A_DIGIT])}
    if classes is not None:
        classes = np.asarray(classes)
        if len(classes) != len(sequences):
            raise ValueError(f"{len(classes)} classes for {len(sequences)} sequences")
        result["class_accuracy"], by_class = _accuracy(predicted, classes)
        if by_class:
            result["class_accuracy_by_class"] = by_class
    # Where a drawing fails: placement (ink off the canvas; recognised once moved to its centre)
    # or shape, and how long and in how many strokes it is drawn.
    moved = probabilities(model, [centred(s) for s in sequences])[:, :NOT_A_DIGIT].max(axis=1)
    result["off_canvas"] = round(float(np.mean([_off_canvas(s) for s in sequences])), 4)
    result["recognised_centred"] = round(float((moved >= RECOGNISED).mean()), 4)
    result["mean_rows"] = round(float(np.mean([len(s) for s in sequences])), 2)
    result["mean_strokes"] = round(float(np.mean([np.asarray(s)[:, 2].sum() for s in sequences])), 2)
    return result


def _points(sequence: np.ndarray) -> np.ndarray:
    """The absolute (x, y) pixel positions of a sequence's rows."""
    return np.cumsum(np.asarray(sequence, dtype=np.float64)[:, :2], axis=0)


def _off_canvas(sequence: np.ndarray) -> bool:
    """Whether some point of the drawing lies outside the 28x28 canvas (1-based pixels)."""
    points = np.rint(_points(sequence))
    return bool(((points < 1) | (points > SIZE)).any())


def centred(sequence: np.ndarray) -> np.ndarray:
    """The drawing moved by whole pixels so that its bounding box is centred on the canvas: the
    same shape, rendered the same way, wherever its start point put it."""
    points = _points(sequence)
    shift = np.floor((SIZE + 2) / 2 - (points.min(axis=0) + points.max(axis=0)) / 2)  # half rounds up
    moved = np.asarray(sequence, dtype=np.float32).copy()
    moved[0, :2] += shift
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isl.tools.score", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("train", "test"), default="test",
                        help="which split to score, of MNIST or of --sequences (default test)")
    parser.add_argument("--n", type=int, default=None, help="only the first N sequences")
    parser.add_argument("--sequences", type=Path, default=None, metavar="DIR",
                        help="score the files in DIR (published format, as isl.data.build "
                             "--format original writes them) instead of the MNIST build")
    add_data_flags(parser)
    args = parser.parse_args(argv)
    if args.n is not None and args.n < 1:
        parser.error("--n must be >= 1")

    from isl.data.sources import local_mnist

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # on stderr: stdout is the JSON
    source = local_mnist(args.data_dir, args.mnist_dir)
    try:
        if args.sequences:  # a folder without labels (generated digits) is scored without accuracy
            sequences, labels = read_generated(args.sequences, args.split, limit=args.n)
        else:
            strokes = source.load(args.split, args.n)
            sequences, labels = [strokes.sequence(i) for i in range(len(strokes))], strokes.labels
    except DataFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = load_classifier(source)
    print(json.dumps(score(model, sequences, labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
