"""The samples `sessions compare` compares, read from the warehouse's views: each prompt version
against the one before it, or each experiment variant against its control."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.compare import statistics
from pipeline.compare.rows import Pair
from pipeline.errors import PipelineError
from pipeline.scope import Scope

BEFORE_AFTER = "before/after, not randomised"


class CompareError(PipelineError):
    """A comparison that cannot be made as asked (exit 2)."""

    exit_code = 2


def _sql(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


def _params(scope: Scope, **more: Any) -> dict[str, Any]:
    return {
        "since": scope.since,
        "until": scope.until,
        "agent": scope.agent,
        "channel": scope.channel,
        "include_tests": scope.include_tests,
        **more,
    }


def _split(
    table: pa.Table, key: str, count: int, also: str | None = None
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The durations of `table` cut into the samples of its `count` keys, each sorted (DuckDB
    reads in parallel, so rows come in a different order each run, and a seeded bootstrap
    must see the same sample to give the same numbers), with the column `also` cut and
    ordered alike. Sorted here, not in SQL: DuckDB's ORDER BY of ten million rows took three
    times the CPU of the whole query without it."""
    keys = table.column(key).to_numpy()
    durations = table.column("duration").to_numpy()
    by_key = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[by_key], np.arange(count + 1))
    samples, alongside = [], []
    extra = table.column(also).to_numpy() if also is not None else None
    for i in range(count):
        rows = by_key[bounds[i] : bounds[i + 1]]
        order = rows[np.argsort(durations[rows], kind="stable")]
        samples.append(durations[order])
        if extra is not None:
            alongside.append(extra[order])
    return samples, (alongside if extra is not None else None)


_DAY_US = 86_400 * 1_000_000


