"""The ingest's progress display, drawn by rich on a real stream, read back as a terminal
would show it."""

from __future__ import annotations

import gzip
import io
import os
import pty
import re
import time
from pathlib import Path

import pytest

from pipeline.progress import Progress, Quiet, for_terminal, text_size

# What the bar draws with: none of it may stay on the screen once the display is closed.
BAR_CHARACTERS = set("━╸╺⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
FILES = [("/exports/a.ndjson", 5_000_000), ("/exports/b.csv", 3_000_000)]


def screen(output: str) -> tuple[list[str], int, int]:
    """The lines a terminal shows after `output`, and its cursor (row, column). Knows the
    sequences rich writes to a terminal; any other fails the test rather than being skipped."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b.|.", output, re.DOTALL):
        if token == "\r":
            col = 0
        elif token == "\n":  # as the pty's onlcr does: a new line, at its start
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
        elif token.startswith("\x1b"):
            code = token[-1]
            if code == "m" or token in ("\x1b[?25l", "\x1b[?25h"):  # colours, cursor shown
                continue
            if code == "A":
                row = max(0, row - int(token[2:-1] or 1))
            elif token == "\x1b[2K":
                lines[row] = []
            else:
                raise AssertionError(f"unexpected escape sequence {token!r}")
        else:
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col : col + 1] = [token]
            col += 1
    shown = ["".join(line).rstrip() for line in lines]
    while len(shown) > row + 1 and not shown[-1]:
        shown.pop()
    return shown, row, col


def test_the_screen_reader_knows_what_a_terminal_does() -> None:
    assert screen("ab\rc\n") == (["cb", ""], 1, 0)
    assert screen("one\ntwo\n\r\x1b[1A\x1b[2K\x1b[1A\x1b[2K") == ([""], 0, 0)
    assert screen("one\ntwo\x1b[1A\r") == (["one", "two"], 0, 0)  # a line below stays
    with pytest.raises(AssertionError, match="unexpected"):
        screen("\x1b[3J")


def drawn() -> tuple[io.StringIO, Progress]:
    stream = io.StringIO()
    stream.write("before\n")
    return stream, Progress(FILES, stream, force_terminal=True, width=120)


def test_it_shows_bytes_of_the_size_rows_per_second_the_eta_and_the_phase() -> None:
    stream, progress = drawn()
    progress.file("/exports/a.ndjson")
    for done in (1_000_000, 2_000_000):
        time.sleep(0.05)  # the rate and the time left need two moments apart
        progress.advance(done, done // 100)
    progress.phase("checking")  # a phase is drawn at once
    lines, _, _ = screen(stream.getvalue())
    file_line, overall = lines[1], lines[2]
    assert "checking 1/2 a.ndjson" in file_line
    assert "2.0/5.0 MB" in file_line
    assert re.search(r"[\d,]+ rows/s", file_line)
    assert re.search(r"ETA \d+:\d\d:\d\d", file_line)
    assert "all: 20,000 rows read" in overall and "2.0/8.0 MB" in overall
    assert re.search(r"ETA \d+:\d\d:\d\d", overall)
    progress.close()


def test_the_overall_line_counts_the_files_before() -> None:
    stream, progress = drawn()
    progress.file("/exports/a.ndjson")
    progress.advance(4_000_000, 100)  # an estimate short of the size: the file still counts whole
    progress.file("/exports/b.csv")
    progress.advance(9_000_000, 50)  # an estimate past the size: the bar stops at it
    progress.phase("writing")
    file_line, overall = screen(stream.getvalue())[0][1:3]
    assert "writing 2/2 b.csv" in file_line and "3.0/3.0 MB" in file_line
    assert "8.0/8.0 MB" in overall and "all: 150 rows read" in overall
    progress.close()


@pytest.mark.parametrize("width", [80, 120])
def test_each_line_keeps_to_one_line_of_the_terminal(width: int) -> None:
    stream = io.StringIO()
    name = "/exports/" + "a_long_name_of_an_export_file" * 3 + ".ndjson"
    progress = Progress([(name, 123_456_789_012)], stream, force_terminal=True, width=width)
    progress.file(name)
    progress.advance(100_000_000_000, 987_654_321)
    progress.phase("reading")
    lines = screen(stream.getvalue())[0]
    assert len(lines) == 2 and all(len(line) <= width for line in lines), lines
    assert "reading a_long_name" in lines[0] and "100.0/123.5 GB" in lines[0]
    assert "987,654,321 rows read" in lines[1]
    progress.close()


def test_a_phase_of_the_whole_ingest_shows_how_long_it_has_run() -> None:
    stream, progress = drawn()
    progress.file("/exports/a.ndjson")
    progress.advance(1_000_000, 10)
    progress.phase("merging")
    lines = screen(stream.getvalue())[0]
    assert re.search(r"merging +━+ +for 0:00:0\d", lines[1])
    assert "5.0/5.0 MB" not in lines[1]  # the file's bar is gone: the merge has no size
    progress.phase("committing")
    lines = screen(stream.getvalue())[0]
    assert "committing" in lines[1] and "merging" not in lines[1]


def test_a_phase_before_any_file_is_the_whole_ingest_s() -> None:
    stream, progress = drawn()
    progress.phase("checking")
    time.sleep(0.05)
    progress.file("/exports/a.ndjson")
    progress.advance(1_000_000, 1_000)
    progress.phase("writing")
    lines = screen(stream.getvalue())[0]
    assert "writing 1/2 a.ndjson" in lines[1]
    assert re.search(r"\b[1-9][\d,]* rows/s", lines[2]), lines  # the reading's clock: not stopped
    progress.close()


def test_close_erases_the_display_and_leaves_the_cursor_at_the_start_of_a_line() -> None:
    stream, progress = drawn()
    progress.file("/exports/a.ndjson")
    progress.advance(1_000_000, 10)
    progress.phase("merging")
    assert any(BAR_CHARACTERS & set(line) for line in screen(stream.getvalue())[0])
    progress.close()
    assert screen(stream.getvalue()) == (["before", ""], 1, 0)
    written = len(stream.getvalue())
    progress.close()  # idempotent: writes nothing more
    assert len(stream.getvalue()) == written


def test_as_a_context_manager_it_closes_on_an_error() -> None:
    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt), Progress(FILES, stream, force_terminal=True) as p:
        p.file("/exports/a.ndjson")
        p.phase("reading")
        raise KeyboardInterrupt
    assert screen(stream.getvalue()) == ([""], 0, 0)
    assert "reading" in stream.getvalue()  # it was drawn before


def test_only_a_terminal_gets_a_display_and_only_when_not_quiet() -> None:
    assert isinstance(for_terminal(FILES, quiet=False, stream=io.StringIO()), Quiet)
    leader, follower = pty.openpty()
    try:
        with open(follower, "w", closefd=False) as terminal:
            assert isinstance(for_terminal(FILES, quiet=True, stream=terminal), Quiet)
            shown = for_terminal(FILES, quiet=False, stream=terminal)
            assert isinstance(shown, Progress)
            shown.close()
    finally:
        os.close(leader)
        os.close(follower)


def test_quiet_has_the_same_calls_and_writes_nothing() -> None:
    with Quiet() as quiet:
        quiet.file("a")
        quiet.advance(1, 1)
        quiet.phase("merging")
        quiet.close()


def test_text_size_is_what_a_gzip_file_holds(tmp_path: Path) -> None:
    content = b'{"session_id": "s1"}\n' * 10_000
    packed, plain = tmp_path / "a.ndjson.gz", tmp_path / "a.ndjson"
    packed.write_bytes(gzip.compress(content))
    plain.write_bytes(content)
    assert text_size(packed, gzipped=True) == len(content)
    assert text_size(plain, gzipped=False) == len(content)
    # A trailer that cannot be right (less than the file itself): the file's size.
    odd = tmp_path / "odd.gz"
    odd.write_bytes(gzip.compress(os.urandom(1000))[:-4] + (10).to_bytes(4, "little"))
    assert text_size(odd, gzipped=True) == odd.stat().st_size
