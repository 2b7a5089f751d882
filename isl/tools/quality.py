"""Generation quality along training: the digit scorer on the weights a sweep kept on its way.

    python -m isl.tools.quality runs/multirun/experiment-exp4 [--n 500] [--seed 0] [--temperature 1] [--bias 0] [--out DIR]
    python -m isl.tools.quality runs/multirun/heads-moves-std-conditional --guidance 1

**What is measured.** For every job of the sweep (``isl.tools.sweeps``) and every copy of its weights
kept along training (``checkpoint.keep_per_decade``: ``checkpoints/points-<points>.ckpt``), ``n``
unprimed digits are generated (``isl.tools.generate``: start points drawn from the training digits',
the same starts and random stream for every copy, under ``--seed``; a class-conditional model's
from training digits of the class asked for) at ``--temperature`` and scored (``isl.tools.score``):
the fraction *recognised* (top digit probability >= 0.9), the mean top probability and, for a
class-conditional model (asked for 0-9 in turn), the fraction drawn as the class asked for; and,
to tell placement from shape (``isl.tools.score``), the fraction recognised once centred on the canvas
and the fraction with ink off it.

**The digits behind the scores.** For a finished job, the digits generated from its last kept
copy (the end of its budget) are kept in ``generated/<set>.tar.gz`` (the ``isl.tools.generate --save``
folder, packed): ``unprimed-t1`` for 500 unprimed digits at temperature 1 and ``--seed 0``,
``conditional-t1`` for a class-conditional model's 1,000 (``--n-conditional``: 100 asked for each
class), other settings named after them (``unprimed-t0.7``, ``-bias1``, ``-n200``, ``-seed3``,
``-max50``; ``conditional-t1-g1`` with ``--guidance 1``). ``isl.tools.records`` keeps them, so the scores can be checked by any recogniser
(``python -m isl.tools.score --sequences DIR`` on the unpacked folder).

**Resumable.** Each copy's scores are appended to the job's ``generation.csv`` as soon as they
exist, with the settings they were made with; a later call scores only the copies (and settings)
not yet there, so the same command follows a running sweep and survives a kill.

**What comes out** in ``<sweep>/report/`` (or ``--out``): ``generation.png``, the recognised
fraction against points processed, one panel per cell and one line per curriculum (mean, and
min-max over seeds), with the real test digits' recognised fraction (the first ``n`` test
sequences, same scorer) as the reference line; ``generation.md``, the same as a table (mean ±
std over seeds at each kept point), also printed. Seeds are aligned by the kept point each copy
serves (the last of ``isl.training.schedule.log_spaced`` at or below its points); points some seed has
not reached yet are left out, naming the jobs.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from isl.core.checks import non_negative_float_arg, positive_float_arg, positive_int_arg
from isl.data.flags import add_data_flags
from isl.data.published import write_generated
from isl.core.files import atomic_write
from isl.tools.generate import asked_classes, generate, on_whole_pixels
from isl.training.schedule import log_spaced
from isl.tools.score import load_classifier, score
from isl.tools.starts import training_starts
from isl.tools.sweeps import Curve, find_jobs, load_job, load_yaml, mark_variants, ordered

SCORES = "generation.csv"
SETTINGS = ("n", "seed", "bias", "max_steps", "temperature", "guidance")
# What a setting was before it had a column (generation.csv files written before it existed).
BEFORE = {"temperature": 1.0, "guidance": 0.0}
METRICS = ("recognised", "mean_top_probability", "class_accuracy", "recognised_centred", "off_canvas")
FIELDS = ("points", *SETTINGS, *METRICS)


def read_scores(path: Path, settings: dict) -> dict[int, dict[str, float]]:
    """The rows of a job's ``generation.csv`` made with ``settings``, by points."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f)
                if all(float(r.get(k) or BEFORE[k]) == float(settings[k]) for k in SETTINGS)]
    return {int(r["points"]): {m: float(r[m]) if r[m] else np.nan for m in METRICS} for r in rows}


