"""The figures the notebook and the HTML report show, read from the warehouse's views."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline import query
from pipeline.scope import Scope

_SCOPE = "$since, $until, $agent, $channel, $include_tests"

# Box-plot statistics per agent, computed in DuckDB so that the chart costs the same for
# ten thousand sessions or ten million. Whiskers at the 5th and 95th percentiles.
# The quartiles of the durations above zero, which a log scale can draw; the zeros counted
# apart, so that a chart can say what it leaves out (`duration_count` is the tables').
_DISTRIBUTION = f"""
SELECT agent_id,
    arg_max(agent_name, "timestamp") FILTER (WHERE agent_name IS NOT NULL) AS agent_name,
    count(kept_duration) AS duration_count,
    count(*) FILTER (WHERE kept_duration = 0) AS zero_count,
    quantile_cont(kept_duration, 0.05) FILTER (WHERE kept_duration > 0) AS p05,
    quantile_cont(kept_duration, 0.25) FILTER (WHERE kept_duration > 0) AS p25,
    quantile_cont(kept_duration, 0.50) FILTER (WHERE kept_duration > 0) AS p50,
    quantile_cont(kept_duration, 0.75) FILTER (WHERE kept_duration > 0) AS p75,
    quantile_cont(kept_duration, 0.95) FILTER (WHERE kept_duration > 0) AS p95
FROM sessions_in_scope({_SCOPE})
WHERE kept_duration IS NOT NULL
GROUP BY agent_id
ORDER BY p50
"""

_DAILY = f"""
SELECT local_date,
    count(*) FILTER (WHERE NOT excluded) AS session_count,
    median(kept_duration) AS duration_p50_s,
    quantile_cont(kept_duration, 0.9) AS duration_p90_s
FROM sessions_in_scope({_SCOPE})
GROUP BY local_date
HAVING count(*) FILTER (WHERE NOT excluded) > 0
ORDER BY local_date
"""

_HEADLINE = f"""
SELECT
    count(*) FILTER (WHERE NOT excluded) AS session_count,
    count(kept_duration) AS duration_count,
    -- Sessions without an agent id are a group of their own, as in the views' tables.
    count(DISTINCT agent_id) FILTER (WHERE NOT excluded)
        + (count(*) FILTER (WHERE NOT excluded AND agent_id IS NULL) > 0)::INTEGER
        AS agent_count,
    median(kept_duration) AS duration_p50_s,
    quantile_cont(kept_duration, 0.9) AS duration_p90_s,
    sum(kept_duration) / 3600 AS duration_total_h,
    count(*) FILTER (WHERE excluded) AS test_sessions_excluded,
    min(local_date) FILTER (WHERE NOT excluded) AS first_date,
    max(local_date) FILTER (WHERE NOT excluded) AS last_date
