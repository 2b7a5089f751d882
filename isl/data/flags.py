"""The command-line flags that tell a tool where its data is, written once for every tool.

Light on purpose: a tool adds them before it parses its arguments, so ``--help`` imports no
heavy library through here.
"""

from __future__ import annotations

import argparse

from isl.data.mnist import ENV_VAR

DATA_DIR_HELP = "data folder: the caches of built sequences and of the scorer, and <data-dir>/mnist for downloads"
MNIST_DIR_HELP = "folder holding the four MNIST IDX files"
# Where isl.data.sources.local_mnist, which most tools read through, looks for a flag left out.
LOCAL_DATA_DIR = "$ISL_DATA_DIR, else <repo>/data"
LOCAL_MNIST_DIR = f"${ENV_VAR}, else <repo>/../shared/data/mnist, <data-dir>/mnist or a download"


def add_data_flags(parser: argparse.ArgumentParser, data_dir: str | None = LOCAL_DATA_DIR,
                   mnist_dir: str = LOCAL_MNIST_DIR) -> None:
    """Give ``parser`` ``--data-dir`` and ``--mnist-dir``, None when left out: the tool resolves
    them, as ``local_mnist`` does. A tool that looks elsewhere says where in ``data_dir`` and
    ``mnist_dir``, the help's default; ``data_dir`` None: the tool has no data folder, nor the flag."""
    if data_dir is not None:
        parser.add_argument("--data-dir", default=None, help=f"{DATA_DIR_HELP} (default: {data_dir})")
    parser.add_argument("--mnist-dir", default=None, help=f"{MNIST_DIR_HELP} (default: {mnist_dir})")
