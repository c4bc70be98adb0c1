"""The installed `sessions` command, run as a batch job would run it."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from tests.conftest import SESSIONS, ndjson, run_cli, session, tree

Write = Callable[[str, bytes], Path]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        ([], ["ingest", "generate"]),
        (
            ["ingest"],
            ["--warehouse", "--json", "--max-reject-rate", "--naive-timezone", "Exit codes"],
        ),
        (["generate"], ["--sessions", "--seed"]),
    ],
)
def test_help_explains_each_command(args: list[str], mentions: list[str]) -> None:
    result = run_cli(*args, "--help")
    assert result.returncode == 0, result.stderr
    for word in mentions:
        assert word in result.stdout


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "sessions" in result.stdout


def test_ingest_json_report_adds_up(write: Write, wh: Path) -> None:
    good = write("good.ndjson", ndjson([session(n) for n in range(10)]))
    mixed = write("mixed.ndjson", ndjson([session(20), session(21, duration=-1), "{broken"]))
    result = run_cli("ingest", good, mixed, "--warehouse", wh, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["rows_accepted"], report["rows_rejected"]) == (13, 11, 2)
    assert report["rows_read"] == report["rows_accepted"] + report["rows_rejected"]
    assert [(f["path"], f["rows_read"], f["rows_rejected"]) for f in report["per_file"]] == [
        (str(good), 10, 0),
        (str(mixed), 3, 2),
    ]
    assert report["rejected_by_reason"] == {"duration: negative": 1, "record: invalid_json": 1}
    assert report["committed"] is True


def test_text_report_says_what_was_done(write: Write, wh: Path) -> None:
    result = run_cli("ingest", write("a.ndjson", ndjson([session(1)])), "-w", wh)
    assert result.returncode == 0
    assert "rows read" in result.stdout and "new 1" in result.stdout


@pytest.mark.parametrize(
    ("name", "content", "code", "message"),
    [
        ("missing.ndjson", None, 2, "no such file or folder"),
        (
            "cut.ndjson.gz",
            gzip.compress(ndjson([session(1)] * 100), mtime=0)[:40],
            2,
            "truncated gzip",
        ),
        ("notes.txt", b"just some words\n", 2, "neither JSON nor CSV"),
    ],
)
def test_unreadable_input_is_one_line_and_a_nonzero_exit(
    name: str,
    content: bytes | None,
    code: int,
    message: str,
    tmp_path: Path,
    wh: Path,
    write: Write,
) -> None:
    run_cli("ingest", write("first.ndjson", ndjson([session(1)])), "-w", wh)
    before = tree(wh)
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = run_cli("ingest", write("more.ndjson", ndjson([session(2)])), path, "-w", wh)
    assert result.returncode == code
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path}") and message in result.stderr
    assert tree(wh) == before


def test_max_reject_rate_fails_the_job_and_commits_nothing(write: Write, wh: Path) -> None:
    path = write("bad.ndjson", ndjson([session(1), "nope", "nope"]))
    result = run_cli("ingest", path, "-w", wh, "--max-reject-rate", "0.5", "--json")
    assert result.returncode == 4
    assert "more than --max-reject-rate" in result.stderr
    assert json.loads(result.stdout)["committed"] is False
    assert not list((wh / "sessions").glob("*/*.parquet"))
    assert run_cli("ingest", path, "-w", wh, "--max-reject-rate", "0.7").returncode == 0


def test_an_unknown_naive_timezone_is_an_error(write: Write, wh: Path) -> None:
    # `localtime` and `Factory` are in the system's list, not zones the transform reads: with
    # a naive timestamp they were a polars error blamed on the warehouse (exit 3).
    naive = {**session(1), "timestamp": "2026-10-01T10:00:00"}
    export = write("a.ndjson", ndjson([naive]))
    for name in ("Mars/Base", "localtime", "Factory"):
        result = run_cli("ingest", export, "-w", wh, "--naive-timezone", name)
        assert result.returncode == 2, result.stderr
        assert (
            result.stderr == f"error: {name}: is not an IANA timezone name (e.g. UTC or "
            "America/Chicago)\n"
        )
    assert not wh.exists()


def test_the_default_warehouse_is_data_warehouse(write: Write, tmp_path: Path) -> None:
    result = run_cli("ingest", write("a.ndjson", ndjson([session(1)])), "--quiet", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == ""
    assert list((tmp_path / "data" / "warehouse" / "sessions").glob("*/*.parquet"))


def test_generate_is_deterministic_by_seed(tmp_path: Path) -> None:
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert (
            run_cli("generate", tmp_path / name, "--sessions", "500", "--seed", seed).returncode
            == 0
        )
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert tree(tmp_path / "a") != tree(tmp_path / "c")


def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    import os
    import pty

    from pipeline.generate import as_text, sessions

    export = tmp_path / "big.ndjson"
    as_text(sessions(60_000, seed=1)).write_ndjson(export)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(SESSIONS), "ingest", str(export), "-w", str(tmp_path / "wh")],
        stdout=subprocess.PIPE, stderr=follower, text=True,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    process.wait()
    assert process.returncode == 0
    assert b"rows read" in seen and b"rows/s" in seen
    quiet = run_cli("ingest", export, "-w", tmp_path / "wh2")  # not a terminal: no progress
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_panic_in_a_rust_library_is_one_line_and_exit_70() -> None:
    """pyo3's PanicException (polars, deltalake) is a BaseException, not an Exception: it
    still gets the one line of a bug, not a traceback."""
    import click
    import polars as pl
    from click.testing import CliRunner

    from pipeline.cli import _user_errors

    @click.command()
    @_user_errors
    def panics() -> None:
        raise pl.exceptions.PanicException("assertion failed: i < self.len()")

    result = CliRunner().invoke(panics, [])
    assert result.exit_code == 70
    assert result.stderr.startswith("internal error: PanicException: assertion failed")
    assert "Traceback" not in result.output


def test_the_text_report_names_twenty_unknown_fields_and_counts_the_rest(
    write: Write, wh: Path
) -> None:
    record = session(1, **{f"extra_{n:02d}": n for n in range(30)})
    result = run_cli("ingest", write("wide.ndjson", ndjson([record])), "-w", wh)
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if "unknown fields" in x]
    assert "extra_19" in line and "extra_20" not in line
    assert line.endswith("... and 10 more (see --json)")


def _number_options() -> list[tuple[str, str]]:
    """Every (command, option) of the CLI that takes a number with a fractional part."""
    from pipeline.cli import main

    found = []
    for name, command in sorted(main.commands.items()):
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, click.FloatRange):
                found.append((name, param.opts[0]))
    return found


@pytest.mark.parametrize(("command", "option"), _number_options())
def test_a_number_option_refuses_nan(tmp_path: Path, command: str, option: str) -> None:
    # NaN compares false with both bounds of a range, and so passed click's check of it.
    args = {"ingest": [str(tmp_path)], "pull": ["--since", "2026-10-01"]}.get(command, [])
    result = run_cli(command, *args, option, "nan", "-w", tmp_path / "w")
    assert result.returncode == 2, result.stderr
    assert f"Invalid value for '{option}': 'nan' is not a number." in result.stderr
    assert not (tmp_path / "w").exists()


def test_the_number_options_are_found() -> None:
    # The test above runs on what `_number_options` finds: it must find them.
    expected = {("compare", "--confidence"), ("ingest", "--max-reject-rate")}
    expected |= {("pull", "--max-reject-rate"), ("pull", "--retry-for"), ("pull", "--max-time")}
    assert expected <= set(_number_options())


def test_options_that_are_not_utf8_text_exit_2(tmp_path: Path) -> None:
    # Bytes that are not UTF-8 reach Python as lone surrogates, which crashed wherever the
    # text was written out (a warehouse path, an agent in a request, a query).
    (tmp_path / "a.ndjson").write_bytes(ndjson([session(1)]))
    env = {**os.environ, "SYLLABLE_API_KEY": "a-key-of-some-length"}
    cases: list[tuple[list[bytes], dict[str, str], str]] = [
        ([b"ingest", b"a.ndjson", b"-w", b"wh\xff"], {}, "--warehouse: b'wh\\xff'"),
        ([b"pull", b"--since", b"2026-10-01", b"--agent", b"\xff"], {}, "--agent: b'\\xff'"),
        ([b"sql", b"SELECT '\xff'", b"-w", b"wh"], {}, "QUERY: b\"SELECT '\\xff'\""),
        ([b"stats"], {"SESSIONS_WAREHOUSE": os.fsdecode(b"w\xfe")}, "--warehouse: b'w\\xfe'"),
    ]
    for args, more, said in cases:
        result = subprocess.run(
            [bytes(SESSIONS), *args], cwd=tmp_path, env={**env, **more},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"error: {said} is not UTF-8 text\n", result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ndjson"]
    # An input file's name may be any bytes: it is only opened.
    name = b"b\xff.ndjson"
    (tmp_path / os.fsdecode(name)).write_bytes(ndjson([session(2)]))
    result = subprocess.run(
        [bytes(SESSIONS), b"ingest", name, b"-w", b"wh", b"--json"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and json.loads(result.stdout)["rows_accepted"] == 1
