"""The MNIST digit images (IDX format): find them, download them if need be, read and verify them.

The stroke sequences are derived from these images, so the images must be the canonical ones.
Checksums are taken on the *decompressed* content: a recompressed .gz (such as the shared copy of
the training images) holds the same data under different .gz bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)

from isl.data.sequences import DataFormatError
from isl.core.files import atomic_file

# (images, labels) file names of each split.
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ALL_FILES = tuple(name for names in SPLIT_FILES.values() for name in names)

# md5 of each file's decompressed content (see shared/data/mnist/README.md).
MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}

# Tried in order; yann.lecun.com comes last because it often refuses automated downloads.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

ENV_VAR = "ISL_MNIST_DIR"
DOWNLOAD_TIMEOUT_S = 30

# IDX magic number -> number of dimensions; only unsigned-byte data (type code 0x08) is MNIST.
_IDX_MAGIC = {0x0803: 3, 0x0801: 1}


class MnistUnavailableError(ValueError):
    """The MNIST files could not be found or downloaded: a location to give, or a wrong one
    given. The message says what was tried and how to supply them."""


def _decompressed(path: Path) -> bytes:
    """The file's bytes, gunzipped if it is gzip (recognised by its magic bytes, not its name)."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataFormatError(path, f"corrupt gzip data (truncated or damaged download?): {e}") from e


def _parse_idx(data: bytes, path: Path) -> np.ndarray:
    magic = int.from_bytes(data[:4], "big")
    if len(data) < 4 or magic not in _IDX_MAGIC:
        raise DataFormatError(path, f"not an MNIST IDX file: magic number 0x{magic:08x}, expected "
                                    "0x00000803 (images) or 0x00000801 (labels)")
    header = 4 + 4 * _IDX_MAGIC[magic]
    if len(data) < header:
        raise DataFormatError(path, f"IDX header truncated: {len(data)} bytes, needs {header}")
    dims = tuple(int.from_bytes(data[i:i + 4], "big") for i in range(4, header, 4))
    if len(data) - header != int(np.prod(dims)):
        raise DataFormatError(path, f"header declares shape {dims} ({int(np.prod(dims))} bytes) "
                                    f"but {len(data) - header} bytes follow it")
    # A copy, so callers get an ordinary writable array rather than a view of an immutable buffer.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx(path: str | Path) -> np.ndarray:
    """Read a gzipped or uncompressed IDX file: uint8 [N, rows, cols] images or uint8 [N] labels."""
    path = Path(path)
    return _parse_idx(_decompressed(path), path)


def _md5_mismatch(data: bytes, name: str) -> str | None:
    """What is wrong with ``data`` as the decompressed content of the canonical file ``name``, if anything."""
    actual, expected = hashlib.md5(data).hexdigest(), MD5[name]
    return None if actual == expected else f"md5 of the decompressed content is {actual}, expected {expected}"


def _read_verified(path: Path) -> np.ndarray:
    """read_idx, after checking the content against the canonical md5 for the file's name."""
    data = _decompressed(path)
    if problem := _md5_mismatch(data, path.name):
        raise DataFormatError(path, f"{problem}: this is not the canonical MNIST file. Delete it so it "
                                    "is downloaded again, or supply the correct file (data.mnist_dir=/path "
                                    f"or {ENV_VAR}).")
    return _parse_idx(data, path)


def _split_files(split: str) -> tuple[str, str]:
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown MNIST split {split!r}; expected one of {sorted(SPLIT_FILES)}")
    return SPLIT_FILES[split]


