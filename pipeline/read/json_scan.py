"""Cut a JSON document into the texts of its sessions, a block at a time, without parsing it.

A JSON export is one array of sessions or of API pages, or one API page, and any of them can
be larger than memory: a single page of 200,000 sessions is one JSON value. Instead of
parsing the document, a byte scanner follows only its strings and brackets (numpy, a block at
a time) and cuts it at the few places that matter:

- the elements of the top-level array (or the top-level values of a document that is not an
  array, usually one API page);
- the items of an element that is an API page: an object whose member `items` is an array.

Each element or item comes out as the bytes it has in the file, for DuckDB to parse (a text
that is not JSON is then one rejected row, the rest of the document still read). Only the
document's outline is judged here: a document cut off, a bracket that closes nothing, or an
empty place between commas makes the whole file unreadable. Memory is one block plus the
largest single text, whatever the size of the document; a text over `MAX_TEXT_BYTES` is
kept as its first bytes only, and rejected as too large.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from pipeline.read import records

BLOCK_BYTES = 8 << 20
# Texts are handed on in batches of about this size or count, whichever comes first: a
# block of tiny elements (`[1,1,1,...]`) would otherwise be millions of Python objects.
BATCH_BYTES = 8 << 20
BATCH_TEXTS = 50_000
# A single text (a session, or what a page holds besides its items) may be this large; a
# larger one is kept as its first bytes, and rejected as too large (DuckDB's reader refused
# a whole document with a value over 128 MB). Without a bound, one endless value would be
# held whole.
MAX_TEXT_BYTES = records.MAX_RECORD_BYTES
PREVIEW_BYTES = records.PREFIX_BYTES

_QUOTE, _BACKSLASH = 34, 92
_OPEN, _CLOSE, _COMMA = 1, 2, 3
_KIND = np.zeros(256, dtype=np.int8)
_KIND[[ord("["), ord("{")]] = _OPEN
_KIND[[ord("]"), ord("}")]] = _CLOSE
_KIND[ord(",")] = _COMMA
_DELTA = np.array([0, 1, -1, 0], dtype=np.int64)
_BLANK = re.compile(rb"[ \t\r\n]*")
_STARTS_OBJECT = re.compile(rb"[ \t\r\n]*\{")


class Malformed(ValueError):
    """The document's outline is broken: it cannot be cut into its values."""


@dataclass
class Page:
    """An API page whose items were cut out: its other members, and how many items it had."""

    element: int
    head: bytes  # the page's text up to its `items` array
    tail: bytes = b""  # from the `]` that closes `items` to the end of the page
    items: int = 0

    def outline(self) -> str:
        """The page's text with as many items as it had, each a `0`: what its counts are
        checked against, without holding its items."""
        body = b"0" + b",0" * (self.items - 1) if self.items else b""
        return (self.head + b"[" + body + self.tail).decode("utf-8", "replace")


@dataclass
class Batch:
    """Texts in the order of the document: each one's element, and its item in a page (-1
    where it is a whole element)."""

    texts: list[bytes] = field(default_factory=list)
    elements: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)  # pages that ended in this batch
    too_large: dict[int, int] = field(default_factory=dict)  # text number: its real size
    size: int = 0

    def add(self, text: bytes, size: int, element: int, item: int) -> None:
        if size > MAX_TEXT_BYTES:
            self.too_large[len(self.texts)] = size
        self.texts.append(text)
        self.elements.append(element)
        self.items.append(item)
        self.size += len(text)

    def full(self) -> bool:
        return self.size >= BATCH_BYTES or len(self.texts) >= BATCH_TEXTS


def blank(text: bytes) -> bool:
    """Whether `text` is only JSON whitespace."""
    return not text.strip(b" \t\r\n")


def is_items_key(head: bytes) -> bool:
    """Whether `head`, the text of an object up to a `[`, ends with the key `items` and its
    colon, however the key is spelled (`"items"` or with escapes)."""
    if not _STARTS_OBJECT.match(head):
        return False
    end = head[-4096:].rstrip(b" \t\r\n")
    if not end.endswith(b":"):
        return False
    end = end[:-1].rstrip(b" \t\r\n")
    if not end.endswith(b'"'):
        return False
    start = end.rfind(b'"', 0, len(end) - 1)
    while start > 0 and _escaped(end, start):
        start = end.rfind(b'"', 0, start)
    if start < 0:
        return False
    try:
        return bool(json.loads(end[start:]) == "items")
    except ValueError:
        return False


def _escaped(text: bytes, at: int) -> bool:
    run = at - len(text[:at].rstrip(b"\\"))
    return run % 2 == 1