def _guidable(job_dir: Path) -> bool:
    model = load_yaml(job_dir / ".hydra" / "config.yaml").get("model") or {}
    return bool(model.get("class_inputs")) and bool(model.get("class_dropout"))


def _add_columns(path: Path) -> None:
    """Give a ``generation.csv`` written before a setting had a column today's header (its rows
    the setting's value of then, ``BEFORE``), so that rows appended now line up."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) == FIELDS:
            return
        rows = [{**{k: BEFORE[k] for k in BEFORE if not r.get(k)}, **{k: v for k, v in r.items() if v}} for r in reader]
    text = io.StringIO()
    writer = csv.DictWriter(text, FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, text.getvalue().encode())


def conditional(job_dir: Path) -> bool:
    """Whether the job's model is class-conditional (``model.class_inputs``)."""
    return bool((load_yaml(job_dir / ".hydra" / "config.yaml").get("model") or {}).get("class_inputs", False))


def set_name(settings: dict, class_inputs: bool) -> str:
    """The name of a set of generated digits (see the module docstring)."""
    standard = {"n": 1000 if class_inputs else 500, "seed": 0, "bias": 0.0, "max_steps": 100}
    standard["guidance"] = 0.0
    extras = [f"{label}{settings[key]:g}" for key, label in (("bias", "bias"), ("guidance", "g"), ("n", "n"),
                                                              ("seed", "seed"), ("max_steps", "max"))
              if float(settings[key]) != standard[key]]
    return "-".join([f"{'conditional' if class_inputs else 'unprimed'}-t{settings['temperature']:g}", *extras])


def generate_copy(checkpoint: Path, starts: dict[bool, np.ndarray], settings: dict):
    """(``settings["n"]`` unprimed digits generated from ``checkpoint``, the classes they were
    asked for or None); ``starts`` by whether the model is class-conditional (see ``main``)."""
    import torch

    from isl.models.module import load_model

    model = load_model(checkpoint)
    classes = asked_classes(model, settings["n"])
    generator = torch.Generator().manual_seed(settings["seed"])
    digits = generate(model, settings["n"], generator, bias=settings["bias"], max_steps=settings["max_steps"],
                      start=starts[classes is not None][:settings["n"]], classes=classes,
                      temperature=settings["temperature"], guidance=settings["guidance"] if classes is not None else 0.0)
    return digits, classes


