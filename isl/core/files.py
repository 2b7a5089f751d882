"""Files that are either complete or absent: what a killed process, a full disk or a failed
download leaves behind is the previous file (or none), never a truncated one."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: a hidden temporary file beside it (its name is
    the file object's ``name``), flushed to disk and renamed over ``path`` when the block ends.
    An exception in the block, or in writing, removes the temporary file and leaves ``path`` as
    it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # unique: writers may race
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes | memoryview | str) -> None:
    """Write ``data`` to ``path`` through ``atomic_file``. A failure (disk full, no permission)
    raises an OSError naming ``path`` and whether the previous file is intact."""
    path = Path(path)
    try:
        with atomic_file(path) as f:
            f.write(data.encode() if isinstance(data, str) else data)
    except OSError as err:
        raise OSError(err.errno, f"could not write {path}: {err.strerror or err}"
                      + (f"; the previous {path.name} is intact" if path.exists() else "")) from err
