"""Split a byte stream into records (lines) as Arrow arrays, counting them without a parser.

Counting here, apart from any JSON or CSV parser, is what lets the ingest prove that every
record read is either stored or quarantined: a parser can only turn a record into a row or a
rejection, never make it disappear.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa

CHUNK_BYTES = 16 << 20
# Records yielded at a time, however short they are: 16 MB of `{}` lines is 5.6M records,
# and every step after this one costs memory by the record (a gzip bomb of them reached
# 5.6 GB). A chunk of real sessions holds 20,000 to 60,000.
MAX_RECORDS = 50_000
# Records cut from a chunk in one round: the arrays below cost about 60 bytes a record, and a
# chunk of blank lines holds 16M of them (1.2 GB); the rest of such a chunk waits its turn.
MAX_ROUND = 2_000_000
_NEWLINE, _QUOTE = 10, 34
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 13, 32]] = True


def _non_blank(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which records hold more than whitespace. Almost every record starts with a
    non-blank byte; only the others are scanned whole."""
    keep: np.ndarray = ~_WHITESPACE[arr[starts]]
    if not keep.all():
        # Records are contiguous and never empty, so `reduceat` over their starts sees each.
        any_text = np.logical_or.reduceat(~_WHITESPACE[arr[: ends[-1]]], starts)
        keep |= any_text
    return keep


@dataclass(frozen=True)
class Records:
    """Non-blank records of one chunk: their bytes (line end included) and first line number."""

    data: pa.LargeBinaryArray
    line: np.ndarray  # int64, 1-based physical line where each record starts
    chunk: bytes  # the bytes the records were cut from (and maybe a few more)

    def may_contain(self, text: bytes) -> bool:
        """Whether `text` may occur in a record: false only if it occurs in none."""
        return text in self.chunk


def iter_records(
    stream: BinaryIO, *, quoted: bool = False, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[Records]:
    """Yield the records of `stream`, one chunk at a time.

    A record ends at a newline; with `quoted` (CSV), only at a newline outside double quotes,
    so a quoted field may span lines. Blank records (only whitespace) are not yielded, but
    they still count for line numbers.
    """
    carry = b""
    first_line = 1  # the physical line on which `carry` starts
    at_end = starved = False
    while True:
        if starved or (not at_end and len(carry) < chunk_bytes):
            block = stream.read(chunk_bytes)
            at_end = not block
            buf = carry + block if carry else block
        else:
            buf = carry  # what the last round left of a chunk of many records
        if not buf:
            return
        arr = np.frombuffer(buf, dtype=np.uint8)
        newlines = np.flatnonzero(arr == _NEWLINE)
        ends = newlines
        if quoted:
            # A newline ends a record when the quotes before it are balanced; `""` escapes
            # keep the parity, so counting is enough.
            quotes = np.flatnonzero(arr == _QUOTE)
            ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
        whole = len(ends) <= MAX_ROUND
        ends = ends[:MAX_ROUND] + 1  # exclusive ends, the newline kept inside the record
        if at_end and whole and (len(ends) == 0 or ends[-1] < len(buf)):
            ends = np.append(ends, len(buf))
        starved = len(ends) == 0
        if starved:
            carry = buf
            continue
        starts = np.concatenate(([0], ends[:-1]))
        lines = first_line + np.searchsorted(newlines, starts)
        keep = _non_blank(arr, starts, ends)
        consumed = int(ends[-1])
        offsets = pa.py_buffer(np.concatenate((starts, [consumed])).astype(np.int64))
        data = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(starts), [None, offsets, pa.py_buffer(buf)]
        )
        if not keep.all():
            data, lines = data.filter(pa.array(keep)), lines[keep]
        for at in range(0, len(data), MAX_RECORDS):
            piece = slice(at, at + MAX_RECORDS)
            yield Records(data[piece], lines[piece].astype(np.int64), buf)
        first_line += int(np.searchsorted(newlines, consumed))
        carry = buf[consumed:]
        if at_end and not carry:
            return