FROM sessions_in_scope({_SCOPE})
"""

_REJECTS = """
SELECT coalesce(reason.field, 'record') AS field, reason.rule AS rule, count(*) AS reasons
FROM (SELECT unnest(reasons) AS reason FROM rejects)
GROUP BY ALL
ORDER BY reasons DESC, field, rule
"""


@dataclass(frozen=True)
class Analysis:
    """Everything the report shows, for one scope."""

    warehouse: str
    version: int
    scope: Scope
    headline: dict[str, Any]
    agents: pl.DataFrame
    channels: pl.DataFrame
    prompt_versions: pl.DataFrame
    distribution: pl.DataFrame
    daily: pl.DataFrame
    rejects: pl.DataFrame
    rejected_rows: int
    # `sessions compare` of the same scope: each prompt version against the previous one,
    # each experiment variant against its control (`pipeline.compare.COLUMNS`), and each
    # prompt version's median with its 95% interval, for the chart's bars.
    comparisons: pl.DataFrame
    experiments: pl.DataFrame
    version_medians: pl.DataFrame
    # What `sessions compare` warns of in this scope (an experiment it cannot compare).
    comparison_notes: list[str]

    @property
    def period(self) -> tuple[date | None, date | None]:
        return self.headline["first_date"], self.headline["last_date"]


@dataclass(frozen=True)
class Top:
    """The first rows of a breakdown, and what the rest hold: a report stays readable with
    thousands of agents or prompts, and says what it left out."""

    shown: pl.DataFrame
    rows_left_out: int
    groups_left_out: int
    sessions_left_out: int

    @property
    def complete(self) -> bool:
        return self.rows_left_out == 0


def top(frame: pl.DataFrame, n: int) -> Top:
    """The `n` rows of `frame` with the most sessions (ties in the frame's order)."""
    shown = frame.with_row_index("_order").sort(
        ["session_count", "_order"], descending=[True, False], nulls_last=True
    )
    rest = shown.slice(n)
    return Top(
        shown=shown.head(n).sort("_order").drop("_order"),
        rows_left_out=rest.height,
        groups_left_out=rest.height,
        sessions_left_out=int(rest["session_count"].sum()),
    )


def top_prompts(frame: pl.DataFrame, n: int, versions: int) -> Top:
    """The versions of the `n` prompts with the most sessions, the latest `versions` of each;
    prompts by sessions, then their versions in order."""
    totals = (
        frame.group_by("prompt_id", maintain_order=True)
        .agg(pl.col("session_count").sum().alias("_total"))
        .with_row_index("_order")
        .sort(["_total", "_order"], descending=[True, False], nulls_last=True)
    )
    chosen = totals.head(n).with_row_index("_rank").select("prompt_id", "_rank")
    shown = (
        frame.with_row_index("_version")
        .join(chosen, on="prompt_id", how="inner", nulls_equal=True)
        .sort("_version")  # a join does not keep the order, and "latest" depends on it
        .filter(
            # The count is unsigned: cast before subtracting, or a short prompt wraps around.
            pl.int_range(pl.len()).over("prompt_id")
            >= pl.len().over("prompt_id").cast(pl.Int64) - versions
        )
        .sort(["_rank", "_version"])
        .drop("_rank", "_version")
    )
    return Top(
        shown=shown,
        rows_left_out=frame.height - shown.height,
        groups_left_out=max(totals.height - n, 0),
        sessions_left_out=int(frame["session_count"].sum()) - int(shown["session_count"].sum()),
    )


def _comparisons(con: duckdb.DuckDBPyConnection, scope: Scope) -> dict[str, Any]:
    """The comparisons of `scope` (defaults of `sessions compare`) and the medians of the
    prompt versions they compare, with their distribution-free 95% intervals."""
    from pipeline import compare
    from pipeline.compare.statistics import quantile_interval

    settings = compare.Settings()
    versions = compare.pairs(con, "prompt-version", scope)
    medians: dict[tuple[Any, str], tuple[float | None, float, float | None]] = {}
    for pair in versions:
        for version, sample in (
            (pair.baseline, pair.baseline_durations),
            (pair.candidate, pair.candidate_durations),
        ):
            if len(sample) >= 2:
                medians[(pair.group_id, version)] = quantile_interval(sample, 0.5, 0.95)
    notes: list[str] = []
    frames = {
        "comparisons": compare.table(versions, settings),
        "experiments": compare.table(
            compare.pairs(con, "experiment", scope, warn=notes.append), settings
        ),
    }
    result = {name: pl.from_arrow(table) for name, table in frames.items()}
    result["version_medians"] = pl.DataFrame(
        {
            "prompt_id": [key[0] for key in medians],
            "prompt_version_number": [int(key[1]) for key in medians],
            "duration_p50_s": [v[1] for v in medians.values()],
            "duration_p50_low_s": [v[0] for v in medians.values()],
            "duration_p50_high_s": [v[2] for v in medians.values()],
        },
        schema={
            "prompt_id": pl.String,
            "prompt_version_number": pl.Int64,
            "duration_p50_s": pl.Float64,
            "duration_p50_low_s": pl.Float64,
            "duration_p50_high_s": pl.Float64,
        },
    )
    return {
        **{k: v for k, v in result.items() if isinstance(v, pl.DataFrame)},
        "comparison_notes": notes,
    }


def analyse(
    warehouse: Path | str, scope: Scope | None = None, as_of: int | datetime | None = None
) -> Analysis:
    """Read every figure of the report for `scope` (all sessions but tests by default)."""
    scope = scope or Scope()
    con = query.connect(warehouse, as_of)
    params = {
        "since": scope.since,
        "until": scope.until,
        "agent": scope.agent,
        "channel": scope.channel,
        "include_tests": scope.include_tests,
    }

    def frame(sql: str, bound: bool = True) -> pl.DataFrame:
        result = pl.from_arrow(con.sql(sql, params=params if bound else None).to_arrow_table())
        assert isinstance(result, pl.DataFrame)
        return result

    try:
        headline = frame(_HEADLINE).to_dicts()[0]
        return Analysis(
            warehouse=str(warehouse),
            version=con.sql("SELECT getvariable('warehouse_version')").fetchall()[0][0],
            scope=scope,
            headline=headline,
            agents=frame(f"SELECT * FROM agent_duration_stats_for({_SCOPE})"),
            channels=frame(f"SELECT * FROM channel_duration_stats_for({_SCOPE})"),
            prompt_versions=frame(f"SELECT * FROM prompt_version_changes_for({_SCOPE})"),
            distribution=frame(_DISTRIBUTION),
            daily=frame(_DAILY),
            rejects=frame(_REJECTS, bound=False),
            rejected_rows=con.sql("SELECT count(*) FROM rejects").fetchall()[0][0],
            **_comparisons(con, scope),
        )
    except duckdb.Error as exc:
        raise query.QueryError(f"cannot read {warehouse}: {exc}") from None
    finally:
        con.close()
