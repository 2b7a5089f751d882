"""MNIST IDX reading, checksum verification, directory resolution and download (against a local server)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import socket
import threading
import urllib.error
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from isl.data import mnist
from isl.data.mnist import (ALL_FILES, MnistUnavailableError, load_split, locate_mnist, read_idx,
                            split_checksum)
from isl.data.sequences import DataFormatError


def _shared_mnist() -> Path | None:
    """The real MNIST files: $ISL_MNIST_DIR, else shared/data/mnist beside the repository."""
    env = os.environ.get("ISL_MNIST_DIR")
    directory = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    return directory if all((directory / name).is_file() for name in ALL_FILES) else None


SHARED = _shared_mnist()  # read before the autouse fixture below clears the variable
needs_mnist = pytest.mark.skipif(SHARED is None, reason="real MNIST files not found: set ISL_MNIST_DIR "
                                                        "or provide ../shared/data/mnist")


@pytest.fixture(autouse=True)
def _no_env_dir(monkeypatch):
    monkeypatch.delenv("ISL_MNIST_DIR", raising=False)


def idx_bytes(array: np.ndarray) -> bytes:
    magic = {3: 0x0803, 1: 0x0801}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> str:
    """Write ``array`` as an IDX file; returns the md5 of the uncompressed content."""
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return hashlib.md5(data).hexdigest()


def copy_real(directory: Path, names) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SHARED / name, directory / name)


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve():
    """serve(directory) -> base URL of an HTTP server on 127.0.0.1 serving that directory."""
    servers = []

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    def start(directory: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- real files ---------------------------------------------------------------------------------

@needs_mnist
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_splits_load_verified(split, n):
    images, labels = load_split(SHARED, split)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert 0 < images.mean() < 255 and images.max() == 255


def test_split_checksum_is_stable_and_distinct():
    assert split_checksum("train") == split_checksum("train")
    assert split_checksum("train") != split_checksum("test")
    assert mnist.MD5["t10k-images-idx3-ubyte.gz"] in split_checksum("test")
    with pytest.raises(ValueError, match="unknown MNIST split"):
        split_checksum("valid")


# --- IDX reading --------------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    write_idx(tmp_path / "images", images, compress)
    write_idx(tmp_path / "labels", labels, compress)
    for name, expected in [("images", images), ("labels", labels)]:
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def _valid_gz() -> bytes:
    return gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)))


BAD_FILES = {
    "truncated gzip": lambda: _valid_gz()[:40],
    "junk bytes": lambda: b"this is not an IDX file at all",
    "junk after gzip magic": lambda: b"\x1f\x8b" + bytes(range(200)),
    "empty": lambda: b"",
    "wrong magic": lambda: gzip.compress(b"\x00\x00\x08\x02" + bytes(100)),
    "truncated header": lambda: gzip.compress(b"\x00\x00\x08\x03\x00\x00\x00\x03"),
    "size bigger than payload": lambda: gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-5]),
    "size smaller than payload": lambda: gzip.compress(idx_bytes(np.zeros(3, np.uint8)) + b"\x01"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_read_idx_bad_input_names_the_file(tmp_path, kind):
    path = tmp_path / "broken-idx-file.gz"
    path.write_bytes(BAD_FILES[kind]())
    with pytest.raises(DataFormatError, match="broken-idx-file.gz"):
        read_idx(path)


@needs_mnist
def test_checksum_mismatch_names_file_and_both_md5s(tmp_path):
    copy_real(tmp_path, ["t10k-images-idx3-ubyte.gz"])
    name = "t10k-labels-idx1-ubyte.gz"
    actual = write_idx(tmp_path / name, np.zeros(10000, np.uint8))  # valid IDX, wrong content
    with pytest.raises(DataFormatError) as err:
        load_split(tmp_path, "test")
    message = str(err.value)
    assert name in message and actual in message and mnist.MD5[name] in message
    assert "Delete it" in message


def _synthetic_split(directory: Path, monkeypatch, images: np.ndarray, labels: np.ndarray) -> None:
    """Write a 'test' split from arrays, with the expected md5s patched to match them."""
    for name, array in zip(mnist.SPLIT_FILES["test"], (images, labels)):
        monkeypatch.setitem(mnist.MD5, name, write_idx(directory / name, array))


def test_load_split_rejects_count_mismatch(tmp_path, monkeypatch):
    _synthetic_split(tmp_path, monkeypatch, np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte.gz.*for 3 images"):
        load_split(tmp_path, "test")


def test_load_split_rejects_labels_outside_0_9(tmp_path, monkeypatch):
    _synthetic_split(tmp_path, monkeypatch, np.zeros((2, 28, 28), np.uint8), np.array([3, 10], np.uint8))
    with pytest.raises(DataFormatError, match="label 10 outside 0-9"):
        load_split(tmp_path, "test")


def test_load_split_rejects_wrong_image_size(tmp_path, monkeypatch):
    _synthetic_split(tmp_path, monkeypatch, np.zeros((2, 14, 14), np.uint8), np.array([3, 1], np.uint8))
    with pytest.raises(DataFormatError, match="t10k-images-idx3-ubyte.gz.*28x28"):
        load_split(tmp_path, "test")


# --- locating -----------------------------------------------------------------------------------

def _touch_all(directory: Path, names=ALL_FILES) -> Path:
    """Presence is all locate_mnist checks, so empty files stand in for the real ones."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).touch()
    return directory


