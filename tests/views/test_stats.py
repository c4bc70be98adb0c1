"""Every measure of every stats view, checked against an independent computation."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl
import pytest

from pipeline.generate import as_text, sessions
from pipeline.ingest import ingest
from pipeline.query import Scope, stats
from pipeline.views import STATS
from tests.conftest import run_cli

MEASURES = [
    "session_count", "duration_count", "duration_total_s", "duration_mean_s",
    "duration_stddev_s", "duration_min_s", "duration_p50_s", "duration_p90_s",
    "duration_p95_s", "duration_p99_s", "duration_max_s", "zero_duration_count",
    "user_terminated_share", "outbound_share", "legacy_session_count",
    "test_sessions_excluded", "first_session_at", "last_session_at",
]  # fmt: skip


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A warehouse of generated sessions, and the sessions it must hold as Python dicts.

    The data has null durations, zero durations, test sessions, a renamed agent, null keys,
    an unknown timezone, and every session delivered twice: first a stale version.
    """
    tmp = tmp_path_factory.mktemp("stats")
    data = sessions(3000, seed=11)
    rng = np.random.default_rng(0)

    def sometimes(column: str, share: float, value: object) -> pl.Expr:
        hit = pl.Series(rng.random(len(data)) < share)
        return pl.when(hit).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)

    agent_108 = pl.col("agent_id") == "agent-108"
    data = data.with_columns(
        sometimes("duration", 0.02, 0.0),
        sometimes("agent_id", 0.01, None),
        sometimes("user_terminated", 0.01, None),
        sometimes("is_test", 0.01, None),
        pl.when(agent_108)
        .then(pl.lit("Not/AZone"))
        .otherwise("agent_timezone")
        .alias("agent_timezone"),
    )
    stale = data.with_columns(pl.col("duration") * 2, pl.lit(True).alias("is_test"))
    as_text(stale).write_ndjson(tmp / "1_stale.ndjson")
    as_text(data).write_ndjson(tmp / "2_current.ndjson")
    ingest([str(tmp / "1_stale.ndjson"), str(tmp / "2_current.ndjson")], tmp / "wh")
    return tmp / "wh", data.to_dicts()


def local_date(row: dict[str, Any]) -> date:
    try:
        zone = ZoneInfo(row["agent_timezone"])
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return row["timestamp"].astimezone(zone).date()


KEYS: dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    "agent": lambda r: (r["agent_id"],),
    "channel": lambda r: (r["channel_manager_service"], r["channel_manager_type"]),
    "prompt-version": lambda r: (r["prompt_id"], r["prompt_version_number"], r["prompt_version"]),
    "day": lambda r: (r["agent_id"], local_date(r)),
}
KEY_COLUMNS = {
    "agent": ["agent_id"],
    "channel": ["channel_manager_service", "channel_manager_type"],
    "prompt-version": ["prompt_id", "prompt_version_number", "prompt_version"],
    "day": ["agent_id", "local_date"],
}


