"""What a user runs after (or around) training, each a command ``python -m isl.tools.<name>``:
report, records, sweeps, quality, generate, score, analyze, baselines, scribbles, transfer,
bench (and its timing code)."""
