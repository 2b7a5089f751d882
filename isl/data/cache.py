"""The compact on-disk form of a built split: one .npz per split, written atomically.

Building 70,000 sequences takes seconds, reading them back milliseconds; the file name carries
a key of the source content and the builder version, so a new builder or other source data
never reuses a stale build.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from isl.data.sequences import StrokeSet
from isl.core.files import atomic_file

log = logging.getLogger(__name__)


def write_strokes(path: Path, strokes: StrokeSet) -> None:
    """Write ``strokes`` to ``path`` so that a killed or failed write leaves no file there."""
    with atomic_file(path) as f:
        np.savez(f, steps=strokes.steps, starts=strokes.starts, labels=strokes.labels)


def read_strokes(path: Path) -> StrokeSet | None:
    """The split cached at ``path``, or None if there is none or it is unreadable (then rebuilt)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            return StrokeSet(f["steps"], f["starts"], f["labels"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        log.warning("Ignoring unreadable dataset cache %s (%s); it will be rebuilt.", path, err)
        return None