def prompt_versions(
    con: duckdb.DuckDBPyConnection, scope: Scope, window_days: int | None
) -> list[Pair]:
    """Each prompt version against the version before it (by number) of the same prompt.
    Each version's sessions are read once, sorted (a seeded bootstrap needs the same sample
    in the same order), even where it is the candidate of one pair and the baseline of the
    next; a window cuts each pair's sides by the sessions' start."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE compare_pairs AS {_sql('prompt_version_pairs.sql')}",
        _params(scope),
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE compare_versions AS {_sql('prompt_versions.sql')}")
    pairs = con.sql(
        "SELECT pair_no, prompt_id, prompt_name, baseline_version, candidate_version, switch_us "
        "FROM compare_pairs ORDER BY pair_no"
    ).fetchall()
    numbers = {
        (prompt_id, version): no
        for no, prompt_id, version in con.sql("SELECT * FROM compare_versions").fetchall()
    }
    samples = con.sql(
        _sql("prompt_version_samples.sql"),
        params=_params(scope, with_time=window_days is not None),
    ).to_arrow_table()
    durations, at_us = _split(
        samples, "version_no", len(numbers), also="at_us" if window_days is not None else None
    )
    note = BEFORE_AFTER
    if window_days is not None:
        days = "1 day" if window_days == 1 else f"{window_days} days"
        note += f"; {days} before and after the switch"
    found = []
    for _no, prompt_id, prompt_name, baseline, candidate, switch_us in pairs:
        b = numbers[(prompt_id, baseline)]
        c = numbers[(prompt_id, candidate)]
        before, after = durations[b], durations[c]
        if at_us is not None and window_days is not None:
            span = window_days * _DAY_US
            b_at, c_at = at_us[b], at_us[c]
            before = before[(b_at >= switch_us - span) & (b_at < switch_us)]
            after = after[(c_at >= switch_us) & (c_at < switch_us + span)]
        found.append(
            Pair(
                group_id=prompt_id,
                group_name=prompt_name,
                baseline=str(baseline),
                candidate=str(candidate),
                baseline_durations=before,
                candidate_durations=after,
                note=note,
            )
        )
    return found


def experiments(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    expected_split: Sequence[float] | None,
    warn: Callable[[str], None],
    experiment_id: str | None = None,
) -> list[Pair]:
    """Each experiment's variants against its control, with the sample-ratio check of its
    variants' session counts against `expected_split` (control first, then the others by
    name; an equal split where None). An experiment that cannot be compared (no control, or
    several, or nothing but its control) is said in `warn` and left out."""
    con.execute(_sql("experiment_variant_key.sql"))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE compare_variant_names AS {_sql('experiment_names.sql')}",
        _params(scope),
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE compare_variants AS {_sql('experiment_variants.sql')}",
        _params(scope, experiment=experiment_id),
    )
    variants = con.sql(
        "SELECT variant_no, experiment_id, variant_name, is_control, session_count, "
        "unnamed_sessions, variant_key, ambiguous_sessions FROM compare_variants "
        "ORDER BY variant_no"
    ).fetchall()
    samples = con.sql(_sql("experiment_samples.sql"), params=_params(scope)).to_arrow_table()
    split, _ = _split(samples, "variant_no", len(variants))
    by_experiment: dict[str, list[tuple[Any, ...]]] = {}
    for variant in variants:
        by_experiment.setdefault(variant[1], []).append(variant)
    in_scope = con.sql(
        _sql("experiments_in_scope.sql"), params=_params(scope, experiment=experiment_id)
    ).fetchall()
    for experiment, count in in_scope:
        if experiment not in by_experiment:
            warn(
                f"experiment {experiment!r}: none of its {count:,} session(s) can be placed in "
                "a variant (no variant id, and no name or one several ids share): left out"
            )
    pairs: list[Pair] = []
    for experiment, its in by_experiment.items():
        if its[0][5]:
            warn(
                f"experiment {experiment!r}: {its[0][5]:,} session(s) name no variant "
                "(no id, no name): left out of its comparisons and of the sample-ratio check"
            )
        if its[0][7]:
            warn(
                f"experiment {experiment!r}: {its[0][7]:,} session(s) have no variant id and "
                "a name several variant ids share: left out of its comparisons and of the "
                "sample-ratio check"
            )
        controls = [v for v in its if v[3]]
        if len(controls) != 1 or len(its) < 2:
            why = "nothing but its control" if len(its) < 2 else f"{len(controls)} controls"
            warn(
                f"experiment {experiment!r}: {why} (of {len(its)} variant(s)); it needs "
                "exactly one control and another variant to be compared: left out"
            )
            continue
        names = _names(its)
        shares = _shares(experiment, [names[v[0]] for v in its], expected_split)
        counts = [v[4] for v in its]
        srm = statistics.sample_ratio_p_value(counts, shares)
        control = controls[0]
        for v in its:
            if v is control:
                continue
            pairs.append(
                Pair(
                    group_id=experiment,
                    group_name=experiment,
                    baseline=names[control[0]],
                    candidate=names[v[0]],
                    baseline_durations=split[control[0]],
                    candidate_durations=split[v[0]],
                    srm_p_value=srm,
                    note=_srm_note(srm, counts, shares),
                )
            )
    return pairs


def _names(variants: list[tuple[Any, ...]]) -> dict[int, str]:
    """Each variant's name, with its id where two variants of the experiment share a name,
    so that no two rows read the same."""
    seen: dict[str, int] = {}
    for v in variants:
        seen[v[2]] = seen.get(v[2], 0) + 1
    # The key without its kind ('id:', 'name:'; see experiment_variant_key.sql).
    return {
        v[0]: v[2] if seen[v[2]] == 1 else f"{v[2]} ({v[6].split(':', 1)[1]})" for v in variants
    }


def _shares(experiment_id: str, names: list[str], expected: Sequence[float] | None) -> list[float]:
    if expected is None:
        return [1.0] * len(names)
    if len(expected) != len(names):
        raise CompareError(
            f"--expected-split has {len(expected)} shares, experiment {experiment_id!r} has "
            f"{len(names)} variants (control first, then by name: {', '.join(names)}); "
            "--experiment ID compares one experiment alone"
        )
    return list(expected)


def _srm_note(p: float | None, counts: list[int], shares: list[float]) -> str | None:
    from pipeline.compare.verdict import SRM_THRESHOLD

    if p is None or p >= SRM_THRESHOLD:
        return None
    total, whole = sum(counts), sum(shares)
    seen = ", ".join(f"{c / total:.1%}" for c in counts)
    planned = ", ".join(f"{s / whole:.1%}" for s in shares)
    return (
        f"sample ratio mismatch: sessions split {seen}, planned {planned} "
        f"(chi-square p={p:.2g}); the assignment is broken, do not read the durations"
    )