def load_split(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Verified (images uint8 [N, 28, 28], labels uint8 [N]) of ``split`` ('train' or 'test')."""
    images_path, labels_path = (Path(directory) / name for name in _split_files(split))
    images, labels = _read_verified(images_path), _read_verified(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFormatError(images_path, f"expected 28x28 images, got shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataFormatError(labels_path, f"{labels.shape} labels for {len(images)} images in "
                                           f"{images_path.name}")
    if labels.max(initial=0) > 9:
        raise DataFormatError(labels_path, f"label {int(labels.max())} outside 0-9")
    return images, labels


def split_checksum(split: str) -> str:
    """A stable key of a split's source content (its two md5s), for caches of data built from it."""
    return "-".join(MD5[name] for name in _split_files(split))


def _missing(directory: Path) -> list[str]:
    return [name for name in ALL_FILES if not (directory / name).is_file()]


def _how_to_supply(download_dir: Path | None) -> str:
    where = f"; or put them in {download_dir}" if download_dir is not None else ""
    return (f"Supply the four files ({', '.join(ALL_FILES)}): pass data.mnist_dir=/path/to/dir on the "
            f"command line or set {ENV_VAR}=/path/to/dir{where}.")


def _download(name: str, directory: Path, progress: Progress, errors: list[str]) -> bool:
    """Fetch ``name`` into ``directory`` from the first mirror that serves a verified copy.

    The download goes to a hidden temporary name and is renamed only once its checksum passes,
    so an interrupted download never leaves a file that looks complete. Failures are appended
    to ``errors``; returns whether the file was fetched.
    """
    for mirror in MIRRORS:
        url = mirror + name
        try:
            with atomic_file(directory / name) as out, \
                    urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                size = response.headers.get("Content-Length")
                task = progress.add_task(name, total=int(size) if size else None)
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
                out.flush()
                if problem := _md5_mismatch(_decompressed(Path(out.name)), name):
                    raise ValueError(problem)  # the bad download is removed, never renamed
            return True
        except (OSError, ValueError, http.client.HTTPException) as e:  # ValueError: DataFormatError
            errors.append(f"{url}: {e}")
    return False


def given_dir(mnist_dir: str | Path | None = None, download_dir: Path | None = None) -> Path | None:
    """The directory the user named, ``mnist_dir`` else ``ISL_MNIST_DIR`` (None if neither),
    which must hold the four files; ``download_dir``: where they could go instead, for the error."""
    explicit = mnist_dir if mnist_dir is not None else os.environ.get(ENV_VAR) or None
    if explicit is None:
        return None
    source = "data.mnist_dir" if mnist_dir is not None else ENV_VAR
    directory = Path(explicit).expanduser()
    if missing := _missing(directory):
        lacks = f"lacks {', '.join(missing)}" if directory.is_dir() else "is not a directory"
        into = f" into {download_dir}" if download_dir is not None else ""
        raise MnistUnavailableError(
            f"MNIST directory {directory} (from {source}) {lacks}. Point {source} at a folder holding "
            f"the four files ({', '.join(ALL_FILES)}), or leave it unset: isl then reads its cache of "
            f"built sequences, or finds the files in its search folders or downloads them{into}.")
    return directory


def locate_mnist(mnist_dir: str | Path | None = None, search_dirs: Iterable[str | Path] = (),
                 download_dir: str | Path | None = None, download: bool = True) -> Path:
    """The directory holding the four MNIST files, resolved in this order:

    1. ``mnist_dir``, else the ``ISL_MNIST_DIR`` environment variable. An explicit directory must
       hold all four files: a mistake there is reported, never silently bypassed.
    2. The first of ``search_dirs`` holding all four, then ``download_dir`` if it already does.
    3. If ``download``, the missing files are downloaded into ``download_dir`` from ``MIRRORS``.

    Only presence is checked here; ``load_split`` verifies the content, and a corrupt file is
    reported by name rather than downloaded over (the user may have put it there on purpose).
    """
    download_dir = Path(download_dir).expanduser() if download_dir is not None else None
    if (directory := given_dir(mnist_dir, download_dir)) is not None:
        return directory

    tried = []
    candidates = [Path(d).expanduser() for d in search_dirs]
    candidates += [download_dir] if download_dir is not None else []
    for directory in candidates:
        if not (missing := _missing(directory)):
            return directory
        tried.append(f"{directory}: lacks {', '.join(missing)}")

    if download_dir is None or not download:
        tried.append("download: " + ("disabled" if not download else "no download directory given"))
    else:
        download_dir.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns) as progress:
            # Stop at the first file no mirror serves: offline, the rest would fail the same way.
            fetched = all(_download(name, download_dir, progress, errors)
                          for name in _missing(download_dir))
        if fetched:
            return download_dir
        tried += errors
    raise MnistUnavailableError("MNIST files not found. Tried:\n" + "".join(f"  - {t}\n" for t in tried)
                                + _how_to_supply(download_dir))
