"""Generate digits from a trained next-step predictor, one pen step at a time.

    python -m isl.tools.generate runs/<run>/checkpoints/last.ckpt --n 16 --out digits.png
        [--seed 0] [--temperature 1.0] [--bias 0.0] [--whole-pixels] [--max-steps 100]
        [--prime K | --start X Y] [--digit D] [--guidance W] [--cols 8] [--score] [--save DIR]

**How a digit is generated.** The network predicts the distribution of the next row
``dx dy eos eod`` from the rows so far (Graves 2013, section 4). Generation feeds it one row, draws
the next row from its prediction (``SequenceMDN.sample_step``; either head, ``model.head``), feeds that row back in with the
LSTM state carried over, and so on until the drawn end-of-digit flag is 1 or the length limit is
reached. All ``n`` digits run as one batch; each stops on its own.

**The first row.** Row 0 of every sequence is the absolute start point, which the network was
never trained to predict (step t predicts step t + 1), so generation has to be given one. The
command draws each digit's start point from the start points of the 60,000 MNIST training
sequences (``isl.tools.starts``; the builder starts a digit at the ink endpoint nearest the
top-left corner), so the digits begin where digits begin, each at its own place, reproducibly
under ``--seed``; a digit asked for a class (``--digit``, a class-conditional model) starts where
training digits of that class start. ``--start X Y`` starts them all at one point instead. ``generate`` itself, given
no start, uses ``DEFAULT_START`` = (13, 8) pixels (1-based x, y), the median of those start
points, and then needs no data. With ``prime`` the first rows, start point included, are those
of real digits instead.

**What comes out** is the published row form, in pixels: row 0 the start point, offsets converted
back from input units with the model's ``to_pixels`` (its ``offset_shift`` and ``offset_scale``;
kept as floats, unrounded: the drawing does not need integers), the eos/eod flags as drawn. Two
rows are made canonical as in the data, and fed back that way, since that is what the network
saw in training: a pen-lift row (eos = 1) carries no offset (``0 0 1 0``), and the row with
eod = 1 is the end row ``0 0 1 1``. A digit cut at the length limit gets the end row appended,
so every sequence ends with ``0 0 1 1``.

**Temperature** (``--temperature T`` > 0; 1, plain sampling, by default): the moves head divides
its logits by T; the mixture-density head its log mixture weights and the end-of-stroke and
end-of-digit logits, and multiplies its variances by T (sketch-rnn, Ha & Eck 2017). Below 1 the
digits come out cleaner and less varied.

**Biased sampling** (``bias`` >= 0, Graves section 5.4; the mixture-density head only): standard deviations shrink by
``exp(-bias)`` and mixture weights sharpen, giving cleaner, less varied digits; 0 samples plainly.
The bias applies to the offsets only; the eos/eod flags are always drawn from their predicted
probabilities.

**Whole pixels** (``--whole-pixels``): the data's offsets are whole pixels, so the network was
only ever fed whole-pixel rows; a drawn offset (a real number) fed back as it is gives it inputs
off that lattice at every step. With the option each drawn offset is rounded to whole pixels
before it is kept and fed back, and the digits come out in the data's integer form. Off by
default, as in the paper's code, which fed back the real-valued draw; docs/results.md section 7
measures what it changes.

**Priming** (``--prime K``): the first K rows of the first ``n`` test digits are fed through the
network as they are (teacher forcing), then the network finishes each digit. A digit shorter than
K + 1 rows is primed with all its rows but the end row. The grid draws the primed part in blue.

**Class-conditional generation** (a model trained with ``model.class_inputs=true``, which reads
the digit's class one-hot beside every row): ``--digit D`` asks it for D in every sequence;
without ``--digit`` the classes cycle through 0-9 (sequence i is asked for i mod 10, so 100
sequences are ten of each); under ``--prime`` each sequence is given its real digit's label.
``--digit`` with a model that reads no class is refused.

**Saving** (``--save DIR``): the digits in the published format, ``testimg-<i>-inputdata.txt``,
and ``testlabels.txt`` holding the class each was asked for, when there is one, so that any
scorer can read them (``python -m isl.tools.score --sequences DIR``). The files hold whole pixels: a
mixture-density digit's points are rounded to their pixels (as the scorer draws them).

**Classifier-free guidance** (``--guidance w``, a class-conditional model trained with
``model.class_dropout`` > 0, so that it also predicts without the class): at every step the
model is run twice, with the class asked for and with none (each on its own state), and the
row is drawn from the conditional logits moved w times further from the unconditional ones
(Ho & Salimans 2022; for the mixture-density head its weights' and flags' logits).

**Scoring** (``--score``): the digit scorer (``isl.tools.score``) classifies the generated digits and
prints its JSON line (with ``accuracy`` against the primed digits' labels under ``--prime``; for
a class-conditional model, ``class_accuracy``: the fraction the scorer assigns to the class
asked for, and per class where several were asked), with ``reached_max_steps`` added: the
fraction cut at ``--max-steps`` before drawing end-of-digit.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from isl.core.checks import non_negative_float_arg, positive_float_arg, positive_int, positive_int_arg
from isl.data.flags import add_data_flags
from isl.data.published import write_generated
from isl.tools.starts import real_prefixes, training_starts

if TYPE_CHECKING:
    import torch

# Median start point (x, y; 1-based pixels) of the MNIST training digits as isl.data.pipeline
# makes them; see the module docstring.
DEFAULT_START = (13.0, 8.0)
END_ROW = (0.0, 0.0, 1.0, 1.0)


def generate(model, n: int, generator: torch.Generator | None = None, bias: float = 0.0,
             max_steps: int = 100, prime: list[np.ndarray] | None = None,
             start=DEFAULT_START, classes=None, whole_pixels: bool = False,
             temperature: float = 1.0, guidance: float = 0.0) -> list[np.ndarray]:
    """Generate ``n`` stroke sequences with ``model`` (a SequenceMDN), one step at a time.

    Returns ``n`` float32 arrays (T, 4) of rows ``dx dy eos eod`` in pixels, row 0 the start
    point, the last row ``0 0 1 1``. ``max_steps`` bounds the rows before the end row (the start
    point and primed rows included): a sequence has at most ``max_steps + 1`` rows. ``prime``, if
    given, holds one real prefix per sequence ((K_i, 4) rows in pixels, published form, no end
    row), fed through the network before sampling takes over; otherwise sequence i starts from
    the single row ``(*start[i], 0, 0)``, ``start`` being one point (x, y) for all or one per
    sequence ((n, 2), as ``training_starts`` draws them). ``generator`` (on the model's device)
    makes the result reproducible; ``bias`` >= 0 sharpens the sampled offsets (Graves section 5.4).
    ``classes`` (n digits 0-9): the class each sequence is to be, for a class-conditional model
    (``model.class_inputs``), which needs them; any other takes none. ``whole_pixels`` rounds
    each drawn offset to whole pixels before it is kept and fed back; ``temperature`` > 0 (1:
    plain sampling) tempers every draw (see the module docstring); ``guidance`` w > 0 (with
    ``classes``) draws from the prediction moved w times away from the same model's given no class.
    """
    import torch

    from isl.models.loading import check_class_inputs
    from isl.models.module import NO_CLASS

    positive_int("n", n)
    if guidance and (classes is None or not guidance > 0):
        raise ValueError(f"guidance must be > 0 and needs classes asked for, got {guidance!r}")
    if classes is not None:
        classes = np.asarray(classes)
        if classes.shape != (n,) or not np.isin(classes, np.arange(model.hparams.classes)).all():
            raise ValueError(f"classes must be {n} digits 0-{model.hparams.classes - 1}, got {classes!r}")
    check_class_inputs(model, classes is not None, "generating with classes" if classes is not None
                       else "generating without classes")
    if not bias >= 0:
        raise ValueError(f"bias must be >= 0, got {bias!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    positive_int("max_steps", max_steps)
    if prime is None:
        if np.shape(start) not in ((2,), (n, 2)):
            raise ValueError(f"start must be one point (x, y) or one per sequence, shape ({n}, 2); "
                             f"got shape {np.shape(start)}")
        starts = np.broadcast_to(np.asarray(start, dtype=np.float32), (n, 2))
        prefixes = [np.array([[*xy, 0.0, 0.0]], dtype=np.float32) for xy in starts]
    else:
        if len(prime) != n:
            raise ValueError(f"prime holds {len(prime)} prefixes for n = {n} sequences")
        prefixes = [np.asarray(p, dtype=np.float32) for p in prime]
        for i, p in enumerate(prefixes):
            if p.ndim != 2 or p.shape[1] != 4 or not 1 <= len(p) <= max_steps:
                raise ValueError(f"prime[{i}] must have 1 to max_steps = {max_steps} rows of 4 "
                                 f"columns, got shape {p.shape}")
            if (p[:, 3] != 0).any():
                raise ValueError(f"prime[{i}] contains an end-of-digit row; give the prefix before it")

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = model.offset_scale.device
            conditioning = None if classes is None else torch.as_tensor(classes, device=device)

            def units(x: torch.Tensor) -> torch.Tensor:  # rows in pixels -> as collate feeds them
                return torch.cat([model.to_units(x[:, :2]), x[:, 2:]], dim=-1)

            rows = [list(torch.from_numpy(p)) for p in prefixes]  # rows so far, in pixels (CPU)
            done = [False] * n
            x = torch.stack([r[0] for r in rows]).to(device)      # (n, 4) row to feed, pixels
            state = free_state = None
            t = 0  # x holds row t of every unfinished sequence
            while not all(done):
                mixture, state = model(units(x).unsqueeze(1), state, classes=conditioning)
                if guidance:  # the same model without the class, on its own state
                    free, free_state = model(units(x).unsqueeze(1), free_state,
                                             classes=torch.full_like(conditioning, NO_CLASS))
                    mixture = mixture.guide(free, guidance)
                drawn = model.sample_step(mixture, generator, bias, temperature).squeeze(1)
                drawn = torch.cat([model.to_pixels(drawn[:, :2]), drawn[:, 2:]], dim=-1)  # (n, 4) pixels
                drawn = drawn.float().cpu()
                if whole_pixels:
                    drawn[:, :2] = drawn[:, :2].round()
                following = []
                for i in range(n):
                    if done[i]:
                        following.append(torch.zeros(4))  # fed but unused: the batch runs on
                        continue
                    if t + 1 < len(rows[i]):                  # still inside the primed prefix
                        following.append(rows[i][t + 1])
                        continue
                    row = canonical(drawn[i])
                    if row[3] == 1 or len(rows[i]) == max_steps:
                        rows[i].append(torch.tensor(END_ROW))
                        done[i] = True
                    else:
                        rows[i].append(row)
                    following.append(rows[i][-1])
                x = torch.stack(following).to(device)
                t += 1
    finally:
        model.train(was_training)
    return [torch.stack(r).numpy().astype(np.float32) for r in rows]


def canonical(row: torch.Tensor) -> torch.Tensor:
    """A drawn row in the data's form: pen-lift and end rows carry no offset, an end row is also
    an end of stroke."""
    import torch

    if row[3] == 1:
        return torch.tensor(END_ROW)
    if row[2] == 1:
        return torch.tensor((0.0, 0.0, 1.0, 0.0))
    return row


def on_whole_pixels(sequence: np.ndarray) -> np.ndarray:
    """A generated sequence with its points rounded to their pixels (offsets re-taken between
    them), as published files hold them; whole-pixel sequences come back unchanged."""
    points = np.rint(np.cumsum(np.asarray(sequence, dtype=np.float64)[:, :2], axis=0))
    rows = np.asarray(sequence, dtype=np.float64).copy()
    rows[:, :2] = np.diff(points, axis=0, prepend=0.0)
    return rows


def asked_classes(model, n: int, digit: int | None = None, labels=None) -> np.ndarray | None:
    """The class each of ``n`` sequences is asked to be, for a class-conditional model (None for
    any other): ``digit`` for all, else the primed digits' ``labels``, else 0-9 in turn."""
    if not model.hparams.class_inputs:
        return None
    if digit is not None:
        return np.full(n, digit)
    return np.asarray(labels) if labels is not None else np.arange(n) % model.hparams.classes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isl.tools.generate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a SequenceMDN checkpoint (runs/.../checkpoints/last.ckpt)")
    parser.add_argument("--n", type=positive_int_arg, default=16, help="digits to generate (default 16)")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--temperature", type=positive_float_arg, default=1.0,
                        help="sampling temperature > 0 for either head (default 1: plain sampling)")
    parser.add_argument("--bias", type=non_negative_float_arg, default=0.0,
                        help="sampling bias >= 0 of the mixture-density head, Graves section 5.4 "
                             "(default 0: plain sampling)")
    parser.add_argument("--whole-pixels", action="store_true",
                        help="round each drawn offset to whole pixels, as the data's are, before it "
                             "is fed back (default: kept as drawn, as the paper's code does)")
    parser.add_argument("--max-steps", type=positive_int_arg, default=100,
                        help="most rows per digit before the end row (default 100)")
    parser.add_argument("--prime", type=int, default=None, metavar="K",
                        help="start from the first K rows of the first n test digits")
    parser.add_argument("--start", type=float, nargs=2, default=None, metavar=("X", "Y"),
                        help="one start point for all digits, in pixels, 1-based (default: each drawn "
                             "from the training digits' start points)")
    parser.add_argument("--digit", type=int, choices=range(10), default=None, metavar="D",
                        help="the digit to draw, for a model trained with model.class_inputs=true "
                             "(default for one: digits 0-9 in turn)")
    parser.add_argument("--guidance", type=non_negative_float_arg, default=0.0, metavar="W",
                        help="classifier-free guidance weight > 0 for a class-conditional model trained with "
                             "model.class_dropout > 0 (default 0: none)")
    parser.add_argument("--cols", type=positive_int_arg, default=8, help="digits per grid row (default 8)")
    parser.add_argument("--save", type=Path, default=None, metavar="DIR",
                        help="also write the digits to DIR in the published format (testimg-<i>-inputdata.txt, "
                             "testlabels.txt with the classes asked for)")
    parser.add_argument("--score", action="store_true",
                        help="classify the generated digits with isl.tools.score and print its JSON line")
    add_data_flags(parser)
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # e.g. the scorer trained on first use
    if args.prime is not None and not 1 <= args.prime <= args.max_steps:
        parser.error("--prime must be between 1 and --max-steps")
    if args.prime is not None and args.start is not None:
        parser.error("--start and --prime exclude each other: a primed digit starts where its real digit does")
    if args.prime is not None and args.digit is not None:
        parser.error("--digit and --prime exclude each other: a primed digit is given its real digit's class")

    import torch

    from isl.training.checkpoints import write_sidecar
    from isl.data.sources import local_mnist
    from isl.models.loading import check_class_inputs
    from isl.models.module import load_model
    from isl.viz.strokes import save_grid

    model = load_model(args.checkpoint, args.device)
    if args.bias and model.hparams.head != "mdn":
        parser.error(f"--bias sharpens the mixture-density head; this model has model.head="
                     f"{model.hparams.head}: use --temperature below 1")
    if args.digit is not None or args.guidance:
        try:
            check_class_inputs(model, True, "--digit" if args.digit is not None else "--guidance", args.checkpoint)
        except ValueError as err:
            parser.error(str(err))
    if args.guidance and not model.hparams.class_dropout:
        parser.error("--guidance needs a model trained with model.class_dropout > 0: this one never "
                     "learned to predict without the class")
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    source = local_mnist(args.data_dir, args.mnist_dir)
    prime = primed = labels = None
    if args.prime is not None:
        prime, labels = real_prefixes(args.prime, args.n, source)
        primed = [len(p) for p in prime]
    classes = asked_classes(model, args.n, args.digit, labels)
    start = args.start or training_starts(args.n, np.random.default_rng(args.seed), source,
                                          None if prime is not None else classes)
    sequences = generate(model, args.n, generator, bias=args.bias, max_steps=args.max_steps,
                         prime=prime, start=start, classes=classes, whole_pixels=args.whole_pixels,
                         temperature=args.temperature, guidance=args.guidance)
    if prime is None:
        titles = [f"{len(s)} rows" for s in sequences]
        if classes is not None:
            titles = [f"{c}: {title}" for c, title in zip(classes, titles)]
    else:
        titles = [f"{label}: {k}+{len(s) - k}" for label, k, s in zip(labels, primed, sequences)]
    path = save_grid(sequences, titles, args.out, args.cols, primed)
    write_sidecar(path, args.checkpoint, ["python", "-m", "isl.tools.generate", *(sys.argv[1:] if argv is None else argv)])
    print(f"generated {len(sequences)} digits: {path}")
    if args.save:
        folder = write_generated([on_whole_pixels(s) for s in sequences], args.save, classes)
        print(f"saved in the published format: {folder}")
    if args.score:
        from isl.tools.score import load_classifier, score
        result = score(load_classifier(source), sequences, labels, classes)
        # Digits that never drew end-of-digit and were cut at the length limit.
        result["reached_max_steps"] = round(float(np.mean([len(s) > args.max_steps for s in sequences])), 4)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
