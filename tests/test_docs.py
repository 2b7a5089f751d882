"""The README quotes BENCHMARKS.md and the config: the same figures in both places."""

from __future__ import annotations

import re

from omegaconf import OmegaConf

from conftest import REPO

README = (REPO / "README.md").read_text()
BENCHMARKS = (REPO / "BENCHMARKS.md").read_text()


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text, re.DOTALL)
    assert match, f"not found: {pattern}"
    return float(match.group(1).replace(",", ""))


def test_the_readme_quotes_the_measured_figures():
    assert number(r"build in about (\d+) s", README) == round(number(r"all 70,000 images, 2 processes \| \*\*([\d.]+) s", BENCHMARKS))
    padding = {row: number(rf"\| {row} \([^|]*\| [\d,]+ \| [\d.]+× \| ([\d.]+)% \|", BENCHMARKS)
               for row in ("random", "stratified", "by length")}
    assert number(r"padding falls from (\d+)% to \d+%", README) == round(padding["random"])
    assert number(r"padding falls from \d+% to (\d+)%", README) == round(padding["stratified"])
    assert number(r"cuts padding to (\d+)%", README) == round(padding["by length"])
    ratio = {row: number(rf"\| {row} \([^|]*\| [\d,]+ \| ([\d.]+)× \|", BENCHMARKS)
             for row in ("stratified", "by length")}
    assert number(r"\(([\d.]+)× more real points/s than random batches", README) == round(ratio["stratified"], 1)
    assert number(r"random batches; ([\d.]+)× sorting by length alone", README) == round(ratio["by length"], 1)
    # a checkpoint's interval in seconds: the default points at the LSTM's measured speeds
    every = OmegaConf.load(REPO / "conf" / "config.yaml").checkpoint.every_points
    cores = every / number(r"1 M points take [\d.]+ s and [\d.]+ s at ([\d,]+) and", BENCHMARKS)
    sweep_job = every / number(r"experiment 1 \(12 LSTM jobs[^|]*\| [^(]*\(([\d,]+) points/s", BENCHMARKS)
    assert abs(number(r"\(500,000 by default: about (\d+) s of the LSTM's", README) - cores) < 1.5
    assert abs(number(r"on 2 CPU cores, (\d+) s in a sweep job", README) - sweep_job) < 3


def test_the_readme_quotes_the_config_defaults():
    config = OmegaConf.load(REPO / "conf" / "config.yaml")
    assert number(r"`checkpoint.every_points` training points\n\(([\d,]+) by default", README) == config.checkpoint.every_points
    length = OmegaConf.load(REPO / "conf" / "curriculum" / "length.yaml")
    sequences = OmegaConf.load(REPO / "conf" / "curriculum" / "sequences.yaml")
    assert number(r"\(`min_points`, ([\d,]+);", README) == length.min_points
    assert number(r"for\s+`sequences`,? (\d+) per sequence in use", README) == sequences.window_factor
    assert number(r"falls below `threshold` \((\d+) pixels\)", README) == length.threshold
    assert number(r"`batching.bucket=(\d+)` \(default\)", README) == OmegaConf.load(
        REPO / "conf" / "batching" / "sequences.yaml").bucket


def test_the_quickstart_quotes_its_measured_times():
    """Every time the Quickstart states is bench/quickstart.sh's, as BENCHMARKS.md records it."""
    def seconds(step: str) -> float:
        return number(rf"\| `{step}` \|[^|]*\| (\d+) s \|", BENCHMARKS)
    assert number(r"Installing takes about (\d+) s", README) == seconds("setup")
    assert number(r"in all,\s+about (\d+) s", README) == seconds("main_job")
    assert number(r"their report \(about (\d+) min\)", README) == round((seconds("sweep") + seconds("report")) / 60)
    assert number(r"about (\d+) min, slow end-to-end tests included", README) == round(seconds("tests") / 60)
    assert number(r'"not slow"` checks the rest in about (\d+) min', README) == round(seconds("tests_quick") / 60)
    assert number(r"a first look in ≈?(\d+) s", README) == seconds("smoke")
