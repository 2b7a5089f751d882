#!/usr/bin/env bash
# The README's Quickstart, step by step as written, in a fresh clone, each step timed:
#
#   bench/quickstart.sh CLONE_DIR [OUT_FILE]
#
# CLONE_DIR gets a fresh `git clone` of this repository (with ../shared beside it as CI has it,
# when this checkout has one); OUT_FILE (default CLONE_DIR/quickstart.tsv) one line per step:
# step, seconds, exit status. The README's times and BENCHMARKS.md's Quickstart table come from
# this file (tests/test_docs.py checks that they agree). Run it with nothing else on the cores.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
clone=$(realpath -m "${1:?usage: bench/quickstart.sh CLONE_DIR [OUT_FILE]}")
out=$(realpath -m "${2:-$clone/quickstart.tsv}")
[ -e "$clone" ] && { echo "$clone exists: give a new directory" >&2; exit 2; }
mkdir -p "$(dirname "$clone")"
git clone -q "$repo" "$clone" || exit 1
[ -d "$repo/../shared" ] && [ ! -e "$clone/../shared" ] && ln -s "$repo/../shared" "$clone/../shared"
cd "$clone"
: >"$out"

step() {  # step NAME COMMAND...: run it, append "NAME<TAB>seconds<TAB>status"
    local name=$1; shift
    local start=$SECONDS
    "$@" >"$clone/quickstart-$name.log" 2>&1
    local status=$?
    printf '%s\t%d\t%d\n' "$name" $((SECONDS - start)) "$status" | tee -a "$out"
}

sweep="curriculum=regular,length,classes,sequences budget.points=200000 data.num_test=1000"
step setup bash -c 'python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e ".[dev]"'
step main_job .venv/bin/python run.py                     # the first run builds the dataset cache
step main_job_again .venv/bin/python run.py               # reports the finished run
step sweep .venv/bin/python run.py -m $sweep
step report .venv/bin/python -m isl.tools.report runs/multirun/curriculum-regular+length+classes+sequences_budget.points-200000_data.num_test-1000
step smoke .venv/bin/python run.py -m experiment=smoke    # the experiments table's "first look"
step tests_quick .venv/bin/python -m pytest -m "not slow" -q
step tests .venv/bin/python -m pytest -q
