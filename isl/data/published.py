"""Read and write the published "MNIST digits stroke sequence data" files (Edwin de Jong).

Layout, per split ``train`` / ``test`` and 0-based MNIST image index N, all in one folder
(``sequences/`` inside the published ``sequences.tar.gz``)::

    {split}img-N-inputdata.txt    one row per step: "dx dy eos eod"
    {split}img-N-targetdata.txt   the same rows, each prefixed by the 10-column one-hot label:
                                  "0 0 0 0 0 1 0 0 0 0 dx dy eos eod" (same row, NOT shifted)
    {split}img-N-points.txt       CSV: header "col,row", then one absolute "x,y" per row of
                                  inputdata: "-1,-1" where inputdata has a pen lift, "-2,-2" last
    {split}labels.txt             one label per line; line i is image i

All files: integers separated by single spaces (commas in points.txt), '\\n' line ends,
a final '\\n'; points and inputdata have the same number of rows (points plus its header).

Where each fact comes from:

- Verified against real published files: inputdata bytes (``shared/data/stroke-samples``,
  trainimg-2 and -58); targetdata, points and inputdata of trainimg-0 and points of trainimg-2
  as stored in a public copy of the extracted set (github jsinglet/mnist-stroke-data,
  ``sequences/``): header ``col,row``, rows line up one to one with inputdata, targetdata is
  one-hot + the same row.
- Verified against the generating code (github edwin-de-jong/mnist-digits-as-stroke-sequences,
  ``R/processImages.R``, ``R/constructInputData.R``, ``R/extractStrokes_TSP.R``): points are
  written by R ``write.csv(quote=F, row.names=F)``, target/input data by ``write.table`` without
  names; a pen-lift row is exactly ``0 0 1 0`` (its offset is left at zero) and the last row
  ``0 0 1 1``; labels are written by C++ ``ofstream << double``, i.e. "5\\n".
- Inferred, not seen in a real file: that ``{split}labels.txt`` lies in the same folder as the
  sequence files inside the archive (users of the archive describe it so).
"""

from __future__ import annotations

import functools
import re
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np

from isl.data.sequences import STEP_DTYPE, DataFormatError, StrokeSet, check_sequence

SPLITS = ("train", "test")
POINTS_HEADER = "col,row"

# A whole well-formed inputdata file: rows of 4 single-space-separated ints of at most
# 3 digits, '\n' after each row (the last one optional). Checked in one regex call so the
# common case is fast; on a mismatch _diagnose finds the first bad line for the message.
_ROW = rb"-?\d{1,3} -?\d{1,3} -?\d{1,3} -?\d{1,3}"
_WELL_FORMED = re.compile(rb"(?:%s\n)*%s\n?" % (_ROW, _ROW))
_INT = re.compile(rb"-?\d+")
_LABELS = re.compile(rb"(?:[0-9]\n)*[0-9]\n?")
_LO, _HI = np.iinfo(STEP_DTYPE).min, np.iinfo(STEP_DTYPE).max


def _show(field: bytes) -> str:
    text = field[:20].decode("utf-8", errors="replace")
    return repr(text + ("..." if len(field) > 20 else ""))


