#!/bin/bash
# Where a run's wall time goes, in two source trees one after the other (e.g. a worktree of the
# commit before a speed-up, then this one), with the same run.py overrides:
#   bench/run_split_pair.sh BEFORE_TREE AFTER_TREE experiment=exp1 curriculum=regular logger=csv budget.points=2000000
# One JSON line per tree (python -m isl.tools.bench run), prefixed "before" / "after"; one thread each.
set -euo pipefail
before=$1 after=$2
shift 2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python
for pair in "before $before" "after $after"; do
  set -- $pair "$@"
  label=$1 tree=$2
  shift 2
  (cd "$tree" && PYTHONPATH="$tree" "$python" -m isl.tools.bench run "$@" 2>/dev/null | tail -1 | sed "s/^/$label /")
done
