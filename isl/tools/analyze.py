"""Visual analyses of a trained model: ``python -m isl.tools.analyze CHECKPOINT --out DIR``.

Writes, for the first test sequence of each of the given classes (default 0, 3 and 9, the
paper's examples), the class belief along the sequence (``class-belief-<digit>.png``) and the
summed predicted next-point density over the digit (``density-<digit>.png``). With ``--along``,
also ``density-along-training.gif``: the same densities for those digits from every copy of the
weights the run kept on its way (``checkpoints/points-<points>.ckpt`` beside the checkpoint, as
``checkpoint.keep_per_decade`` keeps them), one frame per copy. Each figure is
drawn only from an output the checkpoint was trained on: a transfer classifier
(``model.prediction_weight=0``) has a mixture head that no loss shaped, a predictor
(``model.class_loss_weight=0``) an untrained class head. Both are about a network that reads
the strokes alone: a class-conditional one (``model.class_inputs=true``), told the class, is
refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from isl.data.flags import add_data_flags


def parse_digits(text: str) -> list[int]:
    try:
        digits = [int(d) for d in text.split(",") if d.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--digits takes a comma-separated list of 0-9, got {text!r}")
    if not digits or any(not 0 <= d <= 9 for d in digits):
        raise argparse.ArgumentTypeError(f"--digits takes a comma-separated list of 0-9, got {text!r}")
    return digits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m isl.tools.analyze", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a SequenceMDN checkpoint (runs/.../checkpoints/last.ckpt)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the figures (default: figures/ in the checkpoint's run directory)")
    parser.add_argument("--digits", type=parse_digits, default=[0, 3, 9],
                        help="classes to show, comma-separated (default: 0,3,9)")
    add_data_flags(parser)
    parser.add_argument("--max-length", type=int, default=100,
                        help="truncate sequences to this many steps, as training does (default: 100)")
    parser.add_argument("--along", action="store_true",
                        help="also the densities from every copy of the weights kept along training, as a GIF")
    parser.add_argument("--device", default="cpu", help="torch device for the model (default: cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: checkpoint not found: {args.checkpoint}", file=sys.stderr)
        return 2
    job_dir = args.checkpoint.resolve().parent.parent
    args.out = args.out or job_dir / "figures"
    from isl.training.checkpoints import kept_copies, write_sidecar
    from isl.data.sources import local_mnist
    from isl.models.loading import check_class_inputs
    from isl.models.module import load_model
    from isl.viz.belief import class_probabilities, plot_class_belief
    from isl.viz.density import density_map, plot_density
    from isl.viz.snapshots import write_gif

    model = load_model(args.checkpoint, args.device)
    try:
        check_class_inputs(model, False, "isl.tools.analyze (the class belief)", str(args.checkpoint))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    draw_belief = bool(model.hparams.class_loss_weight)
    draw_density = bool(model.hparams.prediction_weight)
    if not draw_belief:
        print("no class belief: trained without the class loss (model.class_loss_weight=0), "
              "its class outputs are untrained", file=sys.stderr)
    if not draw_density:
        print("no density: trained without the prediction loss (model.prediction_weight=0), "
              "its mixture is not a prediction", file=sys.stderr)
    copies = kept_copies(job_dir) if args.along else []
    if args.along and not (draw_density and copies):
        why = "its mixture is not a prediction" if not draw_density else \
            f"{job_dir} kept no copies of its weights (train with checkpoint.keep_per_decade)"
        print(f"error: --along: {why}", file=sys.stderr)
        return 2
    test = local_mnist(args.data_dir, args.mnist_dir).load("test")
    command = ["python", "-m", "isl.tools.analyze", *(sys.argv[1:] if argv is None else argv)]

    def drawn(figure: Path) -> str:  # each figure with its record (isl.training.checkpoints.write_sidecar)
        write_sidecar(figure, args.checkpoint, command)
        return str(figure)

    shown = []  # (steps, digit) of the digits drawn, for --along
    for digit in args.digits:
        hits = np.flatnonzero(test.labels == digit)
        if not len(hits):
            print(f"no test sequence of class {digit}", file=sys.stderr)
            continue
        i = int(hits[0])
        steps = test.sequence(i)[:args.max_length]
        lines = [f"digit {digit} (test #{i}, {len(steps)} steps)"]
        if draw_belief:
            final = class_probabilities(model, steps)[-1]
            lines[0] += f": final p({digit}) = {final[digit]:.2f}, guess {int(final.argmax())}"
            lines.append(drawn(plot_class_belief(model, steps, digit, args.out / f"class-belief-{digit}.png")))
        if draw_density:
            lines.append(drawn(plot_density(model, steps, args.out / f"density-{digit}.png",
                                            title=f"test sequence #{i}, a {digit}")))
            shown.append((steps, digit))
        print("\n  ".join(lines))
    if copies and shown:
        frames = []
        for points, path in copies:
            kept = load_model(path, args.device)
            frames.append((points, [density_map(kept, steps) for steps, _ in shown]))
        gif = write_gif(frames, *zip(*shown), args.out / "density-along-training.gif", fps=2)
        print(f"{len(frames)} copies from {copies[0][0]:,} to {copies[-1][0]:,} points: {drawn(gif)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
