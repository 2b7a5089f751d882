"""Reference levels of the test set a run evaluates on, as one JSON line.

    python -m isl.tools.baselines [Hydra overrides]        e.g. data.num_test=null data.scaling=std

The overrides are run.py's: the same data, the same test subset (default: the first 5,000 test
sequences at up to ``data.max_length`` rows). Every training run also writes these levels to
``reference.json`` in its directory, where ``isl.tools.report`` finds them. Definitions:
``isl.data.reference``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def compose(overrides: list[str]):
    """run.py's config with ``overrides`` (paths resolved as run.py resolves them)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import isl.training.config  # noqa: F401  (the schema)

    os.environ.setdefault("ISL_ROOT", str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    from isl.data.reference import for_datamodule
    from isl.training.train import build_datamodule

    dm = build_datamodule(compose(argv))
    dm.prepare_data()
    print(json.dumps(for_datamodule(dm)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
