"""Open an export file and tell its format from its content, not its name."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import InputError
from pipeline.read import json_scan
from schemas import key_aliases

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
SNIFF_BYTES = 1 << 20
# The encoding of a CSV that is not UTF-8: what legacy Windows tools write (Latin-1's
# printable characters, and curly quotes at 0x91-0x94). Any byte but five decodes in it.
LEGACY_ENCODING = "cp1252"


class Format(Enum):
    NDJSON = "ndjson"  # one JSON object (a session, or an API page) per line
    JSON_ARRAY = "json-array"  # a JSON array of sessions or of API pages
    JSON_OBJECT = "json-object"  # one JSON document holding an API page
    CSV = "csv"  # a header row, then one session per record
    EMPTY = "empty"  # no content at all


@dataclass(frozen=True)
class Source:
    path: Path
    format: Format
    gzipped: bool
    # How the text is encoded: "utf-8", or for a CSV "cp1252" or "utf-16" (see `sniff`);
    # `open_bytes` gives UTF-8 whatever it is.
    encoding: str = "utf-8"

    @property
    def name(self) -> str:
        return str(self.path)

    def encoding_warning(self) -> str | None:
        """What the report says of a file not in UTF-8."""
        if self.encoding == "utf-8":
            return None
        return f"not UTF-8: read as {_ENCODING_NAMES.get(self.encoding, self.encoding)}"


_ENCODING_NAMES = {"cp1252": "Windows-1252 (cp1252)", "utf-16": "UTF-16"}


@contextmanager
def open_bytes(source: Source) -> Iterator[BinaryIO]:
    """The decompressed content of `source` in UTF-8, with a leading BOM removed."""
    try:
        raw = source.path.open("rb")
    except OSError as exc:
        raise InputError(source.path, f"cannot open: {exc.strerror}") from None
    with raw:
        stream: BinaryIO = gzip.GzipFile(fileobj=raw) if source.gzipped else raw  # type: ignore[assignment]
        try:
            if source.encoding != "utf-8":
                stream = _Utf8(stream, source.encoding)  # type: ignore[assignment]
            elif stream.read(3) != BOM:
                stream.seek(0)
            yield stream
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(source.path, f"corrupt or truncated gzip data: {exc}") from None


def sniff(path: Path) -> Source:
    """Tell the format of the export at `path` from its first bytes."""
    try:
        with path.open("rb") as f:
            gzipped = f.read(2) == GZIP_MAGIC
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected an export file") from None
    except OSError as exc:
        raise InputError(path, f"cannot open: {exc.strerror}") from None
    probe = Source(path, Format.EMPTY, gzipped)
    with open_bytes(probe) as stream:
        head = stream.read(SNIFF_BYTES)
    if head.startswith(UTF16_BOMS):
        # Excel's "Unicode text": UTF-16, told by its BOM. Read as UTF-8 from here on.
        probe = Source(path, Format.EMPTY, gzipped, "utf-16")
        with open_bytes(probe) as stream:
            head = stream.read(SNIFF_BYTES)
    complete = len(head) < SNIFF_BYTES
    text = head.lstrip()
    if not text:
        return probe
    first = text[:1]
    if first in (b"[", b"{"):
        fmt = _json_format(text, complete)
        if probe.encoding != "utf-8" and fmt is not Format.NDJSON and _mostly_records(text):
            # Taken for a document of several values by a broken first line; a document in
            # this encoding could not be read, NDJSON can (the line is one rejected row).
            fmt = Format.NDJSON
        if probe.encoding != "utf-8" and fmt is not Format.NDJSON:
            raise InputError(
                path,
                f"a JSON document in {probe.encoding.upper()}",
                "JSON documents are read in UTF-8 only: convert the file to UTF-8",
            )
        return Source(path, fmt, gzipped, probe.encoding)
    if probe.encoding == "utf-8":
        encoding = _csv_encoding(head, complete)
        header = _csv_header(text, encoding)
    else:
        encoding = probe.encoding
        header = _csv_header(text, "utf-8")  # `head` was read through `open_bytes`, as UTF-8
    if header and any(name in key_aliases() for name in header):
        return Source(path, Format.CSV, gzipped, encoding)
    raise InputError(
        path,
        "neither JSON nor CSV with a session header",
        "expected a JSON array or object, NDJSON, or CSV whose header names session fields",
    )


def _json_format(text: bytes, complete: bool) -> Format:
    """NDJSON, or one JSON document, for a text (stripped) starting with `[` or `{`: whole or,
    if not `complete`, the start of a file."""
    line, _, rest = text.partition(b"\n")
    document = Format.JSON_ARRAY if text[:1] == b"[" else Format.JSON_OBJECT
    if _is_json(line):
        # A whole value on the first line: one value a line, unless nothing follows it (a
        # one-line array is a document; a one-line object a one-record NDJSON file).
        if rest.strip() or document is Format.JSON_OBJECT:
            return Format.NDJSON
        return document
    if complete and _outline_holds(text, document):
        # The whole file is one document whose brackets and strings close where they should
        # (minified on one line, or pretty-printed): an element that is not JSON is a bad
        # row of it, not a reason to take the file for NDJSON and lose its other elements.
        return document
    if not complete and b"\n" not in text:
        # More than a megabyte without a line end: a document (an API page as it came), not
        # a line of NDJSON.
        return document
    # The first line only starts a value. Pretty-printed, a document continues it on the
    # next lines, however it breaks them (`{`, `{"items": [{"timestamp": ...},`): the head is
    # the start of one JSON value. NDJSON whose first line is broken is not.
    # A head cut short is looked at up to its last line end; without one, it cannot be.
    head = text if complete else text[: text.rfind(b"\n")] if b"\n" in text else b""
    if b"\n" in head.rstrip() or (head and document is Format.JSON_ARRAY):
        starts_value = _starts_json_value(head)
        if starts_value:
            return document
        if starts_value is False:
            # Broken: a pretty-printed document with a bad element, or NDJSON with a bad
            # line. Its other lines tell which.
            return document if _element_lines(text) else Format.NDJSON
    lines = [line for line in text.split(b"\n", 100)[:100] if line.strip()]
    if any(line[:1] == b"{" and _is_json(line) for line in lines):
        return Format.NDJSON
    if document is Format.JSON_ARRAY:
        return document
    return Format.NDJSON if not lines[0].rstrip().endswith((b"{", b"[")) else document


def _first_lines(text: bytes) -> list[bytes]:
    """The first 100 lines of `text` that are not blank, stripped."""
    return [line.strip() for line in text.split(b"\n", 100)[:100] if line.strip()]


def _mostly_records(text: bytes) -> bool:
    """Whether most of the first lines of `text` are each a whole JSON object, as NDJSON's
    records are (a pretty-printed document's lines are not)."""
    lines = _first_lines(text)
    whole = sum(line[:1] == b"{" and _is_json(line) for line in lines)
    return whole > 0 and 2 * whole >= len(lines)


def _outline_holds(text: bytes, document: Format) -> bool:
    """Whether `text`, a whole file, has the outline of one JSON document: its strings and
    brackets close, each where it should (the scanner that reads documents judges)."""
    try:
        for _ in json_scan.scan(io.BytesIO(text), array=document is Format.JSON_ARRAY):
            pass
    except json_scan.Malformed:
        return False
    return True


def _element_lines(text: bytes) -> bool:
    """Whether the lines of `text` after its first read as a document's elements (a whole
    value and a comma) rather than as NDJSON's records (a whole value); on a tie, whether the
    first line only opens a value (`[`, `{"items": [`), which no NDJSON record does."""
    lines = _first_lines(text)
    records = sum(_is_json(line) for line in lines[1:])
    elements = sum(line.endswith(b",") and _is_json(line[:-1]) for line in lines[1:])
    return elements > records or (elements == records and lines[0].endswith((b"[", b"{")))


def _starts_json_value(text: bytes) -> bool | None:
    """Whether `text` is one JSON value, or the start of one cut at a line end (JSON strings
    hold no newline, so the cut is between tokens); None if that cannot be told."""
    decoded = text.decode(errors="replace")
    try:
        json.loads(decoded)
    except RecursionError:
        return None
    except json.JSONDecodeError as exc:
        # Cut short, the parser fails where the text ends; broken, before.
        return exc.pos >= len(decoded.rstrip())
    return True


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except RecursionError:
        # Nested deeper than Python's parser goes, and no syntax error up to there: DuckDB's
        # parser, which has no such limit, judges the line.
        return True
    except ValueError:
        return False
    return True


def _csv_header(text: bytes, encoding: str) -> list[str]:
    line = text.split(b"\n", 1)[0]
    try:
        return [name.strip() for name in next(csv.reader(io.StringIO(line.decode(encoding))), [])]
    except (UnicodeDecodeError, csv.Error):
        return []


def _csv_encoding(head: bytes, complete: bool) -> str:
    """UTF-8, unless the head of a CSV is not UTF-8 and reads as a legacy encoding.

    A UTF-8 file with a few corrupt bytes stays UTF-8 (its bad rows are rejected, the rest
    keep their accents): it is taken for legacy only if more of its non-ASCII bytes fail as
    UTF-8 than make UTF-8 characters. Only the head is looked at.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(head, final=complete)  # a character cut at the end of the head is fine
        return "utf-8"
    except UnicodeDecodeError:
        pass
    text = head.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for c in text if c > "\x7f" and c != "\ufffd")
    return LEGACY_ENCODING if bad > good else "utf-8"


def _undecodable(exc: UnicodeError) -> tuple[str, int]:
    """Bytes that do not decode become lone surrogates, which encode back to bytes that are
    not UTF-8: their row is rejected as `invalid_utf8`, with the bytes shown."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(0xDC80 | b) for b in exc.object[exc.start : exc.end]), exc.end


codecs.register_error("sessions-undecodable", _undecodable)


class _Utf8:
    """A binary stream of text in another encoding, read as UTF-8 (streaming)."""

    def __init__(self, stream: BinaryIO, encoding: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="sessions-undecodable")
        self._pending = b""
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._pending) < size) and not self._ended:
            block = self._stream.read(max(size, 1 << 16) if size >= 0 else -1)
            self._ended = not block
            text = self._decoder.decode(block, final=self._ended)
            self._pending += text.encode("utf-8", errors="surrogateescape")
        if size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out