def save_set(path: Path, digits: list[np.ndarray], classes) -> None:
    """``digits`` as the ``isl.tools.generate --save`` folder, packed into ``path`` (.tar.gz)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_generated([on_whole_pixels(d) for d in digits], Path(tmp) / path.name.split(".")[0],
                                 classes)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(folder, arcname=folder.name)
    atomic_write(path, buffer.getvalue())


def score_job(job_dir: Path, scorer, starts: dict[bool, np.ndarray], settings: dict, echo=print) -> dict[int, dict[str, float]]:
    """Every kept copy of ``job_dir`` scored under ``settings`` (``n`` replaced by the
    conditional one for a class-conditional model): those in its ``generation.csv`` read back,
    the others scored now and appended to it one by one; a finished job's last copy's digits
    kept in ``generated/`` (see the module docstring)."""
    from isl.training.checkpoints import kept_copies

    class_inputs = conditional(job_dir)
    n = settings["n_conditional"] if class_inputs else settings["n"]
    settings = {**{k: v for k, v in settings.items() if k != "n_conditional"}, "n": n}
    path = job_dir / SCORES
    done = read_scores(path, settings)
    copies = kept_copies(job_dir)
    kept = job_dir / "generated" / f"{set_name(settings, class_inputs)}.tar.gz"
    for points, checkpoint in copies:
        last = (points, checkpoint) == copies[-1] and (job_dir / "result.json").is_file()
        if points in done and not (last and not kept.is_file()):
            continue
        digits, classes = generate_copy(checkpoint, starts, settings)
        if last:
            save_set(kept, digits, classes)
        if points in done:  # scored before the digits were kept: the same digits (same seed)
            continue
        result = score(scorer, digits, classes=classes)
        done[points] = {m: result.get(m, np.nan) for m in METRICS}
        new = not path.is_file()
        if not new:
            _add_columns(path)
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({"points": points, **settings, **{m: _cell(done[points][m]) for m in METRICS}})
        echo(f"{job_dir.name} at {points:,} points: recognised {done[points]['recognised']:.3f}")
    return dict(sorted(done.items()))


def _cell(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.4f}"


def served(points: list[int], kept: list[int]) -> list[int]:
    """The kept point each copy serves: the last scheduled one at or below its points."""
    return [max((k for k in kept if k <= p), default=p) for p in points]


def curves(sweep: Path, scores: dict[Path, dict[int, dict[str, float]]], reference: float) -> dict:
    """{cell: {curriculum: Curve}} of the recognised fraction, seeds aligned by kept point."""
    jobs = {d: load_job(sweep, d) for d in scores}
    mark_variants(list(jobs.values()))
    groups: dict[tuple, dict[str, list[Path]]] = {}
    for d, job in jobs.items():
        if scores[d] and job.error is None:
            groups.setdefault((job.batching, job.model, job.variant), {}).setdefault(job.curriculum, []).append(d)
    cells = {}
    for cell in sorted(groups, key=lambda c: (ordered("batching", c[0]), ordered("model", c[1]), c[2])):
        cells[cell] = {}
        for curriculum in sorted(groups[cell], key=lambda c: ordered("curriculum", c)):
            members = sorted(groups[cell][curriculum], key=lambda d: (jobs[d].seed or 0, jobs[d].num))
            by_kept = []
            for d in members:
                config = load_yaml(d / ".hydra" / "config.yaml")
                kept = log_spaced(int(config["budget"]["points"]), int(config["checkpoint"]["keep_per_decade"]))
                points = list(scores[d])
                by_kept.append(dict(zip(served(points, kept), points)))
            common = sorted(set.intersection(*(set(b) for b in by_kept)))
            warnings = [f"{jobs[d].name}: no copy scored yet at {k:,} points"
                        for d, b in zip(members, by_kept) for k in sorted(set().union(*by_kept) - set(b))]
            actual = np.array([[b[k] for k in common] for b in by_kept], dtype=float)
            values = {m: np.array([[scores[d][b[k]][m] for k in common] for d, b in zip(members, by_kept)])
                      for m in METRICS}
            cells[cell][curriculum] = Curve(curriculum, [jobs[d].seed for d in members], actual.mean(axis=0),
                                            values, {"real_recognised": reference}, warnings)
    return cells


def table(cells: dict, digits: str) -> str:
    """The curves as Markdown: per cell, recognised (mean ± std over seeds) at each kept point."""
    lines = []
    for (batching, model, variant), by_curriculum in cells.items():
        lines += [f"### batches by {batching}, {model}" + (f", {variant}" if variant else ""), "",
                  "| curriculum | seeds | points | " + " | ".join(m.replace("_", " ") for m in METRICS) + " |",
                  "| --- | ---: | ---: |" + " ---: |" * len(METRICS)]
        for name, curve in by_curriculum.items():
            for i, points in enumerate(curve.points):
                row = [_mean_std(curve.values[m][:, i]) for m in METRICS]
                lines.append(f"| {name} | {len(curve.seeds)} | {points:,.0f} | " + " | ".join(row) + " |")
            lines += [f"- {w}" for w in curve.warnings]
        lines.append("")
    return "\n".join(lines) + f"\n{digits}; recognised: top digit probability >= 0.9.\n"


def _mean_std(values: np.ndarray) -> str:
    if np.isnan(values).all():
        return "–"
    return f"{values.mean():.3f}" + (f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isl.tools.quality", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="the sweep directory (runs/multirun/<sweep>)")
    parser.add_argument("--n", type=positive_int_arg, default=500, help="digits per kept copy (default 500)")
    parser.add_argument("--n-conditional", type=positive_int_arg, default=1000,
                        help="digits per kept copy of a class-conditional model, asked for 0-9 in turn (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the starts and the sampling (default 0)")
    parser.add_argument("--temperature", type=positive_float_arg, default=1.0,
                        help="sampling temperature > 0 (default 1: plain sampling)")
    parser.add_argument("--bias", type=non_negative_float_arg, default=0.0,
                        help="sampling bias >= 0, mixture-density heads only (default 0)")
    parser.add_argument("--guidance", type=non_negative_float_arg, default=0.0, metavar="W",
                        help="classifier-free guidance weight >= 0 for class-conditional models trained with "
                             "model.class_dropout > 0 (isl.tools.generate --guidance; default 0: none)")
    parser.add_argument("--max-steps", type=positive_int_arg, default=100, help="most rows per digit (default 100)")
    parser.add_argument("--out", type=Path, help="where to write (default: <sweep>/report)")
    add_data_flags(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # e.g. the scorer trained on first use
    if not args.sweep.is_dir():
        parser.error(f"no sweep directory at {args.sweep}")

    from isl.training.checkpoints import kept_copies
    from isl.data.sources import local_mnist
    from isl.viz.curves import plot_curves

    settings = {"n": args.n, "n_conditional": args.n_conditional, "seed": args.seed, "bias": args.bias,
                "max_steps": args.max_steps, "temperature": args.temperature, "guidance": args.guidance}
    out = args.out or args.sweep / "report"
    job_dirs = [d for d in find_jobs(args.sweep, skip=out) if kept_copies(d)]
    if not job_dirs:
        print(f"error: no job of {args.sweep} kept copies of its weights (checkpoint.keep_per_decade)",
              file=sys.stderr)
        return 2

    if args.guidance and (unfit := [d.name for d in job_dirs if not _guidable(d)]):
        parser.error(f"--guidance needs class-conditional models trained with model.class_dropout > 0; "
                     f"not so: {', '.join(unfit)}")
    source = local_mnist(args.data_dir, args.mnist_dir)
    scorer = load_classifier(source)
    # Unconditional models start where training digits start; class-conditional ones (asked for
    # 0-9 in turn, asked_classes) where training digits of the class asked for start.
    starts = {False: training_starts(args.n, np.random.default_rng(args.seed), source),
              True: training_starts(args.n_conditional, np.random.default_rng(args.seed), source,
                                    np.arange(args.n_conditional) % 10)}
    test = source.load("test", args.n)
    reference = score(scorer, [test.sequence(i) for i in range(len(test))])["recognised"]
    scores = {d: score_job(d, scorer, starts, settings) for d in job_dirs}

    cells = curves(args.sweep, scores, reference)
    kinds = {conditional(d) for d in job_dirs}
    digits = "; ".join([f"{args.n} unprimed digits per copy"] * (False in kinds) + [
        f"{args.n_conditional} digits per copy of a class-conditional model, asked for 0-9 in turn (class "
        "accuracy: drawn as the class asked for)"] * (True in kinds)) + \
        f"; temperature {args.temperature:g}, bias {args.bias:g}" + \
        (f", guidance {args.guidance:g} (class-conditional models)" if args.guidance else "")
    out.mkdir(parents=True, exist_ok=True)
    figure = plot_curves(cells, "recognised", out / "generation.png", title=f"Generated digits recognised ({digits})",
                         cell_title=lambda c: f"batches by {c[0]}, {c[1]}" + (f", {c[2]}" if c[2] else ""),
                         ylabel="fraction recognised", references={"real_recognised": "real test digits"},
                         higher_is_better=True, references_are="the same scorer on real test digits")
    text = table(cells, digits) + f"Real test digits (first {len(test)}): {reference:.3f} recognised.\n"
    (out / "generation.md").write_text(f"# Generated digits along training: {args.sweep.name}\n\n{text}")
    print(text + f"figure: {figure}\ntable: {out / 'generation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
