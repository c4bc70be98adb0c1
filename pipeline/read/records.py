"""Split a byte stream into records (lines) as Arrow arrays, counting them without a parser.

Counting here, apart from any JSON or CSV parser, is what lets the ingest prove that every
record read is either stored or quarantined: a parser can only turn a record into a row or a
rejection, never make it disappear. A record this module cannot cut out cleanly (one larger
than `MAX_RECORD_BYTES`, a CSV quote that never closes) is still a record: it comes with an
error, and the records after it are read as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa

CHUNK_BYTES = 16 << 20
# The largest record read. DuckDB's JSON functions take several times a text's size, and
# the rest of the ingest holds copies of it too: six records of 15 MB peak at 820-910 MB RSS,
# of 30 MB at 1.3-1.6 GB, over the 1 GiB an ingest may take. A larger record is rejected
# as `record_too_large`, its bytes read and dropped, never held whole.
MAX_RECORD_BYTES = 16 << 20
# What a rejected record keeps of a record too large: enough to find it in the file.
PREFIX_BYTES = 1024
TOO_LARGE = "record_too_large"
UNBALANCED_QUOTE = "csv_unbalanced_quote"
# Records yielded at a time, however short they are: 16 MB of `{}` lines is 5.6M records,
# and every step after this one costs memory by the record (a gzip bomb of them reached
# 5.6 GB). A chunk of real sessions holds 20,000 to 60,000.
MAX_RECORDS = 50_000
# Lines cut in one round: the arrays below cost about 60 bytes a line, and a block of blank
# lines holds 16M of them (1.2 GB); such a block is cut in several rounds.
MAX_ROUND = 2_000_000

_NEWLINE, _QUOTE, _COMMA, _CR = 10, 34, 44, 13
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
    """Non-blank records of one chunk: their bytes (line end included) and first line number.

    `errors` names, by index, the records that could not be cut out as they are: the rule
    broken and a detail. Their `data` is what is kept of them (for a record too large, its
    first `PREFIX_BYTES`).
    """

    data: pa.LargeBinaryArray
    line: np.ndarray  # int64, 1-based physical line where each record starts
    chunk: bytes  # the bytes the records were cut from (and maybe a few more)
    errors: tuple[tuple[int, str, str], ...] = ()

    def may_contain(self, text: bytes) -> bool:
        """Whether `text` may occur in a record: false only if it occurs in none."""
        return text in self.chunk

    def error_columns(self) -> tuple[pa.StringArray, pa.StringArray]:
        """The rule and the detail of each record's error, null where it has none."""
        rules: list[str | None] = [None] * len(self.data)
        details: list[str | None] = [None] * len(self.data)
        for index, rule, detail in self.errors:
            rules[index], details[index] = rule, detail
        return pa.array(rules, pa.string()), pa.array(details, pa.string())

    def __getitem__(self, rows: slice) -> Records:
        start, stop, _ = rows.indices(len(self.data))
        errors = tuple((i - start, r, d) for i, r, d in self.errors if start <= i < stop)
        return Records(self.data[rows], self.line[rows], self.chunk, errors)


