#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md, measured on this machine's GPU, in one command:
#
#   bench/gpu_figures.sh OUTDIR [SEEDS] [POINTS] [PER_GPU]
#
# OUTDIR/train.jsonl   Lightning vs a bare loop (python -m isl.tools.bench train), four shapes
# OUTDIR/real.jsonl    real points/s on real batches, bucketed or not (python -m isl.tools.bench real)
# OUTDIR/grid.json     wall time of the paper's grid (16 cells x SEEDS seeds x POINTS points,
#                      PER_GPU jobs at a time on each GPU; default 5 seeds, 4e6 points, 8 jobs)
# OUTDIR/grid/         the sweep's report (summary.md, figures)
#
# MNIST comes from $ISL_MNIST_DIR as for run.py. Each step appends to OUTDIR, so a run cut
# short keeps what it measured; the grid resumes if started again (run.py's resume).
set -euo pipefail
out=$(realpath -m "${1:?usage: bench/gpu_figures.sh OUTDIR [SEEDS] [POINTS] [PER_GPU]}")
seeds=${2:-5} points=${3:-4000000} per_gpu=${4:-8}
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

for shape in "lstm 40 60" "lstm 4 300" "ffnn 40 60" "ffnn 4 300"; do
    set -- $shape
    $python -m isl.tools.bench train --model "$1" --seq-len "$2" --steps "$3" --repeats 8 >>"$out/train.jsonl"
done
for model in lstm ffnn; do  # also builds the dataset cache the grid's jobs then share
    $python -m isl.tools.bench real --model "$model" >>"$out/real.jsonl"
done

start=$(date +%s)
$python run.py -m experiment=grid "seed=$(seq -s, 1 "$seeds")" "budget.points=$points" \
    hydra/launcher=gpus "hydra.launcher.per_gpu=$per_gpu" logger=csv name=gpu-grid \
    "paths.runs_dir=$out/runs" >"$out/grid.log" 2>&1
seconds=$(( $(date +%s) - start ))
$python -m isl.tools.report "$out/runs/multirun/gpu-grid" --out "$out/grid" >>"$out/grid.log" 2>&1
$python - "$seeds" "$points" "$per_gpu" "$seconds" >"$out/grid.json" <<'EOF'
import json, sys, torch
seeds, points, per_gpu, seconds = map(int, sys.argv[1:])
print(json.dumps({"jobs": 16 * seeds, "points_per_job": points, "per_gpu": per_gpu,
                  "gpus": torch.cuda.device_count(), "device": torch.cuda.get_device_name()
                  if torch.cuda.is_available() else "cpu", "wall_seconds": seconds}))
EOF
cat "$out"/*.json*
