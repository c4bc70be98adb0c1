"""The raw layer: each pull's pages as the API sent them, one page a line, in a gzip NDJSON
file of its own. Written aside first, and put in place only whole."""

from __future__ import annotations

import gzip
import hashlib
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

    def __init__(self, label: str) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="sessions-pull-"))
        self.path = self._folder / "pages.ndjson.gz"
        self._file: IO[bytes] = self.path.open("wb")
        # No time in the gzip header, and as its name `label`, the pull's scope and window:
        # the same pull gives the same bytes, so that the ingest's manifest knows it again by
        # its content, while another window's pages, identical or not (a quiet night's are
        # empty), are a file of their own, ingested, and so the window recorded.
        self._gzip = gzip.GzipFile(
            filename=label, fileobj=self._file, mode="wb", compresslevel=6, mtime=0
        )

    def write(self, page: bytes) -> None:
        """One page, on one line. A JSON text can hold a line break only between tokens (one
        in a string is escaped), so a pretty-printed page becomes one line, tokens unchanged."""
        self._gzip.write(page.replace(b"\r", b" ").replace(b"\n", b" ").strip() + b"\n")

    def keep(self, target: Path, folder: Path) -> tuple[Path, bool]:
        """Finish the file and move it to `target` (its folder created), unless `folder`
        holds the same bytes already (a pull whose ingest failed, run again): then that file,
        and False."""
        self._gzip.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        same = _same_file(self.path, folder)
        if same is not None:
            self.discard()
            return same, False
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.path, target)
        self.discard()
        return target, True

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


def _same_file(path: Path, folder: Path) -> Path | None:
    size = path.stat().st_size
    if not folder.is_dir():
        return None
    digest = _digest(path)
    for other in sorted(folder.glob("*/pull-*.ndjson.gz")):
        if other.stat().st_size == size and _digest(other) == digest:
            return other
    return None


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def label(scope: str, since: str, until: str) -> str:
    """The name in a raw file's gzip header: `pull-<since>-<until>-<scope digest>.ndjson`."""
    compact = [t.replace("-", "").replace(":", "") for t in (since, until)]
    digest = hashlib.sha256(scope.encode()).hexdigest()[:8]
    return f"pull-{compact[0]}-{compact[1]}-{digest}.ndjson"
