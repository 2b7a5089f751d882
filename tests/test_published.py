"""The published-format reader and writer: real sample files, round trips, bad input, fuzzing."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isl.data.published import read_inputdata, read_labels, read_published, write_published
from isl.data.sequences import DataFormatError, StrokeSet, check_sequence

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stroke-samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(),
                                   reason=f"real sample files not found at {SAMPLES}")

# trainimg-2-points.txt of the published set, as stored in a public copy of it
# (github jsinglet/mnist-stroke-data, sequences/trainimg-2-points.txt).
PUBLISHED_POINTS_2 = (
    "col,row\n5,9\n5,10\n5,11\n5,12\n5,13\n4,14\n4,15\n5,16\n6,16\n7,16\n8,16\n9,16\n10,16\n"
    "11,16\n12,16\n13,16\n14,15\n15,15\n16,15\n17,15\n18,15\n19,15\n19,16\n19,17\n19,18\n18,19\n"
    "18,20\n18,21\n18,22\n18,23\n-1,-1\n19,14\n20,13\n20,12\n20,11\n21,10\n21,9\n22,8\n22,7\n22,6\n"
    "-2,-2\n")

VALID = b"5 9 0 0\n0 1 0 0\n0 0 1 0\n1 -9 0 0\n0 0 1 1\n"


def sequence(strokes: list[list[tuple[int, int]]], start=(3, 4)) -> np.ndarray:
    """A valid sequence: a start point, strokes of (dx, dy) offsets, pen lifts between, end row."""
    rows = [[*start, 0, 0]]
    for k, stroke in enumerate(strokes):
        if k:
            rows.append([0, 0, 1, 0])
        rows += [[dx, dy, 0, 0] for dx, dy in stroke]
    return np.array(rows + [[0, 0, 1, 1]], dtype=np.int8)


def small_set() -> StrokeSet:
    seqs = [sequence([[(1, 0), (1, 1)]]), sequence([[(0, 1)], [(-2, 3), (1, 1)]], start=(20, 2)),
            sequence([[(1, -1)] * 5, [(0, 1)], [(-1, 0)]], start=(1, 28))]
    return StrokeSet.from_sequences(seqs, [7, 0, 9])


def assert_same(a: StrokeSet, b: StrokeSet) -> None:
    assert np.array_equal(a.steps, b.steps) and a.steps.dtype == b.steps.dtype
    assert np.array_equal(a.starts, b.starts) and np.array_equal(a.labels, b.labels)


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# --- the real published files -------------------------------------------------------------

@needs_samples
@pytest.mark.parametrize("index, rows, start", [(2, 41, (5, 9)), (58, 31, (9, 10))])
def test_real_sample_files(index, rows, start):
    steps = read_inputdata(SAMPLES / f"trainimg-{index}-inputdata.txt")
    assert steps.shape == (rows, 4) and steps.dtype == np.int8
    assert tuple(steps[0]) == (*start, 0, 0)
    assert (steps == [0, 0, 1, 0]).all(axis=1).sum() == 1          # one pen lift
    assert tuple(steps[-1]) == (0, 0, 1, 1)
    points = np.cumsum(steps[:, :2].astype(int), axis=0)[steps[:, 2] == 0]
    assert points.min() >= 1 and points.max() <= 28                  # inside the 28x28 image


@needs_samples
def test_rewriting_real_samples_is_byte_exact_and_points_match_the_published_file(tmp_path):
    seqs = [read_inputdata(SAMPLES / f"trainimg-{i}-inputdata.txt") for i in (2, 58)]
    write_published(StrokeSet.from_sequences(seqs, [4, 4]), tmp_path, "train")
    for written, i in ((0, 2), (1, 58)):
        assert ((tmp_path / f"trainimg-{written}-inputdata.txt").read_bytes()
                == (SAMPLES / f"trainimg-{i}-inputdata.txt").read_bytes())
    assert (tmp_path / "trainimg-0-points.txt").read_text() == PUBLISHED_POINTS_2
    assert (tmp_path / "trainlabels.txt").read_bytes() == b"4\n4\n"


# --- round trips ----------------------------------------------------------------------------

def check_companion_files(folder: Path, split: str, strokes: StrokeSet) -> None:
    """targetdata and points say what the inputdata implies, in the published layout."""
    for i in range(len(strokes)):
        steps = strokes.sequence(i).astype(int)
        target = (folder / f"{split}img-{i}-targetdata.txt").read_text()
        rows = [list(map(int, line.split(" "))) for line in target.splitlines()]
        assert target.endswith("\n") and np.array_equal(np.array(rows)[:, 10:], steps)
        onehot = np.eye(10, dtype=int)[[strokes.labels[i]] * len(steps)]
        assert np.array_equal(np.array(rows)[:, :10], onehot)
        lines = (folder / f"{split}img-{i}-points.txt").read_text().split("\n")
        assert lines[0] == "col,row" and lines[-1] == "" and len(lines) == len(steps) + 2
        points = np.array([list(map(int, line.split(","))) for line in lines[1:-1]])
        absolute = np.cumsum(steps[:, :2], axis=0)
        lift = steps[:, 2] == 1
        assert (points[lift[:-1].nonzero()[0]] == -1).all() and tuple(points[-1]) == (-2, -2)
        assert np.array_equal(points[~lift], absolute[~lift])


def test_folder_round_trip(tmp_path):
    strokes = small_set()
    write_published(strokes, tmp_path / "sequences", "test")
    check_companion_files(tmp_path / "sequences", "test", strokes)
    assert (tmp_path / "sequences" / "testlabels.txt").read_bytes() == b"7\n0\n9\n"
    assert_same(read_published(tmp_path / "sequences", "test"), strokes)
    assert_same(read_published(tmp_path, "test"), strokes)           # the folder holding sequences/
    assert_same(read_published(tmp_path, "test", limit=2), strokes.head(2))


def test_tar_round_trip(tmp_path):
    strokes = small_set()
    write_published(strokes, tmp_path / "sequences", "train")
    write_published(strokes.head(1), tmp_path / "sequences", "test")
    archive = tmp_path / "sequences.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "sequences", arcname="sequences")
    assert_same(read_published(archive, "train", extract_dir=tmp_path / "x"), strokes)
    assert_same(read_published(archive, "test", extract_dir=tmp_path / "x"), strokes.head(1))
    assert_same(read_published(archive, "train", limit=2), strokes.head(2))  # temporary folder
    extracted = {p.name for p in (tmp_path / "x" / "sequences").iterdir()}
    assert "trainimg-0-targetdata.txt" not in extracted                  # only what a read needs


def test_chunked_writes_append_labels(tmp_path):
    strokes = small_set()
    write_published(strokes.head(2), tmp_path, "train")
    write_published(StrokeSet.from_sequences([strokes.sequence(2)], strokes.labels[2:]), tmp_path,
                    "train", first_index=2)
    assert_same(read_published(tmp_path, "train"), strokes)
    with pytest.raises(ValueError, match="holds 3 labels"):
        write_published(strokes, tmp_path, "train", first_index=5)


def test_writer_refuses_what_the_format_cannot_hold(tmp_path):
    bad = StrokeSet.from_sequences([np.array([[1, 1, 0, 0], [2, 0, 1, 0], [0, 0, 1, 1]])], [3])
    with pytest.raises(DataFormatError, match="pen-lift"):
        write_published(bad, tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        write_published(small_set(), tmp_path, "validation")
    assert not list(tmp_path.iterdir())


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("content, line, message", [
    (b"5 9 0 0\n0 x 0 0\n0 0 1 1\n", 2, "not an integer: 'x'"),
    (b"5 9 0 0\n0 1 0\n0 0 1 1\n", 2, "expected 4 integers"),
    (b"5 9 0 0\n0 1 0 0 0\n0 0 1 1\n", 2, "got 5 fields"),
    (b"5 9 0 0\n0 1 0 0\n0 0 1 0\n", 3, "no end-of-digit marker"),
    (b"5 9 0 0\n\n0 0 1 1\n", 2, "blank line"),
    (b"5 9 0 0\n0 0 1 1\n\n", 3, "blank line"),
    (b"5 9 0 0\n0 1000000000000000000000 0 0\n0 0 1 1\n", 2, "outside -128..127"),
    (b"5 9 0 0\n0 200 0 0\n0 0 1 1\n", 2, "outside -128..127"),
    (b"5 9 0 0\r\n0 0 1 1\r\n", 1, "carriage return"),
    (b"5\t9 0 0\n0 0 1 1\n", 1, "single spaces"),
    (b"5  9 0 0\n0 0 1 1\n", 1, "single spaces"),
    (b"5 9 0 0\n0 0 1 1\n0 1 0 0\n0 0 1 1\n", 2, "end-of-digit marker before the last row"),
    (b"5 9 0 0\n0 1 2 0\n0 0 1 1\n", 2, "flags must be 0 or 1"),
    (b"5 9 0 0\n3 1 1 0\n0 0 1 1\n", 2, "pen-lift/end row must have dx = dy = 0"),
    (b"\xff\xfe 9 0 0\n0 0 1 1\n", 1, "not an integer"),
])
def test_malformed_inputdata_names_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "trainimg-7-inputdata.txt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as caught:
        read_inputdata(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}, line {line}: ")


@pytest.mark.parametrize("content, message", [(b"", "empty file"), (b"0 0 1 1\n", "empty sequence")])
def test_too_short_inputdata(tmp_path, content, message):
    path = tmp_path / "x-inputdata.txt"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=message) as caught:
        read_inputdata(path)
    assert str(path) in str(caught.value)


def test_final_newline_is_optional(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(VALID[:-1])
    assert read_inputdata(path).tolist() == [[5, 9, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, -9, 0, 0],
                                            [0, 0, 1, 1]]


def test_labels(tmp_path):
    path = tmp_path / "trainlabels.txt"
    path.write_bytes(b"5\n0\n4\n")
    labels = read_labels(path)
    assert labels.dtype == np.uint8 and labels.tolist() == [5, 0, 4]
    for content, line in ((b"5\n12\n", 2), (b"5\nx\n", 2), (b"5\n\n3\n", 2), (b"-1\n", 1)):
        path.write_bytes(content)
        with pytest.raises(DataFormatError, match="expected one digit") as caught:
            read_labels(path)
        assert caught.value.line == line and str(path) in str(caught.value)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataFormatError, match="labels file not found") as caught:
        read_published(tmp_path, "train")
    assert str(tmp_path / "trainlabels.txt") in str(caught.value)
    write_published(small_set(), tmp_path, "train")
    (tmp_path / "trainimg-1-inputdata.txt").unlink()
    with pytest.raises(DataFormatError, match="missing inputdata file for image 1") as caught:
        read_published(tmp_path, "train")
    assert str(tmp_path / "trainimg-1-inputdata.txt") in str(caught.value)
    assert len(read_published(tmp_path, "train", limit=1)) == 1
    with pytest.raises(DataFormatError, match="no such folder"):
        read_published(tmp_path / "nowhere.tar.gz", "train")


@pytest.mark.parametrize("evil", ["../evil.txt", "sequences/../../evil.txt", "ABSOLUTE"])
def test_unsafe_archives_are_refused_and_write_nothing(tmp_path, evil):
    outside = tmp_path / "evil.txt"
    name = str(outside) if evil == "ABSOLUTE" else evil
    archive = make_tar(tmp_path / "bad.tar.gz", {"sequences/trainlabels.txt": b"1\n",
                                                 "sequences/trainimg-0-inputdata.txt": VALID,
                                                 name: b"gotcha"})
    dest = tmp_path / "deep" / "extract"
    with pytest.raises(DataFormatError, match="unsafe member") as caught:
        read_published(archive, "train", extract_dir=dest)
    assert str(archive) in str(caught.value) and repr(name) in str(caught.value)
    assert not outside.exists() and not (tmp_path / "deep" / "evil.txt").exists()
    assert not dest.exists() or not any(dest.rglob("*"))            # nothing written at all


def test_links_in_archives_are_refused(tmp_path):
    archive = tmp_path / "link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("sequences/trainimg-0-inputdata.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataFormatError, match="unsafe member"):
        read_published(archive, "train", extract_dir=tmp_path / "x")


def test_corrupt_archive(tmp_path):
    good = make_tar(tmp_path / "good.tar.gz", {"sequences/trainlabels.txt": b"1\n"})
    for name, data in (("not-a-tar.tar.gz", b"hello"), ("cut.tar.gz", good.read_bytes()[:30])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataFormatError, match="cannot extract archive") as caught:
            read_published(tmp_path / name, "train", extract_dir=tmp_path / "x")
        assert name in str(caught.value)


# --- property-based: never anything but a valid sequence or a DataFormatError ---------------

steps_ = st.tuples(st.integers(-3, 3), st.integers(-3, 3))
valid_sequences = st.builds(sequence, st.lists(st.lists(steps_, min_size=1, max_size=8), min_size=1,
                                               max_size=4),
                            st.tuples(st.integers(1, 28), st.integers(1, 28)))
fuzz = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def text_of(steps: np.ndarray) -> bytes:
    return "".join(" ".join(map(str, row)) + "\n" for row in steps.tolist()).encode()


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "trainimg-0-inputdata.txt"


def outcome(path: Path, data: bytes):
    """Read ``data``: a valid sequence that is exactly what the text says, or DataFormatError."""
    path.write_bytes(data)
    try:
        steps = read_inputdata(path)
    except DataFormatError as error:
        assert str(error).startswith(str(path))
        return None
    check_sequence(steps, path)
    assert steps.dtype == np.int8
    assert steps.ravel().tolist() == [int(field) for field in data.split()]
    return steps


@fuzz
@given(valid_sequences)
def test_valid_files_read_back_exactly(fuzz_file, steps):
    assert outcome(fuzz_file, text_of(steps)).tolist() == steps.tolist()


@fuzz
@given(valid_sequences, st.data())
def test_truncated_files(fuzz_file, steps, data):
    text = text_of(steps)
    cut = data.draw(st.integers(0, len(text) - 1))
    result = outcome(fuzz_file, text[:cut])
    assert result is None or text[:cut].endswith(b"0 0 1 1")  # only a cut at the very end survives


@fuzz
@given(valid_sequences, st.data(), st.binary(min_size=1, max_size=6))
def test_junk_bytes_inserted(fuzz_file, steps, data, junk):
    text = text_of(steps)
    at = data.draw(st.integers(0, len(text)))
    outcome(fuzz_file, text[:at] + junk + text[at:])


@fuzz
@given(valid_sequences, st.data())
def test_wrong_column_counts_and_huge_numbers(fuzz_file, steps, data):
    rows = [list(map(str, row)) for row in steps.tolist()]
    r = data.draw(st.integers(0, len(rows) - 1))
    if data.draw(st.booleans()):
        width = data.draw(st.sampled_from([0, 1, 2, 3, 5, 6, 14]))
        rows[r] = (rows[r] * 4)[:width]
    else:
        rows[r][data.draw(st.integers(0, 3))] = str(data.draw(
            st.integers(-10**40, 10**40).filter(lambda v: not -128 <= v <= 127)))
    assert outcome(fuzz_file, "".join(" ".join(row) + "\n" for row in rows).encode()) is None


@fuzz
@given(st.lists(st.sampled_from([b"0", b"1", b"-1", b"-", b"99", b"128", b" ", b"  ", b"\t", b"\n",
                                 b"\r\n", b"\xff", b"0 0 1 0\n", b"0 0 1 1\n"]), max_size=40))
def test_arbitrary_token_soup(fuzz_file, parts):
    outcome(fuzz_file, b"".join(parts))
