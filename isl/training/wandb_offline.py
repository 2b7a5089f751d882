"""What a job's offline W&B runs hold, read back from their files (``wandb/offline-run-*/``).

wandb has no Python reader for its transaction log (``run-<id>.wandb``), so ``read_records``
decodes it: a 7-byte file header (``:W&B``, magic 0xBEE1, version), then LevelDB-log records in
32 KiB blocks, each with a 7-byte header (CRC-32 of type and data, length, type
FULL/FIRST/MIDDLE/LAST), holding ``wandb_internal_pb2.Record`` messages. A process killed while
wandb was writing leaves a cut or damaged tail: reading stops at the first record that is not
whole, so what it returns is what the file durably holds.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

BLOCK, HEADER = 32 * 1024, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    """The whole ``wandb_internal_pb2.Record`` messages of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2  # here: only runs that log to W&B need wandb

    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7].ljust(7, b"\0"))
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B transaction log")
    records, parts, pos = [], [], 7
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:  # zero padding at the end of a block or of the file
            pos += left
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        if len(chunk) < length or zlib.crc32(bytes([kind]) + chunk) != crc or kind not in (
                FULL, FIRST, MIDDLE, LAST):
            break  # cut short or damaged: nothing after it was durably written
        pos += HEADER + length
        parts = [chunk] if kind in (FULL, FIRST) else [*parts, chunk]
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            records.append(record)
    return records


def logged_rows(wandb_dir: Path) -> int:
    """How many rows of the job's metrics.csv its offline W&B runs hold: every row is logged at
    W&B step = its row number in metrics.csv, so one more than the highest step they hold."""
    steps = [record.history.step.num for path in sorted(Path(wandb_dir).glob("offline-run-*/run-*.wandb"))
             for record in read_records(path) if record.WhichOneof("record_type") == "history"]
    return max(steps) + 1 if steps else 0
