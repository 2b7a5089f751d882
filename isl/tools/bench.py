"""Training-speed benchmarks, each printing one JSON line.

    python -m isl.tools.bench train --model lstm --batch-seqs 50 --seq-len 40 --steps 30
    python -m isl.tools.bench real --model lstm --steps 40
    python -m isl.tools.bench run experiment=exp1 curriculum=regular budget.points=2000000

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

``run``: where the wall time of one run.py run goes (its overrides as run.py takes them, in a
temporary run directory): the seconds and shares of the training steps, test evaluations, data
loading, checkpoints, the curriculum and the rest (setup, the data's first load), timed by
Lightning's SimpleProfiler; ``logging`` (sending metrics to the loggers) is part of the steps
and the evaluations.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings

from isl.data.flags import add_data_flags


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m isl.tools.bench")
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
    # real_benchmark's own source, not local_mnist: --mnist-dir is searched after $ISL_MNIST_DIR.
    add_data_flags(real, data_dir="./data", mnist_dir="$ISL_MNIST_DIR, else <data-dir>/mnist or a download; "
                   "a folder given is searched after $ISL_MNIST_DIR")
    real.set_defaults(data_dir="data")
    run = commands.add_parser("run", help="the split of one run's wall time")
    run.add_argument("overrides", nargs="*", help="run.py's overrides, e.g. experiment=exp1 budget.points=2000000")
    args = parser.parse_args(argv)
    from isl.tools.timing import real_benchmark, run_split, train_benchmark

    warnings.filterwarnings("ignore")
    # Every Trainer announces its devices; the result is the JSON line.
    lightning = logging.getLogger("lightning.pytorch")
    level = lightning.level
    lightning.setLevel(logging.WARNING)
    try:
        print(json.dumps({"train": train_benchmark, "real": real_benchmark, "run": run_split}[args.command](args)))
    finally:
        lightning.setLevel(level)


if __name__ == "__main__":
    main()
