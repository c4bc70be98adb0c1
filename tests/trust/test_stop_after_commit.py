"""A stop that comes once the ingest has committed: the ingest is complete, and says so.

The sessions table's Delta commit is the commit. A SIGINT or SIGTERM before it leaves the
warehouse as it was (exit 130/143: test_crash.py); one after it must neither undo the ingest
(abandoning the run must not remove what the commit names) nor report
that nothing was committed, nor kill the process while it exits.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.ingest import ingest
from pipeline.store import writer
from tests.conftest import ndjson, run_cli, session, stored
from tests.trust.conftest import leftovers

Write = Callable[[str, bytes], Path]


def test_an_interrupt_right_after_the_commit_keeps_the_ingest(
    write: Write, wh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = writer.commit

    def commit_then_interrupt(*args: Any) -> None:
        commit(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(writer, "commit", commit_then_interrupt)
    export = write("a.ndjson", ndjson([session(n) for n in range(5)]))
    with pytest.raises(KeyboardInterrupt) as stopped:
        ingest([str(export)], wh)
    assert stopped.value.report.committed  # type: ignore[attr-defined]
    assert len(stored(wh)) == 5
    assert leftovers(wh) == []


# The CLI in a process of its own, the signal sent by the process to itself at a chosen point.
_CLI_WITH_SIGNAL = """
import os, signal, sys
from pipeline.store import writer
from pipeline.report import IngestReport
from pipeline.cli import main

where = sys.argv.pop(1)
if where == "commit":  # before the CLI hears of the commit
    commit = writer.commit
    def commit_then_signal(*args):
        commit(*args)
        os.kill(os.getpid(), signal.SIGINT)
    writer.commit = commit_then_signal
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
    # The views file follows the commit, at the latest with the next command.
    assert (
        run_cli("sql", "SELECT count(*) AS n FROM sessions", "-w", wh, "--format", "csv").stdout
        == "n\n5\n"
    )