def iter_records(
    stream: BinaryIO,
    *,
    quoted: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[Records]:
    """Yield the records of `stream`, one chunk at a time, in at most about
    `max_record_bytes + chunk_bytes` of memory whatever the records' size.

    A record ends at a newline; with `quoted` (CSV), only at a newline outside a quoted field,
    so a quoted field may span lines. Blank records (only whitespace) are not yielded, but
    they still count for line numbers.
    """
    carry = b""
    first_line = 1  # the physical line on which `carry` starts
    blocks = _blocks(stream, chunk_bytes)
    while True:
        block = next(blocks, b"")
        at_end = not block
        buf = carry + block if carry else block
        if not buf:
            return
        arr = np.frombuffer(buf, dtype=np.uint8)
        newlines = np.flatnonzero(arr == _NEWLINE)
        ends, unbalanced = _ends(arr, newlines, quoted, close=at_end)
        tail = len(buf) - (int(ends[-1]) + 1 if len(ends) else 0)
        if quoted and not at_end and tail > max_record_bytes and len(newlines):
            # A quoted field open for longer than a record may be: its quote is taken for a
            # stray one, so that the lines after it are read as records of their own.
            ends, unbalanced = _ends(arr, newlines, quoted, close=True)
        ends = ends + 1  # exclusive ends, the newline kept inside the record
        if at_end and (len(ends) == 0 or ends[-1] < len(buf)):
            ends = np.append(ends, len(buf))
        consumed = int(ends[-1]) if len(ends) else 0
        if len(ends):
            records = _records(arr, buf, ends, newlines, first_line, unbalanced, max_record_bytes)
            if records is not None:
                for at in range(0, len(records.data), MAX_RECORDS):
                    yield records[at : at + MAX_RECORDS]
            first_line += int(np.searchsorted(newlines, consumed))
        carry = buf[consumed:]
        if at_end:
            return
        if len(carry) > max_record_bytes:
            # One line larger than a record may be (it has no newline, or it would have been
            # cut): what is left of it is read and dropped.
            # The bytes after its newline start the next record.
            size, carry, at_end = _skip_line(blocks, len(carry))
            yield Records(
                pa.array([_prefix(buf[consumed:])], pa.large_binary()),
                np.array([first_line], dtype=np.int64),
                b"",
                ((0, TOO_LARGE, _too_large(size, max_record_bytes)),),
            )
            first_line += 1
            if at_end:
                return


def _records(
    arr: np.ndarray,
    buf: bytes,
    ends: np.ndarray,
    newlines: np.ndarray,
    first_line: int,
    unbalanced: list[int],
    max_record_bytes: int,
) -> Records | None:
    """The non-blank records of `buf` that end at `ends`, or None if all are blank."""
    starts = np.concatenate(([0], ends[:-1]))
    lines = (first_line + np.searchsorted(newlines, starts)).astype(np.int64)
    keep = _non_blank(arr, starts, ends)
    large = np.flatnonzero(ends - starts > max_record_bytes)
    if len(unbalanced) or len(large):
        flagged = set(unbalanced), set(large.tolist())
        return _flagged(buf, starts, ends, lines, keep, *flagged, max_record_bytes)
    consumed = int(ends[-1])
    offsets = pa.py_buffer(np.concatenate((starts, [consumed])).astype(np.int64))
    data = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(starts), [None, offsets, pa.py_buffer(buf)]
    )
    if keep.all():
        return Records(data, lines, buf)
    if keep.any():
        return Records(data.filter(pa.array(keep)), lines[keep], buf)
    return None


def _flagged(
    buf: bytes,
    starts: np.ndarray,
    ends: np.ndarray,
    lines: np.ndarray,
    keep: np.ndarray,
    unbalanced: set[int],
    large: set[int],
    max_record_bytes: int,
) -> Records | None:
    """The records of a chunk that has some the splitter could not cut cleanly (rare: one
    record at a time, in Python)."""
    data: list[bytes] = []
    errors: list[tuple[int, str, str]] = []
    for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if i in large:
            size = end - start - (buf[end - 1] == _NEWLINE)  # as `_skip_line` counts
            errors.append((len(data), TOO_LARGE, _too_large(size, max_record_bytes)))
            data.append(_prefix(buf[start : start + PREFIX_BYTES + 4]))
        elif i in unbalanced:
            errors.append((len(data), UNBALANCED_QUOTE, "a quoted field opened here never closes"))
            data.append(buf[start:end])
        elif keep[i]:
            data.append(buf[start:end])
        else:
            continue
    if not data:
        return None
    rows = np.array([i for i in range(len(starts)) if keep[i] or i in large or i in unbalanced])
    return Records(pa.array(data, pa.large_binary()), lines[rows], buf, tuple(errors))


def _too_large(size: int, max_record_bytes: int) -> str:
    return f"{size:,} bytes, more than the {max_record_bytes:,} a record may have"


def _prefix(data: bytes) -> bytes:
    """The first `PREFIX_BYTES` of the start of a record, not cutting a UTF-8 character."""
    prefix = data[:PREFIX_BYTES]
    try:
        prefix.decode()
    except UnicodeDecodeError as exc:
        if exc.end == len(prefix) and exc.reason == "unexpected end of data":
            return prefix[: exc.start]  # a character cut in two at the end
    return prefix


def _blocks(stream: BinaryIO, chunk_bytes: int) -> Iterator[bytes]:
    """`stream` in blocks of `chunk_bytes`; a block of more than `MAX_ROUND` lines comes in
    pieces of at most that many, each ending at a newline."""
    while block := stream.read(chunk_bytes):
        newlines = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == _NEWLINE)
        start = 0
        for cut in newlines[MAX_ROUND - 1 : -1 : MAX_ROUND].tolist():
            yield block[start : cut + 1]
            start = cut + 1
        yield block[start:] if start else block


def _skip_line(blocks: Iterator[bytes], size: int) -> tuple[int, bytes, bool]:
    """Read and drop the rest of a line of which `size` bytes were read: its whole size, the
    bytes after its newline in the last block read, and whether the stream ended."""
    while True:
        block = next(blocks, b"")
        if not block:
            return size, b"", True
        newline = block.find(b"\n")
        if newline >= 0:
            return size + newline, block[newline + 1 :], False
        size += len(block)


