"""A stop that comes once the ingest has committed: the ingest is complete, and says so.

The swap of the `current` link is the commit. A SIGINT or SIGTERM before it leaves the
warehouse as it was (exit 130/143: test_crash.py); one after it must neither undo the ingest
(abandoning the run used to delete the snapshot that had just become current) nor report
that nothing was committed, nor kill the process while it exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline import warehouse
from pipeline.ingest import ingest
from tests.conftest import ndjson, session, stored
from tests.trust.conftest import leftovers

Write = Callable[[str, bytes], Path]


def test_an_interrupt_right_after_the_commit_keeps_the_ingest(
    write: Write, wh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = warehouse.commit

    def commit_then_interrupt(run: warehouse.Run) -> None:
        commit(run)
        raise KeyboardInterrupt

    monkeypatch.setattr(warehouse, "commit", commit_then_interrupt)
    export = write("a.ndjson", ndjson([session(n) for n in range(5)]))
    with pytest.raises(KeyboardInterrupt) as stopped:
        ingest([str(export)], wh)
    assert stopped.value.report.committed  # type: ignore[attr-defined]
    assert len(stored(wh)) == 5 and (wh / "current" / "sessions.duckdb").exists()
    assert leftovers(wh) == []


# The CLI in a process of its own, the signal sent by the process to itself at a chosen point.
_CLI_WITH_SIGNAL = """
import os, signal, sys
from pipeline import warehouse
from pipeline.report import IngestReport
from pipeline.cli import main

where = sys.argv.pop(1)
if where == "commit":  # before the CLI hears of the commit
    commit = warehouse.commit
    def commit_then_signal(run):
        commit(run)
        os.kill(os.getpid(), signal.SIGINT)
    warehouse.commit = commit_then_signal
else:  # while the report is printed, after it
    to_text = IngestReport.to_text
    def signal_then_text(self):
        os.kill(os.getpid(), signal.SIGTERM)
        return to_text(self)
    IngestReport.to_text = signal_then_text
main()
"""


def cli_with_signal(where: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", _CLI_WITH_SIGNAL, where, "ingest", *map(str, args)]
    cwd = Path(__file__).resolve().parents[2]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("where", ["commit", "report"])
def test_the_cli_stopped_after_the_commit_says_the_ingest_is_complete(
    where: str, write: Write, wh: Path
) -> None:
    export = write("a.ndjson", ndjson([session(n) for n in range(5)]))
    result = cli_with_signal(where, export, "-w", wh)
    assert result.returncode == 0, result.stderr
    assert "Ingested 1 file(s)" in result.stdout  # the report, as after any ingest
    assert "the warehouse is as it was" not in result.stderr
    if where == "commit":
        assert "SIGINT arrived after the commit; the ingest is complete" in result.stderr
    assert len(stored(wh)) == 5 and leftovers(wh) == []
    assert os.readlink(wh / "current").startswith(".snapshots/")
