"""Data sources and the build cache: built once, reused, keyed, atomic; the full build end to end."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from isl.data import pipeline, mnist
from isl.data.cache import read_strokes, write_strokes
from isl.data.sequences import StrokeSet
from isl.data.sources import MnistSource, PublishedSource
from conftest import MNIST_DIR, SAMPLES_DIR, needs_mnist


@pytest.fixture
def small_mnist(monkeypatch, mnist_images):
    """MnistSource reads only the first 300 images of each real split, to keep the test quick."""
    train_x, train_y, test_x, test_y = mnist_images
    splits = {"train": (train_x[:300], train_y[:300]), "test": (test_x[:300], test_y[:300])}
    monkeypatch.setattr(mnist, "load_split", lambda directory, split: splits[split])


def test_the_first_load_builds_and_caches_and_later_loads_reuse_it(tmp_path, small_mnist, monkeypatch):
    source = MnistSource(mnist_dir=MNIST_DIR, data_dir=tmp_path)
    first = source.load("train")
    assert source.cache_path("train").is_file() and len(first) == 300

    monkeypatch.setattr(pipeline, "build", lambda *a, **k: pytest.fail("rebuilt despite the cache"))
    monkeypatch.setattr(mnist, "locate_mnist", lambda *a, **k: pytest.fail("looked for MNIST despite the cache"))
    again = MnistSource(data_dir=tmp_path).load("train", limit=120)
    assert np.array_equal(again.steps, first.head(120).steps) and len(again) == 120


@pytest.mark.parametrize("via_env", [False, True])
def test_a_wrong_mnist_dir_is_refused_even_with_the_sequences_cached(tmp_path, small_mnist, monkeypatch, via_env):
    MnistSource(mnist_dir=MNIST_DIR, data_dir=tmp_path).load("train")          # the cache is built
    wrong = tmp_path / "mnist-elsewhere"
    if via_env:
        monkeypatch.setenv("ISL_MNIST_DIR", str(wrong))
    with pytest.raises(mnist.MnistUnavailableError) as err:
        MnistSource(mnist_dir=None if via_env else str(wrong), data_dir=tmp_path)
    message = str(err.value)
    assert f"MNIST directory {wrong} (from {'ISL_MNIST_DIR' if via_env else 'data.mnist_dir'}) is not a " \
           "directory" in message and "leave it unset" in message and "\n" not in message


def test_the_cache_key_follows_the_builder_version_and_the_split(tmp_path, monkeypatch):
    source = MnistSource(data_dir=tmp_path)
    before = source.cache_path("train")
    assert before != source.cache_path("test")
    monkeypatch.setattr(pipeline, "BUILDER_VERSION", pipeline.BUILDER_VERSION + 1)
    assert source.cache_path("train") != before


def test_an_unreadable_cache_is_rebuilt(tmp_path, small_mnist, caplog):
    source = MnistSource(mnist_dir=MNIST_DIR, data_dir=tmp_path)
    path = source.cache_path("test")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with caplog.at_level(logging.WARNING):
        assert len(source.load("test")) == 300
    assert "unreadable dataset cache" in caplog.text and read_strokes(path) is not None


def test_a_failed_write_leaves_the_previous_cache_untouched(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "split.npz"
    old = StrokeSet.from_sequences([np.array([[3, 4, 0, 0], [0, 0, 1, 1]])], [7])
    write_strokes(path, old)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_strokes(path, StrokeSet.from_sequences([np.array([[1, 1, 0, 0], [0, 0, 1, 1]])], [1]))
    kept = read_strokes(path)
    assert np.array_equal(kept.steps, old.steps) and kept.labels.tolist() == [7]
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.npz"]  # no temp file left


def test_offline_without_mnist_says_how_to_supply_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ISL_MNIST_DIR", raising=False)
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/",))  # the discard port: refused
    with pytest.raises(mnist.MnistUnavailableError, match="data.mnist_dir") as err:
        MnistSource(data_dir=tmp_path).load("train")
    assert "ISL_MNIST_DIR" in str(err.value) and str(tmp_path / "mnist") in str(err.value)
    assert not (tmp_path / "cache").exists()


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="split"):
        MnistSource(data_dir=tmp_path).load("validation")


def test_published_source_reads_what_the_build_cli_wrote(tmp_path, mnist_images):
    from isl.data.build import main as build_cli
    for split in ("train", "test"):
        build_cli(["--mnist-dir", str(MNIST_DIR), "--split", split, "--limit", "40",
                   "--format", "original", "--out", str(tmp_path / "sequences")])
    source = PublishedSource(tmp_path / "sequences", data_dir=tmp_path / "data")
    train = source.load("train")
    assert len(train) == 40 and np.array_equal(train.labels, mnist_images[1][:40])
    for i in (0, 2, 39):
        assert np.array_equal(train.sequence(i), pipeline.image_to_sequence(mnist_images[0][i]))
    assert len(source.load("test", limit=10)) == 10


@needs_mnist
def test_build_cli_writes_the_published_sample_files_byte_for_byte(tmp_path):
    from isl.data.build import main as build_cli
    build_cli(["--mnist-dir", str(MNIST_DIR), "--split", "train", "--limit", "59",
               "--format", "original", "--out", str(tmp_path)])
    for index in (2, 58):
        name = f"trainimg-{index}-inputdata.txt"
        assert (tmp_path / name).read_bytes() == (SAMPLES_DIR / name).read_bytes()


@pytest.mark.slow
@needs_mnist
def test_full_build_of_all_70000_images(full_data_dir, mnist_images, monkeypatch):
    monkeypatch.setattr(pipeline, "build", lambda *a, **k: pytest.fail("rebuilt despite the cache"))
    monkeypatch.setattr(mnist, "locate_mnist", lambda *a, **k: pytest.fail("looked for MNIST despite the cache"))
    source = MnistSource(data_dir=full_data_dir)   # from the cache
    train, test = source.load("train"), source.load("test")
    assert (len(train), len(test)) == (60_000, 10_000)
    train_x, train_y, test_x, test_y = mnist_images
    for strokes, images, labels in ((train, train_x, train_y), (test, test_x, test_y)):
        ends = strokes.steps[strokes.starts[1:] - 1]
        assert (ends == [0, 0, 1, 1]).all()                        # every sequence is closed
        assert strokes.steps[:, 3].sum() == len(strokes)            # and has one end marker
        assert strokes.lengths.min() >= 3 and 35 < strokes.lengths.mean() < 45
        assert np.bincount(strokes.labels, minlength=10).min() > 800
        assert np.array_equal(strokes.labels, labels)
        # The cache may be older than this session (it is built once per data folder): every
        # 50th image, built again now, gives the cached sequence.
        for i in range(0, len(images), 50):
            assert np.array_equal(strokes.sequence(i), pipeline.image_to_sequence(images[i])), i
