"""One way to write a file atomically, for checkpoints, the dataset cache and MNIST downloads."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
import torch
from rich.progress import Progress

from isl.core import files
from isl.training.checkpoints import AtomicCheckpointIO
from isl.data import mnist
from isl.data.cache import read_strokes, write_strokes
from isl.data.sequences import StrokeSet
from isl.core.files import atomic_file, atomic_write
from conftest import MNIST_DIR, needs_mnist


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    with atomic_file(path) as f:
        f.write(b"first")
        assert not path.exists() and f.name != str(path)      # written beside it, under another name
    assert path.read_bytes() == b"first"
    with pytest.raises(RuntimeError), atomic_file(path) as f:
        f.write(b"second, cut short")
        raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"first" and leftovers(path.parent) == []


def strokes() -> StrokeSet:
    return StrokeSet.from_sequences([np.array([[1, 2, 0, 0], [0, 0, 1, 1]])], [3])


@needs_mnist
def test_checkpoints_cache_and_downloads_all_write_through_it(tmp_path, monkeypatch):
    """A full disk at the flush: each keeps its previous file, leaves no temporary one, and
    the checkpoint's error names the file."""
    ckpt, cache, download = tmp_path / "last.ckpt", tmp_path / "train.npz", tmp_path / "mnist"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, ckpt)
    write_strokes(cache, strokes())
    monkeypatch.setattr(mnist, "MIRRORS", [MNIST_DIR.as_uri() + "/"])
    name = "t10k-labels-idx1-ubyte.gz"
    download.mkdir()
    assert mnist._download(name, download, Progress(disable=True), [])   # from a file:// mirror
    assert (download / name).read_bytes() == (MNIST_DIR / name).read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match=r"could not write .*last.ckpt(.new)?: No space left .*previous last.ckpt is intact"):
        AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(2)}, ckpt)
    assert torch.load(ckpt, weights_only=True)["step"] == 1
    with pytest.raises(OSError, match="No space left"):
        write_strokes(cache, StrokeSet.from_sequences([], []))
    assert read_strokes(cache).labels.tolist() == [3]
    errors = []
    (download / name).unlink()
    assert not mnist._download(name, download, Progress(disable=True), errors)
    assert "No space left" in errors[0] and not (download / name).exists()
    with pytest.raises(OSError, match="could not write"):
        atomic_write(tmp_path / "result.json", "{}")
    assert [leftovers(d) for d in (tmp_path, download)] == [[], []]