@pytest.fixture
def offline(monkeypatch):
    """Mirrors that refuse connections; returns the mirror URL."""
    url = f"http://127.0.0.1:{unused_port()}/"
    monkeypatch.setattr(mnist, "MIRRORS", (url,))
    return url


def test_explicit_dir_wins(tmp_path, offline):
    explicit, search = _touch_all(tmp_path / "explicit"), _touch_all(tmp_path / "search")
    assert locate_mnist(explicit, search_dirs=[search], download_dir=search) == explicit


def test_env_var_used_when_no_explicit_dir(tmp_path, monkeypatch, offline):
    env_dir, search = _touch_all(tmp_path / "env"), _touch_all(tmp_path / "search")
    monkeypatch.setenv("ISL_MNIST_DIR", str(env_dir))
    assert locate_mnist(search_dirs=[search]) == env_dir
    assert locate_mnist(search, search_dirs=[search]) == search  # the argument beats the variable


@pytest.mark.parametrize("via_env", [False, True])
def test_explicit_dir_missing_files_is_an_error(tmp_path, monkeypatch, offline, via_env):
    partial = _touch_all(tmp_path / "partial", ALL_FILES[:3])
    complete = _touch_all(tmp_path / "complete")
    if via_env:
        monkeypatch.setenv("ISL_MNIST_DIR", str(partial))
    with pytest.raises(MnistUnavailableError) as err:
        locate_mnist(None if via_env else partial, search_dirs=[complete], download_dir=complete)
    message = str(err.value)
    assert str(partial) in message and f"lacks {ALL_FILES[3]}." in message
    assert ("ISL_MNIST_DIR" if via_env else "data.mnist_dir") in message


def test_search_dirs_in_order_then_download_dir(tmp_path, offline):
    incomplete = _touch_all(tmp_path / "incomplete", ALL_FILES[1:])
    first, second = _touch_all(tmp_path / "first"), _touch_all(tmp_path / "second")
    assert locate_mnist(search_dirs=[tmp_path / "nowhere", incomplete, first, second]) == first
    # A previously downloaded copy is used without touching the (unreachable) mirrors.
    assert locate_mnist(search_dirs=[incomplete], download_dir=second) == second


def test_offline_error_says_what_was_tried_and_how_to_fix(tmp_path, offline):
    search, download_dir = tmp_path / "search", tmp_path / "download"
    with pytest.raises(MnistUnavailableError) as err:
        locate_mnist(search_dirs=[search], download_dir=download_dir)
    message = str(err.value)
    assert str(search) in message and offline + ALL_FILES[0] in message
    assert "data.mnist_dir" in message and "ISL_MNIST_DIR" in message and str(download_dir) in message
    assert not [p for p in download_dir.iterdir()]  # no partial files left behind


def test_download_disabled(tmp_path, offline):
    with pytest.raises(MnistUnavailableError, match="download: disabled"):
        locate_mnist(download_dir=tmp_path, download=False)


def test_network_failure_is_reported_per_mirror(tmp_path, monkeypatch):
    """Network failures other than a refused connection (DNS, proxy) are reported, not raised."""
    def fail(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", fail)
    with pytest.raises(MnistUnavailableError) as err:
        locate_mnist(download_dir=tmp_path)
    assert all(m + ALL_FILES[0] in str(err.value) for m in mnist.MIRRORS)
    assert "Name or service not known" in str(err.value)


# --- downloading --------------------------------------------------------------------------------

@needs_mnist
def test_download_from_local_mirror(tmp_path, monkeypatch, serve):
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    monkeypatch.setattr(mnist, "MIRRORS", (serve(empty), serve(SHARED)))  # the first answers 404
    download_dir = tmp_path / "download"
    assert locate_mnist(download_dir=download_dir) == download_dir
    assert sorted(p.name for p in download_dir.iterdir()) == sorted(ALL_FILES)
    images, labels = load_split(download_dir, "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    for name in ALL_FILES:  # byte-identical to the served copies
        assert (download_dir / name).read_bytes() == (SHARED / name).read_bytes()


@needs_mnist
def test_corrupt_mirror_falls_through_to_next(tmp_path, monkeypatch, serve):
    name = "t10k-labels-idx1-ubyte.gz"
    download_dir = tmp_path / "download"
    copy_real(download_dir, [n for n in ALL_FILES if n != name])  # only one file left to fetch
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    write_idx(bad / name, np.ones(10000, np.uint8))
    monkeypatch.setattr(mnist, "MIRRORS", (serve(bad), serve(SHARED)))
    assert locate_mnist(download_dir=download_dir) == download_dir
    assert (download_dir / name).read_bytes() == (SHARED / name).read_bytes()
    assert sorted(p.name for p in download_dir.iterdir()) == sorted(ALL_FILES)


@pytest.mark.parametrize("content", [b"\x1f\x8bgarbage", gzip.compress(b"\x00\x00\x08\x01" + bytes(4))],
                         ids=["corrupt gzip", "valid IDX, wrong md5"])
def test_only_corrupt_mirrors_leave_no_file(tmp_path, monkeypatch, serve, content):
    download_dir = _touch_all(tmp_path / "download", ALL_FILES[:3])
    bad = tmp_path / "bad-mirror"
    bad.mkdir()
    (bad / ALL_FILES[3]).write_bytes(content)
    monkeypatch.setattr(mnist, "MIRRORS", (serve(bad),))
    with pytest.raises(MnistUnavailableError) as err:
        locate_mnist(download_dir=download_dir)
    assert ALL_FILES[3] in str(err.value)
    assert sorted(p.name for p in download_dir.iterdir()) == sorted(ALL_FILES[:3])
