"""Shared fixtures: where the real data is, and small real stroke sets built from it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from isl.data import pipeline, mnist

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def real_mnist_dir() -> Path | None:
    """The real MNIST files: $ISL_MNIST_DIR, else shared/data/mnist beside the repository."""
    env = os.environ.get("ISL_MNIST_DIR")
    directory = Path(env) if env else SHARED / "mnist"
    return directory if all((directory / name).is_file() for name in mnist.ALL_FILES) else None


def pytest_configure(config):
    """One intra-op thread unless the environment names another count, here (before torch is
    imported) and in every run the tests start: their networks are tiny, and beside other work
    on a 2-core machine a second thread mostly waits for the busy core (a short training in
    test_curricula took 120 s of CPU instead of 1 s while another test session ran)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


MNIST_DIR = real_mnist_dir()
SAMPLES_DIR = SHARED / "stroke-samples"
needs_mnist = pytest.mark.skipif(MNIST_DIR is None, reason="real MNIST files not found: set "
                                 "ISL_MNIST_DIR or provide ../shared/data/mnist")
needs_samples = pytest.mark.skipif(not SAMPLES_DIR.is_dir(),
                                   reason="../shared/data/stroke-samples not found")


@pytest.fixture(scope="session")
def mnist_images():
    """(train images, train labels, test images, test labels) of the real MNIST files."""
    if MNIST_DIR is None:
        pytest.skip("real MNIST files not found: set ISL_MNIST_DIR or provide ../shared/data/mnist")
    return (*mnist.load_split(MNIST_DIR, "train"), *mnist.load_split(MNIST_DIR, "test"))


class InMemorySource:
    """A data source (the ``load(split, limit)`` protocol) over already built StrokeSets."""

    def __init__(self, train, test):
        self.splits = {"train": train, "test": test}

    def load(self, split, limit=None):
        strokes = self.splits[split]
        return strokes if limit is None else strokes.head(limit)


@pytest.fixture(scope="session")
def real_source(mnist_images):
    """The first 2,000 training and 500 test images of MNIST, built by the real builder."""
    train_x, train_y, test_x, test_y = mnist_images
    return InMemorySource(pipeline.build(train_x[:2000], train_y[:2000], workers=1),
                          pipeline.build(test_x[:500], test_y[:500], workers=1))


@pytest.fixture(scope="session")
def full_data_dir():
    """The tools' data folder ($ISL_DATA_DIR, else <repo>/data, as ``python run.py`` uses it)
    holding the full build of all 70,000 images: built there once (by run.py, or by the first
    session that needs it; several CPU minutes on a busy 2-core machine) and read from its
    cache by every later one. tests/test_sources.py checks that cache against the builder."""
    if MNIST_DIR is None:
        pytest.skip("real MNIST files not found: set ISL_MNIST_DIR or provide ../shared/data/mnist")
    from isl.data.sources import local_mnist
    source = local_mnist(mnist_dir=str(MNIST_DIR))
    for split in ("train", "test"):
        source.load(split)
    return Path(source.data_dir)


@pytest.fixture
def small_scorer(monkeypatch, mnist_images, tmp_path):
    """An MnistSource over 300 real images per split, in its own data folder, and a scorer small
    enough to train in seconds there (one epoch, 100 scribbles)."""
    import isl.tools.score
    from isl.data.sources import MnistSource
    train_x, train_y, test_x, test_y = mnist_images
    splits = {"train": (train_x[:300], train_y[:300]), "test": (test_x[:300], test_y[:300])}
    monkeypatch.setattr(mnist, "load_split", lambda directory, split: splits[split])
    monkeypatch.setattr(isl.tools.score, "SCRIBBLES", 100)
    monkeypatch.setattr(isl.tools.score, "EPOCHS", 1)
    return MnistSource(mnist_dir=MNIST_DIR, data_dir=tmp_path)


@pytest.fixture(scope="session")
def scorer():
    """(the digit scorer, its MnistSource): isl.tools.score's classifier of the tools' data folder
    ($ISL_DATA_DIR, else <repo>/data), trained there once (about 3 minutes on one thread) and
    read back from its cache by every later session."""
    if MNIST_DIR is None:
        pytest.skip("real MNIST files not found: set ISL_MNIST_DIR or provide ../shared/data/mnist")
    from isl.data.sources import local_mnist
    from isl.tools.score import load_classifier
    source = local_mnist(mnist_dir=str(MNIST_DIR))
    return load_classifier(source), source