def _diagnose(data: bytes, path) -> None:
    """Raise a DataFormatError naming the first malformed line of an inputdata file."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the final '\n'
    for number, line in enumerate(lines, start=1):
        if line == b"":
            raise DataFormatError(path, "blank line", line=number)
        if line.endswith(b"\r"):
            raise DataFormatError(path, "carriage return: lines must end in '\\n' only", line=number)
        fields = line.split(b" ")
        if b"" in fields or len(line.split()) != len(fields):  # doubled spaces, tabs
            raise DataFormatError(path, "fields must be separated by single spaces", line=number)
        if len(fields) != 4:
            raise DataFormatError(path, f"expected 4 integers (dx dy eos eod), got {len(fields)} "
                                  "fields", line=number)
        for field in fields:
            if not _INT.fullmatch(field):
                raise DataFormatError(path, f"not an integer: {_show(field)}", line=number)
            if len(field.lstrip(b"-")) > 3 or not _LO <= int(field) <= _HI:
                raise DataFormatError(path, f"value {_show(field)} outside {_LO}..{_HI}", line=number)
    raise DataFormatError(path, "malformed file")  # unreachable unless the regex and this disagree


def _parse_inputdata(data: bytes, path) -> np.ndarray:
    if not data:
        raise DataFormatError(path, "empty file")
    if not _WELL_FORMED.fullmatch(data):
        _diagnose(data, path)
    steps = np.array(data.split(), dtype=np.int64).reshape(-1, 4)
    bad = (steps < _LO) | (steps > _HI)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataFormatError(path, f"value outside {_LO}..{_HI}", line=row + 1)
    check_sequence(steps, path)
    return steps.astype(STEP_DTYPE)


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, f"{what} not found") from None


def read_inputdata(path: str | Path) -> np.ndarray:
    """One ``-inputdata.txt`` file as a (T, 4) int8 array; any malformation -> DataFormatError."""
    path = Path(path)
    return _parse_inputdata(_read_bytes(path, "file"), path)


def read_labels(path: str | Path) -> np.ndarray:
    """A ``{split}labels.txt`` file (one digit per line) as a uint8 array."""
    path = Path(path)
    data = _read_bytes(path, "labels file")
    if not data:
        raise DataFormatError(path, "empty labels file")
    if not _LABELS.fullmatch(data):
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for number, line in enumerate(lines, start=1):
            if not re.fullmatch(rb"[0-9]", line):
                raise DataFormatError(path, f"expected one digit 0-9, got {_show(line)}", line=number)
    return np.frombuffer(data.replace(b"\n", b""), dtype=np.uint8) - ord("0")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _needed(split: str, limit: int | None):
    """Which archive members a read needs: the split's labels and (first ``limit``) inputdata.
    Extracting only these matters: creating the archive's 210,000 small files costs far more
    than reading the 60,000 or 10,000 that one split uses."""
    pattern = re.compile(rf"{split}img-(\d+)-inputdata\.txt")

    def wanted(member: tarfile.TarInfo) -> bool:
        name = member.name.rsplit("/", 1)[-1]
        if not member.isfile():
            return False
        if name == f"{split}labels.txt":
            return True
        match = pattern.fullmatch(name)
        return bool(match) and (limit is None or int(match[1]) < limit)
    return wanted


def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why a member may not be extracted, by its name and type alone (cheap enough for the
    archive's 210,000 members; the "data" filter, which resolves real paths, is not)."""
    if member.name.startswith("/"):
        return "absolute path"
    if ".." in member.name.replace("\\", "/").split("/"):
        return "path leads outside the extraction folder"
    if not (member.isfile() or member.isdir()):
        return "links and special files are not part of the published set"
    return None


def _extract(archive: Path, dest: Path, wanted) -> Path:
    """Extract the members ``wanted`` selects from ``archive`` into ``dest``, and return the
    folder where the labels file landed. An unsafe member, wanted or not, refuses the whole
    archive before anything is written; tarfile's "data" filter guards the extraction itself."""
    if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 / 3.11.4
        raise RuntimeError("safe tar extraction needs a Python with tarfile extraction filters")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                if reason := _unsafe(member):
                    raise DataFormatError(archive, f"unsafe member {member.name!r}: {reason}")
            chosen = [m for m in members if wanted(m)]
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=chosen, filter="data")
    except tarfile.FilterError as error:
        raise DataFormatError(archive, f"unsafe member {error.tarinfo.name!r}: {error}") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        if isinstance(error, FileNotFoundError) and error.filename == str(archive):
            raise DataFormatError(archive, "archive not found") from None
        raise DataFormatError(archive, f"cannot extract archive: {error}") from error
    labels = [m.name for m in chosen if m.name.endswith("labels.txt")]
    return (dest / labels[0]).parent if labels else dest


def _sequence_folder(folder: Path, split: str) -> Path:
    """``folder`` itself, or its ``sequences/`` subfolder if that is where the files are."""
    labels = f"{split}labels.txt"
    inner = folder / "sequences"
    if not (folder / labels).exists() and (inner / labels).exists():
        return inner
    return folder


def _read_folder(folder: Path, split: str, limit: int | None) -> StrokeSet:
    folder = _sequence_folder(folder, split)
    labels = read_labels(folder / f"{split}labels.txt")
    if limit is not None:
        labels = labels[:limit]
    sequences = []
    for index in range(len(labels)):
        path = folder / f"{split}img-{index}-inputdata.txt"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DataFormatError(path, f"missing inputdata file for image {index}, which "
                                  f"{split}labels.txt lists") from None
        sequences.append(_parse_inputdata(data, path))
    return StrokeSet.from_sequences(sequences, labels)


def read_published(source: str | Path, split: str, limit: int | None = None,
                   extract_dir: str | Path | None = None) -> StrokeSet:
    """Read one split from a ``sequences`` folder (or its parent) or from ``sequences.tar.gz``.

    From an archive only the files this read needs are extracted (safely), into
    ``extract_dir``, which is kept, or into a temporary folder removed afterwards; the folder
    read is the one holding ``{split}labels.txt`` in the archive. The number of images is the
    number of labels; ``limit`` keeps the first ``limit`` of them.
    """
    _check_split(split)
    source = Path(source)
    if source.is_dir():
        return _read_folder(source, split, limit)
    if not source.exists():
        raise DataFormatError(source, "no such folder or archive")
    if extract_dir is not None:
        return _read_folder(_extract(source, Path(extract_dir), _needed(split, limit)), split, limit)
    with tempfile.TemporaryDirectory(prefix="isl-published-") as tmp:
        return _read_folder(_extract(source, Path(tmp), _needed(split, limit)), split, limit)