def share(values: list[bool | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def expected_measures(rows: list[dict[str, Any]], include_tests: bool) -> dict[str, Any] | None:
    kept = [r for r in rows if include_tests or not r["is_test"]]
    if not kept:
        return None
    d = [r["duration"] for r in kept if r["duration"] is not None]
    p = (lambda q: float(np.percentile(d, q))) if d else (lambda q: None)
    return {
        "session_count": len(kept),
        "duration_count": len(d),
        "duration_total_s": sum(d) if d else None,
        "duration_mean_s": statistics.fmean(d) if d else None,
        "duration_stddev_s": statistics.stdev(d) if len(d) > 1 else None,
        "duration_min_s": min(d, default=None),
        "duration_p50_s": p(50),
        "duration_p90_s": p(90),
        "duration_p95_s": p(95),
        "duration_p99_s": p(99),
        "duration_max_s": max(d, default=None),
        "zero_duration_count": sum(x == 0 for x in d),
        "user_terminated_share": share([r["user_terminated"] for r in kept]),
        "outbound_share": share([r["is_outbound"] for r in kept]),
        "legacy_session_count": sum(bool(r["is_legacy"]) for r in kept),
        "test_sessions_excluded": len(rows) - len(kept),
        "first_session_at": min(r["timestamp"] for r in kept),
        "last_session_at": max(r["timestamp"] for r in kept),
    }


def close(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and actual is not None:
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    return bool(actual == expected)


def check(
    by: str, table: list[dict[str, Any]], rows: list[dict[str, Any]], include_tests: bool
) -> None:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[KEYS[by](row)].append(row)
    expected = {k: m for k, g in groups.items() if (m := expected_measures(g, include_tests))}
    actual = {tuple(r[c] for c in KEY_COLUMNS[by]): r for r in table}
    assert set(actual) == set(expected)
    for key, measures in expected.items():
        for name, value in measures.items():
            assert close(actual[key][name], value), (by, key, name, actual[key][name], value)


@pytest.mark.parametrize("by", list(STATS))
def test_every_measure_matches_an_independent_computation(
    by: str, truth: tuple[Path, list[dict[str, Any]]]
) -> None:
    wh, rows = truth
    table = stats(wh, by, Scope()).to_pylist()
    assert table and set(MEASURES) <= set(table[0])
    check(by, table, rows, include_tests=False)


def test_filters(truth: tuple[Path, list[dict[str, Any]]]) -> None:
    wh, rows = truth
    scope = Scope(
        since=date(2026, 10, 1),
        until=date(2026, 10, 15),
        channel="voice_sip_v1",
        include_tests=True,
    )
    picked = [
        r
        for r in rows
        if date(2026, 10, 1) <= local_date(r) <= date(2026, 10, 15)
        and r["channel_manager_type"] == "voice_sip_v1"
    ]
    check("agent", stats(wh, "agent", scope).to_pylist(), picked, include_tests=True)
    one = stats(wh, "day", Scope(agent="agent-103")).to_pylist()
    assert {r["agent_id"] for r in one} == {"agent-103"}
    check("day", one, [r for r in rows if r["agent_id"] == "agent-103"], include_tests=False)


def test_null_keys_are_a_group_of_their_own(truth: tuple[Path, list[dict[str, Any]]]) -> None:
    wh, rows = truth
    table = stats(wh, "agent", Scope()).to_pylist()
    (nulls,) = [r for r in table if r["agent_id"] is None]
    assert nulls["session_count"] == sum(r["agent_id"] is None and not r["is_test"] for r in rows)


def test_a_renamed_agent_is_one_row_with_its_latest_name(
    truth: tuple[Path, list[dict[str, Any]]],
) -> None:
    wh, _ = truth
    table = stats(wh, "agent", Scope()).to_pylist()
    assert [r["agent_name"] for r in table if r["agent_id"] == "agent-101"] == ["Billing Assistant"]


def test_filters_are_parameters_not_sql(truth: tuple[Path, list[dict[str, Any]]]) -> None:
    wh, _ = truth
    for attack in ("x' OR '1'='1", "agent-101'; DROP VIEW sessions; --", "agent-101' --"):
        assert stats(wh, "agent", Scope(agent=attack)).num_rows == 0
        assert stats(wh, "channel", Scope(channel=attack)).num_rows == 0
    assert stats(wh, "agent", Scope()).num_rows == 9  # eight agents and the null group


def test_first_and_last_session_are_utc(truth: tuple[Path, list[dict[str, Any]]]) -> None:
    wh, _ = truth
    (row, *_) = stats(wh, "agent", Scope()).to_pylist()
    assert isinstance(row["first_session_at"], datetime)
    assert row["first_session_at"].utcoffset().total_seconds() == 0


def test_prompt_version_changes(truth: tuple[Path, list[dict[str, Any]]]) -> None:
    wh, rows = truth
    versions: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for row in rows:
        if not row["is_test"] and row["duration"] is not None:
            versions[(row["prompt_id"], row["prompt_version_number"])].append(row["duration"])
    con = duckdb.connect(str(wh / "sessions.duckdb"), read_only=True)
    table = con.sql("select * from prompt_version_changes").pl().to_dicts()
    assert len(table) == len(versions)
    for row in table:
        p50 = float(np.percentile(versions[(row["prompt_id"], row["prompt_version_number"])], 50))
        assert math.isclose(row["duration_p50_s"], p50)
        previous = versions.get((row["prompt_id"], row["prompt_version_number"] - 1))
        if previous is None:
            assert row["duration_p50_change_s"] is None and row["previous_version_number"] is None
        else:
            change = p50 - float(np.percentile(previous, 50))
            assert math.isclose(row["duration_p50_change_s"], change, abs_tol=1e-9)
            assert row["previous_duration_count"] == len(previous)


def test_prompt_version_changes_pairs_version_numbers_as_compare_does(tmp_path: Path) -> None:
    # A number exported under two `prompt_version` texts, a row without a number between
    # them in time, a prompt of its own: each row is compared with the number before it,
    # pooled over its texts, never with a row of its own number or with a row of no number.
    layout = [(1, "a", 1), (2, "b", 2), (2, None, 3), (None, "z", 4), (3, None, 5)]
    rows = [
        {
            "timestamp": f"2026-10-0{day}T10:{i:02d}:00Z",
            "session_id": f"s{day}{i}",
            "agent_id": "a",
            "prompt_id": "p",
            "prompt_version_number": number,
            "prompt_version": text,
            "duration": 10.0 * day + i,
        }
        for number, text, day in layout
        for i in range(3)
    ]
    export = tmp_path / "a.ndjson"
    export.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest([str(export)], tmp_path / "wh")
    con = duckdb.connect(str(tmp_path / "wh" / "sessions.duckdb"), read_only=True)
    found = con.sql(
        "SELECT prompt_version_number, prompt_version, previous_version_number,"
        " previous_duration_count, duration_p50_change_s FROM prompt_version_changes"
    ).fetchall()
    assert found == [
        (1, "a", None, None, None),
        (2, "b", 1, 3, 21.0 - 11.0),
        (2, None, 1, 3, 31.0 - 11.0),
        (3, None, 2, 6, 51.0 - 26.0),  # v2 pooled: the median of 21, 22, 23, 31, 32, 33
        (None, "z", None, None, None),
    ]
    # The same pairs and figures as `sessions compare`.
    compared = run_cli("compare", "-w", tmp_path / "wh", "--min-sessions", "2", "--format", "json")
    pairs = [
        (r["baseline"], r["candidate"], r["baseline_p50_s"], r["candidate_p50_s"])
        for r in json.loads(compared.stdout)
    ]
    assert pairs == [("1", "2", 11.0, 26.0), ("2", "3", 26.0, 51.0)], compared.stderr
