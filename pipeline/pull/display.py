"""A pull's progress on a terminal: pages of the total, sessions, and sessions/s. The ingest
that follows shows its own."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from pipeline import stops


class Fetching(Protocol):
    def page(self, pages: int, total: int | None, sessions: int) -> None: ...
    def close(self) -> None: ...


class Quiet:
    def page(self, pages: int, total: int | None, sessions: int) -> None:
        pass

    def close(self) -> None:
        pass


class Bar:
    """One line, redrawn in place and erased at the end."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.started = time.monotonic()
        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[detail]}"),
            console=Console(file=stream, highlight=False),
            transient=True,
            expand=True,
            redirect_stdout=False,
        )
        self.task = self.bars.add_task("pulling page 1", total=None, detail="")
        with stops.held():
            self.bars.start()

    def page(self, pages: int, total: int | None, sessions: int) -> None:
        elapsed = time.monotonic() - self.started
        rate = f"{sessions / elapsed:,.0f} sessions/s" if elapsed > 0 else ""
        of = f"/{total}" if total else ""
        self.bars.update(
            self.task,
            description=f"pulled {pages}{of} page(s)",
            completed=pages,
            total=total or None,
            detail=f"{sessions:,} sessions  {rate}",
        )

    def close(self) -> None:
        with stops.held():
            self.bars.stop()


def for_terminal(quiet: bool, stream: TextIO = sys.stderr) -> Fetching:
    return Quiet() if quiet or not stream.isatty() else Bar(stream)
