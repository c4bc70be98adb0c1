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