@functools.lru_cache(maxsize=1 << 16)
def _line(row: tuple, sep: str) -> str:
    return sep.join(map(str, row)) + "\n"


def _lines(array: np.ndarray, sep: str = " ") -> list[str]:
    """One text line per row. Rows repeat a lot (offsets are mostly -1..1), so each distinct
    row is formatted once: this makes writing 70,000 images several times faster."""
    return [_line(row, sep) for row in map(tuple, array.tolist())]


def write_published(strokes: StrokeSet, out_dir: str | Path, split: str,
                    first_index: int = 0) -> None:
    """Write sequence i as image ``first_index + i``: its input, target and points files, plus
    the labels file, in the published byte layout.

    ``first_index = 0`` (re)writes ``{split}labels.txt``; a later chunk appends to it, which
    needs it to hold exactly ``first_index`` labels so that line i stays image i.
    """
    _check_split(split)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels_path = out / f"{split}labels.txt"
    if first_index < 0:
        raise ValueError(f"first_index must be >= 0, got {first_index}")
    if first_index > 0:
        have = len(read_labels(labels_path)) if labels_path.exists() else 0
        if have != first_index:
            raise ValueError(f"{labels_path} holds {have} labels; writing from image {first_index} "
                             "needs exactly that many")
    if len(strokes) == 0:
        raise ValueError("no sequences to write (an empty labels file would not read back)")
    if ((strokes.labels < 0) | (strokes.labels > 9)).any():
        raise ValueError("labels must be digits 0..9")
    for i in range(len(strokes)):
        steps = strokes.sequence(i)
        check_sequence(steps, f"sequence {i}")
    for i in range(len(strokes)):
        steps = strokes.sequence(i).astype(np.int64)
        label = int(strokes.labels[i])
        stem = out / f"{split}img-{first_index + i}"
        lines = _lines(steps)
        onehot = " ".join("1" if k == label else "0" for k in range(10)) + " "
        points = np.cumsum(steps[:, :2], axis=0)
        points[steps[:, 2] == 1] = -1  # pen lift
        points[-1] = -2                # end of digit
        for kind, text in (("inputdata", "".join(lines)),
                           ("targetdata", "".join([onehot + line for line in lines])),
                           ("points", POINTS_HEADER + "\n" + "".join(_lines(points, ",")))):
            with open(f"{stem}-{kind}.txt", "w", encoding="ascii", newline="\n") as f:
                f.write(text)
    with open(labels_path, "w" if first_index == 0 else "a", newline="\n") as f:
        f.write("".join(f"{label}\n" for label in strokes.labels.tolist()))


def write_generated(sequences: list[np.ndarray], out_dir: str | Path, labels=None, split: str = "test") -> Path:
    """Generated sequences (integer rows) as published ``{split}img-<i>-inputdata.txt`` files and,
    given ``labels`` (e.g. the class each was asked for), ``{split}labels.txt``: what
    ``read_generated`` and any reader of the published inputdata files take."""
    _check_split(split)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, steps in enumerate(sequences):
        steps = np.asarray(steps)
        if not np.array_equal(steps, np.round(steps)):
            raise ValueError(f"sequence {i} has offsets off the whole pixels: the published files hold integers")
        check_sequence(steps, f"sequence {i}")
        (out / f"{split}img-{i}-inputdata.txt").write_text("".join(_lines(steps.astype(np.int64))), encoding="ascii")
    if labels is not None:
        if len(labels) != len(sequences):
            raise ValueError(f"{len(labels)} labels for {len(sequences)} sequences")
        (out / f"{split}labels.txt").write_text("".join(f"{int(label)}\n" for label in labels))
    return out


def read_generated(folder: str | Path, split: str = "test",
                   limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The sequences of a folder of published inputdata files and their labels: all that
    ``{split}labels.txt`` lists, or, where the folder has none (generated digits asked for no
    class), every ``{split}img-<i>-inputdata.txt`` from i = 0 on, with no labels (None)."""
    folder = _sequence_folder(Path(folder), split)
    if (folder / f"{split}labels.txt").exists():
        strokes = _read_folder(folder, split, limit)
        return [strokes.sequence(i) for i in range(len(strokes))], strokes.labels
    sequences = []
    while limit is None or len(sequences) < limit:
        path = folder / f"{split}img-{len(sequences)}-inputdata.txt"
        if not path.is_file():
            break
        sequences.append(read_inputdata(path))
    if not sequences:
        raise DataFormatError(folder / f"{split}img-0-inputdata.txt",
                              f"no {split}labels.txt and no sequence files in the folder")
    return sequences, None
