"""Memory: a valid export of any size ingests within 1 GiB; the budget is a setting; running
out of it says so (exit 3); a gzip bomb runs in bounded memory.

Peak memory is the resident set of the CLI run as a subprocess (`os.wait4`), against a
generous bound: these tests say "bounded", the benchmark says how much.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.conftest import SESSIONS, measured, ndjson, peak_kib, rejects, run_cli, session, tree

GIB = 1 << 30
MIB = 1 << 20

Write = Callable[[str, bytes | str], Path]


def run_measured(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str, int]:
    """Run the CLI; its exit code, stdout, stderr, and peak resident memory in bytes."""
    with tempfile.TemporaryDirectory() as folder:
        peak = Path(folder) / "peak"
        with open(os.devnull, "rb") as stdin:
            child = subprocess.run(
                measured([SESSIONS, *args], peak),
                stdin=stdin,
                capture_output=True,
                env={**os.environ, **(env or {})},
                check=False,
            )
        return child.returncode, child.stdout.decode(), child.stderr.decode(), peak_kib(peak) * 1024


@pytest.fixture(autouse=True)
def default_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONS_MEMORY_LIMIT", raising=False)


def test_the_generated_api_pages_ingest_under_the_default_budget(tmp_path: Path) -> None:
    # The case: this document ran DuckDB out of memory (exit 2, "cannot be read").
    assert run_cli("generate", tmp_path / "gen", "--sessions", "200000").returncode == 0
    pages = tmp_path / "gen" / "04_api_pages.json"
    items = sum(len(page["items"]) for page in json.loads(pages.read_bytes()))
    code, out, err, peak = run_measured("ingest", pages, "-w", tmp_path / "wh", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["rows_read"] == items == report["rows_accepted"] + report["rows_rejected"]
    assert peak < GIB


def _big_page(first: int, count: int, page: int = 0, bad: int | None = None) -> dict[str, Any]:
    items = [session(first + i) for i in range(count)]
    if bad is not None:
        items[bad]["duration"] = -1.0
    # One more than it holds: each page disagrees with its counts, and is warned of.
    return {"items": items, "page": page, "page_size": count + 1, "total_count": count * 4}


def _pages(n: int) -> list[dict[str, Any]]:
    return [_big_page(i * n // 4, n // 4, i, bad=n // 4 - 7 if i == 3 else None) for i in range(4)]


SHAPES = {
    # One API page holding every session, about 20 MB: on one line (read as NDJSON) or
    # pretty-printed (read as a JSON document).
    "one-page": lambda n: json.dumps(_big_page(0, n, bad=n - 7)).encode(),
    "one-page-gzip": lambda n: gzip.compress(json.dumps(_big_page(0, n, bad=n - 7)).encode(), 1),
    "one-page-pretty": lambda n: json.dumps(_big_page(0, n, bad=n - 7), indent=2).encode(),
    "array-of-pages": lambda n: json.dumps(_pages(n)).encode(),
    "ndjson-of-pages": lambda n: ndjson(_pages(n)),
}
MANY = {"array-of-pages", "ndjson-of-pages"}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_large_api_page_documents_stream(shape: str, tmp_path: Path) -> None:
    n = 60_000
    path = tmp_path / "export.data"
    path.write_bytes(SHAPES[shape](n))
    code, out, err, peak = run_measured("ingest", path, "-w", tmp_path / "wh", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["rows_read"], report["rows_rejected"]) == (n, 1)
    assert report["sessions_new"] == n - 1
    # The streamed items keep their places, and the pages' counts are still checked.
    (bad,) = rejects(tmp_path / "wh")
    element = 4 if shape in MANY else 1
    assert (bad["element"], bad["item"]) == (element, n // (4 if element == 4 else 1) - 7)
    assert f": page {element - 1} has" in out
    assert peak < GIB


@pytest.mark.parametrize(
    ("kind", "how"),
    [("ndjson", "option"), ("json-page", "option"), ("csv", "option"), ("ndjson", "env")],
)
def test_running_out_of_the_budget_is_exit_3_naming_the_setting(
    kind: str, how: str, tmp_path: Path, write: Write, wh: Path
) -> None:
    records = [session(i) for i in range(2000)]
    if kind == "ndjson":
        path = write("export.ndjson", ndjson(records))
    elif kind == "json-page":
        path = write("export.json", json.dumps({"items": records, "page": 0}))
    else:
        header = ",".join(records[0])
        lines = [
            ",".join(json.dumps(v) if isinstance(v, str) else str(v) for v in r.values())
            for r in records
        ]
        path = write("export.csv", "\n".join([header, *lines]) + "\n")
    assert (
        run_cli("ingest", write("first.ndjson", ndjson([session(9999)])), "-w", wh).returncode == 0
    )
    before = tree(wh)
    if how == "option":
        code, _, err, _ = run_measured("ingest", path, "-w", wh, "--memory-limit", "2MB")
    else:
        code, _, err, _ = run_measured(
            "ingest", path, "-w", wh, env={"SESSIONS_MEMORY_LIMIT": "2MB"}
        )
    assert code == 3, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "ran out of memory under --memory-limit 2MB" in err
    assert "SESSIONS_MEMORY_LIMIT" in err
    assert tree(wh) == before


@pytest.mark.parametrize(
    ("value", "env"),
    [("lots", False), ("0.5MB", False), ("80%", False), ("1GB; SELECT 1", False), ("20XB", True)],
)
def test_a_memory_limit_that_is_not_a_size_is_one_line_and_exit_2(
    value: str, env: bool, write: Write, wh: Path
) -> None:
    code, err = _ingest_with_limit(value, env, write, wh)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and f"--memory-limit {value}:" in err
    assert not wh.exists()


@pytest.mark.parametrize(("value", "env"), [("512MiB", False), ("1.5GB", True)])
def test_memory_limits_in_duckdb_spelling_are_taken(
    value: str, env: bool, write: Write, wh: Path
) -> None:
    code, err = _ingest_with_limit(value, env, write, wh)
    assert code == 0, err


def _ingest_with_limit(value: str, env: bool, write: Write, wh: Path) -> tuple[int, str]:
    """Ingest one session with the memory limit given as the option or (`env`) the variable."""
    path = write("export.ndjson", ndjson([session(1)]))
    if env:
        code, _, err, _ = run_measured(
            "ingest", path, "-w", wh, env={"SESSIONS_MEMORY_LIMIT": value}
        )
    else:
        code, _, err, _ = run_measured("ingest", path, "-w", wh, "--memory-limit", value)
    return code, err


def _bomb(head: bytes, unit: bytes, mib: int, tail: bytes) -> bytes:
    """A gzip file of `head`, `mib` MiB of `unit` repeated, and `tail`: gzip members
    concatenated, so that a gigabyte costs a kilobyte to write."""
    member = gzip.compress(unit * (MIB // len(unit)), 9)
    return gzip.compress(head) + member * mib + gzip.compress(tail)


FIRST, LAST = json.dumps(session(1)).encode(), json.dumps(session(2)).encode()
ROW = b'{"timestamp": "2026-10-01T00:00:00Z"}\n'  # 38 bytes; every copy is the same session
BOMBS = {
    # (content, rows read)
    "blank-lines": (_bomb(FIRST + b"\n", b"\n", 32, LAST + b"\n"), 2),
    "short-lines": (_bomb(b"", ROW * (MIB // len(ROW)), 18, b""), 18 * (MIB // len(ROW))),
    "blanks-in-an-array": (_bomb(b"[" + FIRST + b",", b" \n", 512, LAST + b"]"), 2),
    "a-string-in-an-array": (_bomb(b'[{"agent_name": "', b"x", 256, b'"}, ' + LAST + b"]"), 2),
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_gzip_bomb_runs_in_bounded_memory(bomb: str, tmp_path: Path) -> None:
    content, rows = BOMBS[bomb]
    assert len(content) < 2 * MIB
    path = tmp_path / "bomb.gz"
    path.write_bytes(content)
    code, out, err, peak = run_measured("ingest", path, "-w", tmp_path / "wh", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["rows_read"] == rows == report["rows_accepted"] + report["rows_rejected"]
    assert peak < GIB


@pytest.mark.parametrize("kind", ["ndjson", "pages"])
def test_a_stored_row_group_keeps_to_a_share_of_the_budget(
    kind: str, tmp_path: Path, write: Write, wh: Path
) -> None:
    # A Parquet writer holds a row group whole, and cannot spill it: a day of sessions of many
    # kB each in one row group ran DuckDB out of its budget (a day of 100 kB sessions, 300 MB,
    # under the default 320 MB). Here one day of 64 MB, written under 320 MB: row groups of at
    # most a 16th of it, so several.
    records = [
        session(i, timestamp=f"2026-10-01T{i % 24:02d}:00:00Z", agent_name=f"{i:05d}" * 3200)
        for i in range(4000)
    ]
    if kind == "ndjson":
        path = write("export.ndjson", ndjson(records))
    else:
        # 50 items a page: 800 kB a line (a line of more than 1 MiB is the exact reader's).
        pages = [{"items": records[i : i + 50], "page": i // 50} for i in range(0, 4000, 50)]
        path = write("pages.ndjson", ndjson(pages))
    code, out, err, peak = run_measured("ingest", path, "-w", wh, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["rows_accepted"] == 4000 and report["per_file"][0]["reader"] == "fast"
    assert peak < GIB
    [stored] = (wh / "sessions").rglob("*.parquet")
    groups = pq.ParquetFile(stored).metadata
    sizes = [groups.row_group(i).total_byte_size for i in range(groups.num_row_groups)]
    assert groups.num_row_groups >= 3 and max(sizes) <= 320_000_000 // 16 * 1.5, sizes
