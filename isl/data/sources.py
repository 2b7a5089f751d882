"""Where stroke sequences come from: the Hydra group ``data`` picks one of these sources.

``MnistSource`` builds them from the MNIST images (cached after the first build);
``PublishedSource`` reads the published "MNIST digits stroke sequence data" set.
Both answer ``load(split, limit)`` with a StrokeSet.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Protocol

from isl.data import pipeline, mnist, published
from isl.data.cache import read_strokes, write_strokes
from isl.data.sequences import StrokeSet

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
REPO = Path(__file__).resolve().parents[2]


class StrokeSource(Protocol):
    """What a StrokeDataModule reads from: any object with this method."""

    def load(self, split: str, limit: int | None = None) -> StrokeSet: ...


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


class MnistSource:
    """Stroke sequences built from the four MNIST IDX files by ``isl.data.pipeline``."""

    def __init__(self, mnist_dir: str | None = None, search_dirs=(), data_dir: str = "data",
                 download: bool = True, workers: int | None = None):
        self.mnist_dir = mnist_dir
        self.search_dirs = [Path(d) for d in search_dirs]
        self.data_dir = Path(data_dir)
        # A directory the user named must hold the files even while the cache makes them unneeded:
        # a mistake there is reported, not hidden until the cache is gone.
        mnist.given_dir(mnist_dir, self.data_dir / "mnist")
        self.download = download
        self.workers = workers

    def cache_path(self, split: str) -> Path:
        key = hashlib.sha256(f"{mnist.split_checksum(split)}|builder-{pipeline.BUILDER_VERSION}"
                             .encode()).hexdigest()[:16]
        return self.data_dir / "cache" / f"mnist-{split}-{key}.npz"

    def load(self, split: str, limit: int | None = None) -> StrokeSet:
        _check_split(split)
        path = self.cache_path(split)
        strokes = read_strokes(path)
        if strokes is None:
            directory = mnist.locate_mnist(self.mnist_dir, self.search_dirs,
                                           self.data_dir / "mnist", self.download)
            images, labels = mnist.load_split(directory, split)
            workers = self.workers or os.cpu_count() or 1
            log.info("Building %s stroke sequences from %d MNIST images on %d processes...",
                     split, len(images), workers)
            start = time.perf_counter()
            strokes = pipeline.build(images, labels, workers)
            write_strokes(path, strokes)
            log.info("Built %d sequences in %.1f s, cached at %s",
                     len(strokes), time.perf_counter() - start, path)
        return strokes if limit is None else strokes.head(limit)


class PublishedSource:
    """The published set, from its ``sequences/`` folder or ``sequences.tar.gz``."""

    def __init__(self, path: str, data_dir: str = "data"):
        if not Path(path).exists():  # before any work, not at the first read
            raise ValueError(f"data.path={path}: no such folder or archive (the published set's "
                             "sequences/ folder or sequences.tar.gz)")
        self.path = Path(path)
        self.extract_dir = Path(data_dir) / "published"

    def load(self, split: str, limit: int | None = None) -> StrokeSet:
        _check_split(split)
        return published.read_published(self.path, split, limit=limit, extract_dir=self.extract_dir)


def local_mnist(data_dir: str | Path | None = None, mnist_dir: str | None = None) -> MnistSource:
    """The MNIST source the command-line tools read, as ``run.py`` configures it by default:
    built sequences cached in ``data_dir`` (default ``$ISL_DATA_DIR``, else ``<repo>/data``), the
    MNIST files from ``mnist_dir``, ``$ISL_MNIST_DIR``, ``../shared/data/mnist`` or a download."""
    data_dir = data_dir or os.environ.get("ISL_DATA_DIR") or REPO / "data"
    return MnistSource(mnist_dir=mnist_dir, search_dirs=[REPO.parent / "shared" / "data" / "mnist"],
                       data_dir=data_dir)
