"""Progress of a long ingest on a terminal: file, rows, rate. Silent anywhere else."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Rewrites one status line on `stream` at most every `interval` seconds."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float = 0.25) -> None:
        self.stream = stream
        self.interval = interval
        self.started = time.monotonic()
        self.shown = 0.0
        self.rows = 0
        self.names: list[str] = []
        self.width = 0

    def __call__(self, name: str, rows: int) -> None:
        self.rows += rows
        if name not in self.names:
            self.names.append(name)
        now = time.monotonic()
        if now - self.shown >= self.interval:
            self.shown = now
            self._show(name, now)

    def _show(self, name: str, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        line = (
            f"file {len(self.names)} {name}: {self.rows:,} rows read, "
            f"{self.rows / elapsed:,.0f} rows/s"
        )
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()
        self.width = len(line)

    def done(self, message: str = "merging and committing") -> None:
        if self.width:
            self.stream.write("\r" + message.ljust(self.width) + "\r" + " " * self.width + "\r")
            self.stream.flush()