class Scanner:
    """The scanner's state between blocks: inside a string or not, the depth, and the text
    being gathered."""

    def __init__(self, array: bool) -> None:
        # An array's elements are one level down; other documents' values are at the top.
        self.array = array
        self.base = 1 if array else 0
        self.in_string = False
        self.backslashes = 0  # backslashes that ended the previous block
        self.depth = 0
        self.offset = 0  # bytes of the document before the current block
        self.started = not array
        self.finished = False
        self.pending: list[bytes] = []  # the current text's bytes from earlier blocks
        self.pending_size = 0  # their size, counting those dropped from a text too large
        self.element = 0
        self.page: Page | None = None
        self.in_items = False
        self.batch = Batch()

    def scan(self, stream: BinaryIO, block_bytes: int = BLOCK_BYTES) -> Iterator[Batch]:
        while block := stream.read(block_bytes):
            yield from self._block(block)
            self.offset += len(block)
        yield from self._end()

    def _events(self, arr: np.ndarray) -> tuple[list[int], list[int], list[int]]:
        """The structural bytes outside strings that the cutting needs: position, kind and
        depth before it."""
        quotes = np.flatnonzero(arr == _QUOTE)
        backslashes = np.flatnonzero(arr == _BACKSLASH)
        if len(quotes) and (len(backslashes) or self.backslashes):
            quotes = quotes[~self._escaped_quotes(quotes, backslashes)]
        self._carry_backslashes(arr, backslashes)
        # `[` and `{` differ by one bit, as do `]` and `}`: four comparisons over the block,
        # not a table lookup of every byte (a third of the time).
        folded = arr | 0x20
        where = np.flatnonzero((folded == ord("{")) | (folded == ord("}")) | (arr == ord(",")))
        inside = (np.searchsorted(quotes, where) + self.in_string) % 2 == 1
        self.in_string = bool((len(quotes) + self.in_string) % 2)
        where = where[~inside]
        kind = _KIND[arr[where]]
        delta = _DELTA[kind]
        depth = self.depth + np.cumsum(delta) - delta
        self.depth += int(delta.sum())
        b = self.base
        # Kept: the array's `[` and `]`, the commas between its elements, the ends of the
        # top-level values, every `[` that may open a page's items, and the commas and
        # brackets between items. A close at depth 0 closes nothing.
        keep = (
            ((kind == _CLOSE) & (depth <= 1))
            | ((kind == _OPEN) & (depth == 0) & self.array)
            | ((kind == _COMMA) & (depth == b) & self.array)
            | ((kind == _OPEN) & (depth == b + 1) & (arr[where] == ord("[")))
            | ((kind != _OPEN) & (depth == b + 2))
        )
        return where[keep].tolist(), kind[keep].tolist(), depth[keep].tolist()

    def _escaped_quotes(self, quotes: np.ndarray, backslashes: np.ndarray) -> np.ndarray:
        """Which quotes follow an odd run of backslashes (`\\"` inside a string)."""
        escaped = np.zeros(len(quotes), dtype=bool)
        if quotes[0] == 0:  # after the backslashes that ended the previous block
            escaped[0] = self.backslashes % 2 == 1
        if not len(backslashes):
            return escaped
        run_starts = backslashes[np.diff(backslashes, prepend=-2) != 1]
        before = quotes - 1
        after_run = np.zeros(len(quotes), dtype=bool)
        valid = before >= 0
        after_run[valid] = np.isin(before[valid], backslashes)
        starts = run_starts[np.maximum(np.searchsorted(run_starts, before, "right") - 1, 0)]
        runs = before - starts + 1 + np.where(starts == 0, self.backslashes, 0)
        escaped |= after_run & (runs % 2 == 1)
        return escaped

    def _carry_backslashes(self, arr: np.ndarray, backslashes: np.ndarray) -> None:
        n = len(arr)
        if not len(backslashes) or backslashes[-1] != n - 1:
            self.backslashes = 0
            return
        breaks = np.flatnonzero(np.diff(backslashes) != 1)
        first = backslashes[breaks[-1] + 1] if len(breaks) else backslashes[0]
        run = n - int(first)
        self.backslashes = run + (self.backslashes if first == 0 else 0)

    def _block(self, block: bytes) -> Iterator[Batch]:
        arr = np.frombuffer(block, dtype=np.uint8)
        if self.finished:
            self._after_end(block, 0)
            return
        positions, kinds, depths = self._events(arr)
        start = 0  # where the current text starts in this block
        for pos, kind, depth in zip(positions, kinds, depths, strict=True):
            if depth == 0:
                if kind == _CLOSE:
                    raise Malformed(f"a bracket that closes nothing, at byte {self.offset + pos}")
                if self.started:
                    raise Malformed(f"a second value after the array, at byte {self.offset + pos}")
                self.started = True
                start = pos + 1
            elif depth == 1 and self.array and kind != _OPEN:
                # The end of an array element: a comma, or the array's own `]`.
                last = kind == _CLOSE
                if last and block[pos] != ord("]"):
                    raise Malformed(f"the array is closed by '}}', at byte {self.offset + pos}")
                text, size = self._take(block, start, pos)
                if self.page is None and blank(text):
                    if not (last and self.element == 0):  # `[]` has no element
                        raise Malformed(f"an empty array element, at byte {self.offset + pos}")
                else:
                    yield from self._end_element(text, size)
                start = pos + 1
                if last:
                    self.finished = True
                    self._after_end(block, start)
                    return
            elif depth == 1 and kind == _CLOSE:
                # The end of a top-level value of a document that is not an array.
                yield from self._end_element(*self._take(block, start, pos + 1))
                start = pos + 1
            elif kind == _OPEN:
                # A `[` that is a member of an element: the items of a page, if its key is
                # `items` and the element has had none yet.
                if self.page is None:
                    head = self._peek(block, start, pos)
                    if is_items_key(head):
                        self._reset()
                        self.page = Page(self.element, head)
                        self.in_items = True
                        start = pos + 1
            elif self.in_items:  # a comma or `]` between a page's items
                assert self.page is not None
                last = kind == _CLOSE
                if last and block[pos] != ord("]"):
                    raise Malformed(f"a page's items closed by '}}', at byte {self.offset + pos}")
                text, size = self._take(block, start, pos)
                if blank(text):
                    if not (last and self.page.items == 0):  # `"items": []`
                        raise Malformed(f"an empty item in a page, at byte {self.offset + pos}")
                else:
                    yield from self._add(text, size, self.page.element, self.page.items)
                    self.page.items += 1
                if last:
                    self.in_items = False
                    start = pos  # the rest of the page starts with this `]`
                else:
                    start = pos + 1
        self._keep(block[start:])

    def _keep(self, piece: bytes) -> None:
        """Hold `piece`, the start of a text that goes on in the next block; of a text too
        large, only its first bytes."""
        if not self.pending:
            piece = piece.lstrip(b" \t\r\n")  # whitespace before a value is no part of it
            if not piece:
                return
        self.pending_size += len(piece)
        if self.pending_size <= MAX_TEXT_BYTES:
            self.pending.append(piece)
        elif sum(map(len, self.pending)) > PREVIEW_BYTES or len(self.pending) != 1:
            self.pending = [b"".join([*self.pending, piece])[:PREVIEW_BYTES]]

    def _reset(self) -> None:
        self.pending.clear()
        self.pending_size = 0

    def _take(self, block: bytes, start: int, end: int) -> tuple[bytes, int]:
        """The current text: what earlier blocks held of it and `block[start:end]` (only its
        first bytes if it is too large), and its size."""
        piece = block[start:end]
        if not self.pending:
            piece = piece.lstrip(b" \t\r\n")
        size = self.pending_size + len(piece)
        text = b"".join([*self.pending, piece]) if self.pending else piece
        if size > MAX_TEXT_BYTES:
            text = text[:PREVIEW_BYTES]
        self._reset()
        return text, size

    def _peek(self, block: bytes, start: int, end: int) -> bytes:
        if not self.pending:
            return block[start:end]
        return b"".join([*self.pending, block[start:end]])

    def _add(self, text: bytes, size: int, element: int, item: int) -> Iterator[Batch]:
        self.batch.add(text, size, element, item)
        if self.batch.full():
            yield self.batch
            self.batch = Batch()

    def _end_element(self, text: bytes, size: int) -> Iterator[Batch]:
        if self.page is not None:
            self.page.tail = text
            self.batch.pages.append(self.page)
            self.page = None
        else:
            yield from self._add(text, size, self.element, -1)
        self.element += 1

    def _after_end(self, block: bytes, start: int) -> None:
        if not blank(block[start:]):
            at = self.offset + _BLANK.match(block, start).end()  # type: ignore[union-attr]
            raise Malformed(f"content after the end of the array, at byte {at}")

    def _end(self) -> Iterator[Batch]:
        if self.in_string or self.depth != 0 or (self.array and not self.finished):
            raise Malformed("the document is cut off (a string or bracket is never closed)")
        rest, size = self._take(b"", 0, 0)
        if not self.array and not blank(rest):
            # A value that is not an object or array (`{...} 42`): one text of its own.
            yield from self._end_element(rest, size)
        if self.batch.texts or self.batch.pages:
            yield self.batch
        self.batch = Batch()


def scan(stream: BinaryIO, *, array: bool, block_bytes: int = BLOCK_BYTES) -> Iterator[Batch]:
    """The texts of the document in `stream`, in batches; raises `Malformed`."""
    return Scanner(array).scan(stream, block_bytes)
