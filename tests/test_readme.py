"""The README's examples run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import duckdb

from tests.conftest import SESSIONS, run_cli

README = (Path(__file__).parents[1] / "README.md").read_text()


def blocks(language: str, after: str) -> list[str]:
    section = README[README.index(after) :]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_using_it_examples_run(tmp_path: Path) -> None:
    commands = [
        line.split("  #")[0]
        for line in blocks("sh", "## Using it")[0].splitlines()
        if line.startswith(".venv/bin/sessions")
    ]
    assert len(commands) == 4
    for command in commands:
        args = shlex.split(command)[1:]
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    assert SESSIONS.exists()

    (query,) = blocks("sql", "## Using it")[:1]
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{tmp_path}'")
    rows = con.sql(query.replace("'wh/", f"'{tmp_path}/wh/")).fetchall()
    # Eight agents, one of them renamed half-way: nine names.
    assert len(rows) == 9 and all(count > 0 for _, count, _ in rows)


def test_every_view_example_runs(tmp_path: Path) -> None:
    sample = Path(__file__).parents[1] / "data" / "samples"
    assert run_cli("ingest", sample, "-w", tmp_path / "wh", "-q").returncode == 0
    con = duckdb.connect(str(tmp_path / "wh" / "sessions.duckdb"), read_only=True)
    examples = blocks("sql", "### The views")
    assert len(examples) == 8
    for query in examples:
        assert con.sql(query).fetchall(), query


def test_stats_and_sql_examples_run(tmp_path: Path) -> None:
    sample = Path(__file__).parents[1] / "data" / "samples"
    assert run_cli("ingest", sample, "-w", tmp_path / "wh", "-q").returncode == 0
    commands = [
        line.split("  #")[0]
        for block in blocks("sh", "### `sessions stats`")[:3]
        for line in block.splitlines()
        if line.startswith("sessions ")
    ]
    assert len(commands) == 10  # stats, compare, and the first of sql
    for command in commands:
        args = [a for a in shlex.split(command)[1:] if a not in (">", "daily.csv")]
        result = run_cli(*args, "-w", tmp_path / "wh")
        assert result.returncode == 0 and result.stdout, (command, result.stderr)


def test_the_compare_worked_example_is_what_the_sample_gives(tmp_path: Path) -> None:
    sample = Path(__file__).parents[1] / "data" / "samples"
    assert run_cli("ingest", sample, "-w", tmp_path / "wh", "-q").returncode == 0
    section = README[README.index("### `sessions compare`") : README.index("### `sessions sql`")]
    shown = re.findall(r"```\n\$ (sessions compare [^\n]*)\n(.*?)```", section, re.S)
    assert len(shown) == 2
    for command, output in shown:
        result = run_cli(*shlex.split(command)[1:], "-w", tmp_path / "wh")
        assert result.returncode == 0, result.stderr
        assert result.stdout == output, command
