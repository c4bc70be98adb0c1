"""`sessions ingest` on a pseudo-terminal: the progress it draws, and the screen it leaves,
whether it finishes or is stopped with Ctrl-C."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SESSIONS, run_cli, write_big_export
from tests.test_progress import BAR_CHARACTERS, screen


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_big_export(tmp_path_factory.mktemp("big") / "big.ndjson", 60_000, 3)


def on_a_terminal(*args: str | Path, stop_when: bytes | None = None) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pty (stdout a pipe): its exit code, stdout, and all that
    reached the terminal. With `stop_when`, Ctrl-C's SIGINT goes to it once that is shown."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(SESSIONS), *map(str, args)], stdout=subprocess.PIPE, stderr=follower
    )
    os.close(follower)
    seen = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 120)
            assert ready, "the ingest wrote nothing for two minutes"
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            if stop_when is not None and stop_when in seen + chunk and stop_when not in seen:
                process.send_signal(signal.SIGINT)
            seen += chunk
        assert process.stdout is not None
        out = process.stdout.read().decode()
        code = process.wait(timeout=120)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    return code, out, seen.decode()


def test_ingest_shows_its_phases_and_leaves_a_clean_terminal(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new key: the ingest notes that it created it, while the bar shows.
    monkeypatch.setenv("SESSIONS_PII_KEY_FILE", str(tmp_path / "new.key"))
    code, out, seen = on_a_terminal("ingest", export, "-w", tmp_path / "wh")
    assert code == 0, seen
    for phase in ("reading big.ndjson", "merging", "committing"):
        assert phase in seen
    assert " MB " in seen and "rows read" in seen and "rows/s" in seen
    # The note stays, whole, above where the bar was; the bar is gone, and the cursor is at
    # the start of the line after the note: nothing else was left.
    lines, row, col = screen(seen)
    note = (
        f"created a pseudonymisation key at {tmp_path / 'new.key'} (owner-only): keep it, "
        "and use the same key for every ingest into a warehouse"
    )
    assert " ".join(lines).split() == note.split(), lines
    assert (row, col) == (len(lines) - 1, 0) and lines[-1] == "", lines
    assert "60,000" in out  # the report, on stdout


def test_quiet_json_and_a_pipe_get_no_progress(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONS_PII_KEY", "a key of this test, 32 bytes or longer")  # no note
    for i, flag in enumerate(("-q", "--json")):
        code, out, seen = on_a_terminal("ingest", export, "-w", tmp_path / f"wh{i}", flag)
        assert code == 0 and seen == "", seen
        assert out if flag == "--json" else out == ""
    piped = run_cli("ingest", export, "-w", tmp_path / "wh3")  # stderr not a terminal
    assert piped.returncode == 0 and piped.stderr == ""


@pytest.fixture(scope="module")
def bigger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large enough to be stopped while it is read."""
    return write_big_export(tmp_path_factory.mktemp("bigger") / "bigger.ndjson", 300_000, 5)


# While the files are hashed (before the first file), and as the first file is being read.
@pytest.mark.parametrize("shown", [b"starting", b"reading"])
def test_ctrl_c_exits_130_and_leaves_one_line_and_no_bar(
    bigger: Path, shown: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONS_PII_KEY", "a key of this test, 32 bytes or longer")  # no note
    code, out, seen = on_a_terminal("ingest", bigger, "-w", tmp_path / "wh", stop_when=shown)
    assert code == 130, seen
    assert out == ""
    lines, row, col = screen(seen)
    # What stays: the error, then the cursor at the start of the next line, and nothing else.
    assert [line for line in lines if line] == [
        "error: stopped by SIGINT; the warehouse is as it was"
    ], lines
    assert (row, col) == (len(lines) - 1, 0)
    assert not BAR_CHARACTERS & set("".join(lines))
    assert shown.decode() in seen  # the bar was drawn before the stop


def test_an_error_on_a_terminal_is_one_line_in_the_ingest_s_order(tmp_path: Path) -> None:
    # Both wrong: the ingest checks the timezone first, with a progress display or without.
    missing = tmp_path / "missing.ndjson"
    args = ("ingest", missing, "-w", tmp_path / "wh", "--naive-timezone", "Mars/Base")
    code, out, seen = on_a_terminal(*args)
    assert code == 2 and out == ""
    lines, row, col = screen(seen)
    assert lines == [
        "error: Mars/Base: is not an IANA timezone name (e.g. UTC or America/Chicago)",
        "",
    ]
    assert (row, col) == (1, 0)
    assert run_cli(*args).stderr == lines[0] + "\n"
