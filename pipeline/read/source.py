"""Open an export file and tell its format from its content, not its name."""

from __future__ import annotations

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
from schemas import key_aliases

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 1 << 20


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

    @property
    def name(self) -> str:
        return str(self.path)


@contextmanager
def open_bytes(source: Source) -> Iterator[BinaryIO]:
    """The decompressed content of `source`, with a leading UTF-8 BOM removed."""
    try:
        raw = source.path.open("rb")
    except OSError as exc:
        raise InputError(source.path, f"cannot open: {exc.strerror}") from None
    with raw:
        stream: BinaryIO = gzip.GzipFile(fileobj=raw) if source.gzipped else raw  # type: ignore[assignment]
        try:
            if stream.read(3) != BOM:
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
    text = head.lstrip()
    if not text:
        return probe
    first = text[:1]
    if first == b"[":
        # One JSON document, unless a whole value on the first line has lines after it:
        # then it is NDJSON whose first line happens not to be an object.
        line, _, rest = text.partition(b"\n")
        ndjson = rest.strip() != b"" and _is_json(line)
        return Source(path, Format.NDJSON if ndjson else Format.JSON_ARRAY, gzipped)
    if first == b"{":
        return Source(
            path, Format.NDJSON if _looks_like_ndjson(text) else Format.JSON_OBJECT, gzipped
        )
    header = _csv_header(text)
    if header and any(name in key_aliases() for name in header):
        return Source(path, Format.CSV, gzipped)
    raise InputError(
        path,
        "neither JSON nor CSV with a session header",
        "expected a JSON array or object, NDJSON, or CSV whose header names session fields",
    )


def _looks_like_ndjson(text: bytes) -> bool:
    """Whether a text starting with `{` holds one object per line.

    NDJSON has a whole object on a line of its own, unless its first lines are all broken; a
    pretty-printed document (an API page saved as it came) never does, and opens with a line
    that only starts it: `{`, or `{"items": [`.
    """
    lines = [line for line in text.split(b"\n", 100)[:100] if line.strip()]
    if any(line[:1] == b"{" and _is_json(line) for line in lines):
        return True
    return not lines[0].rstrip().endswith((b"{", b"["))


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


def _csv_header(text: bytes) -> list[str]:
    line = text.split(b"\n", 1)[0]
    try:
        return [name.strip() for name in next(csv.reader(io.StringIO(line.decode())), [])]
    except (UnicodeDecodeError, csv.Error):
        return []
