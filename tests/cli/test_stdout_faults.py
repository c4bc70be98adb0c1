"""Output that cannot be written: a full disk under `> file`, or a closed stdout, is one line
and exit 3 for every command, never exit 70 ("a bug") or a traceback; the warehouse is as the
command left it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.ingest import ingest
from tests.conftest import SESSIONS, ndjson, session, tree

# Every command that prints, with its arguments after the warehouse's; and what click itself
# prints before any command runs.
PRINTING = [
    ["--help"],
    ["--version"],
    ["stats", "--help"],
    ["stats", "--format", "json"],
    ["compare", "--min-sessions", "2"],
    ["sql", "SELECT * FROM sessions"],
    ["history"],
    ["check"],
    ["views"],
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("stdout")
    rows = [session(n, prompt_version_number=n % 2) for n in range(40)]
    (tmp / "a.ndjson").write_bytes(ndjson(rows))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SESSIONS_PII_KEY_FILE", str(tmp / "pii.key"))
        ingest([str(tmp / "a.ndjson")], tmp / "warehouse")
    return tmp / "warehouse"


def _run(args: list[str], stdout: str) -> subprocess.CompletedProcess[str]:
    """`sessions ARGS` with stdout on `/dev/full` (every write fails: no space left) or
    closed (`>&-`)."""
    redirect = {"full": ">/dev/full", "closed": ">&-"}[stdout]
    return subprocess.run(
        ["sh", "-c", f'"$0" "$@" {redirect}', str(SESSIONS), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("stdout", ["full", "closed"])
@pytest.mark.parametrize("command", PRINTING, ids=lambda c: " ".join(c))
def test_a_reading_command_whose_output_cannot_be_written(
    warehouse: Path, command: list[str], stdout: str
) -> None:
    before = tree(warehouse)
    plain = command == ["views"] or command[0].startswith("--") or "--help" in command
    args = command if plain else [*command, "-w", str(warehouse)]
    result = _run(args, stdout)
    why = "No space left on device" if stdout == "full" else "stdout is closed"
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        f"error: stdout: cannot write the output: {why} "
        "(the command ran; only its output is lost)\n"
    )
    assert tree(warehouse) == before


@pytest.mark.parametrize("stdout", ["full", "closed"])
def test_an_ingest_whose_report_cannot_be_written_is_committed(tmp_path: Path, stdout: str) -> None:
    (tmp_path / "a.ndjson").write_bytes(ndjson([session(n) for n in range(5)]))
    result = _run(["ingest", str(tmp_path / "a.ndjson"), "-w", str(tmp_path / "w")], stdout)
    assert result.returncode == 3, result.stderr
    # (The first ingest of a test session may say first that it created the key.)
    assert result.stderr.splitlines()[-1].endswith("only its output is lost)"), result.stderr
    assert "Traceback" not in result.stderr
    # The report is printed after the commit: the ingest is whole, and a rerun skips it.
    again = subprocess.run(
        [str(SESSIONS), "ingest", str(tmp_path / "a.ndjson"), "-w", str(tmp_path / "w"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(again.stdout)
    assert again.returncode == 0 and report["files"] == 0, again.stdout
    assert [f["path"] for f in report["files_skipped"]] == [str(tmp_path / "a.ndjson")]


@pytest.mark.parametrize("stdout", ["full", "closed"])
def test_an_error_whose_report_cannot_be_written_keeps_its_exit_code(
    tmp_path: Path, stdout: str
) -> None:
    (tmp_path / "a.ndjson").write_bytes(ndjson([session(1), "not json"]))
    args = ["ingest", str(tmp_path / "a.ndjson"), "-w", str(tmp_path / "w"), "--json"]
    result = _run([*args, "--max-reject-rate", "0.1"], stdout)
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: 50.0% of the rows were rejected")


def test_an_ingest_with_stderr_closed(tmp_path: Path) -> None:
    # Whether to show progress asked a closed stderr if it was a terminal (exit 70).
    (tmp_path / "a.ndjson").write_bytes(ndjson([session(1)]))
    result = subprocess.run(
        ["sh", "-c", '"$0" "$@" 2>&-', str(SESSIONS), "ingest", str(tmp_path / "a.ndjson"),
         "-w", str(tmp_path / "w"), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and json.loads(result.stdout)["rows_accepted"] == 1