def _ends(
    arr: np.ndarray, newlines: np.ndarray, quoted: bool, *, close: bool
) -> tuple[np.ndarray, list[int]]:
    """The newlines of `arr` that end records, and the indexes of records cut at a quote that
    does not close (with `close`, also one still open at the end of `arr`)."""
    if not quoted:
        return newlines, []
    quotes = np.flatnonzero(arr == _QUOTE)
    if len(quotes) == 0:
        return newlines, []
    if _quotes_pair_up(arr, quotes) and not (close and len(quotes) % 2):
        # Every quote opens or closes a field where the parser would: a newline ends a record
        # when the quotes before it are balanced (`""` escapes keep the parity).
        return newlines[np.searchsorted(quotes, newlines) % 2 == 0], []
    return _scan(arr, quotes, newlines, close)


_FIELD_START = np.zeros(256, dtype=bool)
_FIELD_START[[_COMMA, _NEWLINE]] = True
_FIELD_END = np.zeros(256, dtype=bool)
_FIELD_END[[_COMMA, _NEWLINE, _CR]] = True
# Around a quote that pairs up: before an opening one, a field's start, or the closing quote
# of a `""` escape; after a closing one, a field's end, or the opening quote of the escape.
_BEFORE_OPEN = _FIELD_START.copy()
_BEFORE_OPEN[_QUOTE] = True
_AFTER_CLOSE = _FIELD_END.copy()
_AFTER_CLOSE[_QUOTE] = True


def _quotes_pair_up(arr: np.ndarray, quotes: np.ndarray) -> bool:
    """Whether, taking the quotes of `arr` in pairs, each pair opens a field where one
    starts and closes it where one ends (or a `""` escape follows): then counting them says
    where records end. A quote inside an unquoted field (`12" monitor`) breaks this.

    (A quote next to an opening or closing one is always its partner in the escape: every
    quote byte is in `quotes`, and the pairs alternate.)
    """
    opens, closes = quotes[0::2], quotes[1::2]
    ok = _BEFORE_OPEN[arr[opens - 1]]  # for a quote at 0, arr[-1]: its verdict is replaced
    ok[0] |= opens[0] == 0
    if not ok.all():
        return False
    if not len(closes):
        return True
    ok = _AFTER_CLOSE[arr[np.minimum(closes + 1, len(arr) - 1)]]
    ok[-1] |= closes[-1] + 1 == len(arr)
    return bool(ok.all())


def _scan(
    arr: np.ndarray, quotes: np.ndarray, newlines: np.ndarray, close: bool
) -> tuple[np.ndarray, list[int]]:
    """Where records end, read the way the CSV parser reads: a quote opens a field only at
    its start, and a field that spans lines closes only where a field ends. A quoted field
    that spans lines and does not close so (or, with `close`, is still open at the end) is
    taken for a stray quote: its first line is a record of its own, with an error, and the
    lines after it are read afresh. Visits only the quotes and newlines (slow: only for
    chunks that need it)."""
    events = np.union1d(quotes, newlines)
    positions: list[int] = events.tolist()
    kinds: list[int] = arr[events].tolist()
    size = len(arr)
    ends: list[int] = []
    unbalanced: list[int] = []
    in_quote, opened, crossed = False, -1, False
    i = 0

    def unwind() -> int:
        # The record holding the stray quote ends at the first newline after it.
        newline = int(newlines[np.searchsorted(newlines, opened)])
        unbalanced.append(len(ends))
        ends.append(newline)
        return int(np.searchsorted(events, newline, side="right"))

    while True:
        while i < len(positions):
            at, kind = positions[i], kinds[i]
            if not in_quote:
                if kind == _NEWLINE:
                    ends.append(at)
                elif at == 0 or _FIELD_START[arr[at - 1]]:
                    in_quote, opened, crossed = True, at, False
                # else: a quote inside an unquoted field, a character like any other
            elif kind == _NEWLINE:
                crossed = True
            elif at + 1 < size and arr[at + 1] == _QUOTE:
                i += 1  # `""`: a quote inside the quoted field
            elif at + 1 >= size or _FIELD_END[arr[at + 1]] or not crossed:
                # Closed; on the line it opened on, text after the quote joins the field.
                in_quote = False
            else:
                in_quote = False
                i = unwind()
                continue
            i += 1
        if in_quote and close and crossed:
            in_quote = False
            i = unwind()
            continue
        if in_quote and close:
            unbalanced.append(len(ends))  # the last record, open at the end of the data
        return np.array(ends, dtype=np.int64), unbalanced
