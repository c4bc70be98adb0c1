"""The raw layer: each pull's pages as the API sent them, one page a line, in a gzip NDJSON
file of its own. Written aside first, and put in place only whole."""

from __future__ import annotations

import gzip
import os
import secrets
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Self

FOLDER = "raw"


def file_name(started: datetime) -> str:
    """`<YYYY-MM-DD>/pull-<HHMMSS>Z-<random>.ndjson.gz`, by the run's start (UTC)."""
    return f"{started:%Y-%m-%d}/pull-{started:%H%M%S}Z-{secrets.token_hex(3)}.ndjson.gz"


class RawFile:
    """A raw file being written: in a temporary folder of its own (the warehouse is not
    touched before the pull is whole), moved to its place by `keep`, removed otherwise."""

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="sessions-pull-"))
        self.path = self._folder / "pages.ndjson.gz"
        self._file: IO[bytes] = self.path.open("wb")
        # No name and no time in the gzip header: the same pages give the same bytes, so
        # that the ingest's manifest knows a repeated pull by its content.
        self._gzip = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=6, mtime=0)

    def write(self, page: bytes) -> None:
        """One page, on one line. A JSON text can hold a line break only between tokens (one
        in a string is escaped), so a pretty-printed page becomes one line, tokens unchanged."""
        self._gzip.write(page.replace(b"\r", b" ").replace(b"\n", b" ").strip() + b"\n")

    def keep(self, target: Path) -> Path:
        """Finish the file and move it to `target` (its folder created)."""
        self._gzip.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.path, target)
        self.discard()
        return target

    def discard(self) -> None:
        self._gzip.close()
        self._file.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.discard()
