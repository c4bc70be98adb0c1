"""Progress of a long ingest on a terminal: the phase, bytes done of each file's size, rows/s,
and the time left for the file and for the whole ingest. Silent anywhere else.

The ingest calls one small interface (`file`, `advance`, `phase`, `close`); `Progress` draws it
with `rich`, `Quiet` does nothing, and `for_terminal` picks one, so that the ingest never asks
whether anyone watches.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TextIO

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.progress import Progress as Bars
from rich.table import Column
from rich.text import Text

from pipeline import stops

# Phases that belong to the file being read; any other phase (merging, committing) is the whole
# ingest's, has no size to measure, and shows how long it has run instead, so that a long merge
# moves on the screen.
FILE_PHASES = frozenset({"reading", "checking", "writing"})


class Display(Protocol):
    """What the ingest tells of its progress."""

    def file(self, name: str) -> None: ...
    def advance(self, done_bytes: int, rows: int) -> None: ...
    def phase(self, name: str) -> None: ...
    def close(self) -> None: ...


class Quiet:
    """The display where no one watches: it shows nothing."""

    def file(self, name: str) -> None:
        pass

    def advance(self, done_bytes: int, rows: int) -> None:
        pass

    def phase(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


QUIET = Quiet()


def for_terminal(
    files: list[tuple[str, int]], quiet: bool, stream: TextIO = sys.stderr
) -> Progress | Quiet:
    """A progress bar if a person watches `stream` (a terminal) and did not ask for quiet."""
    if quiet or not stream.isatty():
        return QUIET
    return Progress(files, stream)


def text_size(path: Path, gzipped: bool) -> int:
    """About how many bytes of text `path` holds, to turn the text read into the file's bytes
    done. A gzip file's last four bytes give its content's size (of its last member, modulo
    4 GiB: where that is below the file's own size it is wrong, and the file's size is taken)."""
    size = path.stat().st_size
    if not gzipped or size < 18:
        return size
    with path.open("rb") as raw:
        raw.seek(-4, 2)
        content = int.from_bytes(raw.read(4), "little")
    return content if content >= size else size


class Progress:
    """Two lines redrawn in place (by rich's own thread, eight times a second): the current
    file or phase, and the whole ingest; they fit in 80 columns. `close` erases them and leaves
    the cursor where the first one began, at the start of an empty line."""

    def __init__(
        self,
        files: list[tuple[str, int]],
        stream: TextIO = sys.stderr,
        *,
        force_terminal: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.sizes = dict(files)
        self.count = len(files)
        console = Console(file=stream, force_terminal=force_terminal, width=width, highlight=False)
        # Every cell keeps to one line (a wrapped cell makes the lines jump); the label gives
        # way first, then the bar.
        self.bars = Bars(
            SpinnerColumn(),
            TextColumn(
                "{task.description}",
                table_column=Column(no_wrap=True, overflow="ellipsis", width=26),
            ),
            BarColumn(bar_width=None),
            _Bytes(table_column=Column(no_wrap=True, justify="right", min_width=15)),
            _Rate(table_column=Column(no_wrap=True, justify="right", min_width=14)),
            _Time(table_column=Column(no_wrap=True, min_width=11)),
            console=console,
            transient=True,
            expand=True,
            refresh_per_second=8,
            # Only stderr: a report piped from stdout must not come out on the terminal.
            redirect_stdout=False,
        )
        self.current = self.bars.add_task("starting", total=None, rows=0, kind="phase")
        # Its clock starts with the first file: rows/s is the reading's, not the preparation's.
        self.overall = self.bars.add_task(
            self._total(0), total=sum(self.sizes.values()), rows=0, start=False
        )
        self.index = 0
        self.name = ""
        self.base_bytes = 0  # of the files read before the current one
        self.base_rows = 0
        self.done_bytes = 0  # of the current file
        self.rows = 0
        self.closed = False
        try:
            with stops.held():
                self.bars.start()
        except BaseException:  # a stop that waited for the first drawing: no `with` closes it
            self.close()
            raise

    def file(self, name: str) -> None:
        self.base_bytes += self.sizes.get(self.name, 0) if self.index else 0
        self.base_rows += self.rows
        self.index += 1
        if self.index == 1:
            self.bars.start_task(self.overall)
        self.name, self.done_bytes, self.rows = name, 0, 0
        size = self.sizes.get(name)
        self.bars.reset(
            self.current, total=size, description=self._label("reading"), rows=0, kind="file"
        )
        self.bars.update(self.overall, completed=self.base_bytes, rows=self.base_rows)
        self._draw()

    def advance(self, done_bytes: int, rows: int) -> None:
        size = self.sizes.get(self.name, done_bytes)
        # An estimate may overshoot the size; the bar never does.
        self.done_bytes, self.rows = min(max(done_bytes, 0), size), rows
        total_rows = self.base_rows + rows
        self.bars.update(self.current, completed=self.done_bytes, rows=rows)
        self.bars.update(
            self.overall,
            completed=self.base_bytes + self.done_bytes,
            rows=total_rows,
            description=self._total(total_rows),
        )

    def phase(self, name: str) -> None:
        if name in FILE_PHASES and self.index:
            self.bars.update(self.current, description=self._label(name))
        else:
            # The files are read: the whole ingest is done with them, and the phase's clock starts.
            if self.index:
                self.advance(self.sizes.get(self.name, 0), self.rows)
                self.bars.stop_task(self.overall)  # its rows/s stays the reading's
            self.bars.reset(self.current, total=None, description=name, rows=0, kind="phase")
        self._draw()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with stops.held():
                self.bars.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _draw(self) -> None:
        """Show a new file or phase at once, not at the next refresh. A Ctrl-C's exception is
        raised in this thread: it waits for the drawing's end, not to leave half a line."""
        with stops.held():
            self.bars.refresh()

    def _label(self, phase: str) -> str:
        counter = f" {self.index}/{self.count}" if self.count > 1 else ""
        return f"{phase}{counter} {Path(self.name).name}"

    def _total(self, rows: int) -> str:
        return f"all: {rows:,} rows read"


class _Bytes(ProgressColumn):
    """Bytes done of the size, in the size's unit: `120.5/512.0 MB`."""

    def render(self, task: Task) -> Text:
        if task.total is None or task.fields.get("kind") == "phase":
            return Text("")
        unit, suffix = _unit(task.total)
        return Text(f"{task.completed / unit:.1f}/{task.total / unit:.1f} {suffix}")


class _Rate(ProgressColumn):
    """Rows per second since the task began."""

    def render(self, task: Task) -> Text:
        if task.fields.get("kind") == "phase":
            return Text("")
        rows: int = task.fields.get("rows", 0)
        elapsed = task.elapsed or 0.0
        return Text(f"{rows / elapsed:,.0f} rows/s" if elapsed > 0 else "- rows/s")


class _Time(ProgressColumn):
    """The time left (rich's estimate, from the recent bytes per second), or for a phase
    without a size the time it has run."""

    def render(self, task: Task) -> Text:
        if task.fields.get("kind") == "phase" or task.total is None:
            return Text(f"for {_clock(task.elapsed or 0.0)}")
        if task.finished:
            return Text("read")
        left = task.time_remaining
        return Text(f"ETA {_clock(left)}" if left is not None else "ETA -:--:--")


def _unit(size: float) -> tuple[float, str]:
    for unit, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if size >= unit:
            return unit, suffix
    return 1.0, "B"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
