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


def _split(table: pa.Table, key: str, count: int, sides: int = 1) -> list[np.ndarray]:
    """The durations of `table` (sorted by `key`, then side) cut into `count` x `sides`
    samples: key k's side s is sample k x sides + s."""
    durations = table.column("duration").to_numpy()
    index = table.column(key).to_numpy().astype(np.int64) * sides
    if sides == 2:
        index = index + table.column("is_candidate").to_numpy(zero_copy_only=False)
    bounds = np.searchsorted(index, np.arange(count * sides + 1))
    # Sorted: DuckDB reads in parallel, so a sample's order varies from run to run, and a
    # seeded bootstrap must see the same sample to give the same numbers.
    return [np.sort(durations[bounds[i] : bounds[i + 1]]) for i in range(count * sides)]


def prompt_versions(
    con: duckdb.DuckDBPyConnection, scope: Scope, window_days: int | None
) -> list[Pair]:
    """Each prompt version against the version before it (by number) of the same prompt."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE compare_pairs AS {_sql('prompt_version_pairs.sql')}",
        _params(scope),
    )
    pairs = con.sql("SELECT * FROM compare_pairs ORDER BY pair_no").fetchall()
    samples = con.sql(
        _sql("prompt_version_samples.sql"), params=_params(scope, window_days=window_days)
    ).to_arrow_table()
    split = _split(samples, "pair_no", len(pairs), sides=2)
    note = BEFORE_AFTER
    if window_days is not None:
        note += f"; {window_days} days before and after the switch"
    return [
        Pair(
            group_id=prompt_id,
            group_name=prompt_name,
            baseline=str(baseline),
            candidate=str(candidate),
            baseline_durations=split[2 * no],
            candidate_durations=split[2 * no + 1],
            note=note,
        )
        for no, prompt_id, prompt_name, baseline, candidate, _switch in pairs
    ]


def experiments(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    expected_split: Sequence[float] | None,
    warn: Callable[[str], None],
) -> list[Pair]:
    """Each experiment's variants against its control, with the sample-ratio check of its
    variants' session counts against `expected_split` (control first, then the others by
    name; an equal split where None)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE compare_variants AS {_sql('experiment_variants.sql')}",
        _params(scope),
    )
    variants = con.sql(
        "SELECT variant_no, experiment_id, variant_name, is_control, session_count "
        "FROM compare_variants ORDER BY variant_no"
    ).fetchall()
    samples = con.sql(_sql("experiment_samples.sql"), params=_params(scope)).to_arrow_table()
    split = _split(samples, "variant_no", len(variants))
    by_experiment: dict[str, list[tuple[Any, ...]]] = {}
    for variant in variants:
        by_experiment.setdefault(variant[1], []).append(variant)
    pairs: list[Pair] = []
    for experiment_id, its in by_experiment.items():
        controls = [v for v in its if v[3]]
        if len(controls) != 1:
            warn(
                f"experiment {experiment_id!r}: {len(controls)} control variants "
                f"(of {len(its)}); it needs exactly one to be compared: skipped"
            )
            continue
        shares = _shares(experiment_id, [v[2] for v in its], expected_split)
        srm = statistics.sample_ratio_p_value([v[4] for v in its], shares)
        control = controls[0]
        for v in its:
            if v is control:
                continue
            pairs.append(
                Pair(
                    group_id=experiment_id,
                    group_name=experiment_id,
                    baseline=control[2],
                    candidate=v[2],
                    baseline_durations=split[control[0]],
                    candidate_durations=split[v[0]],
                    srm_p_value=srm,
                    note=_srm_note(srm, [v[4] for v in its], shares),
                )
            )
    return pairs


def _shares(experiment_id: str, names: list[str], expected: Sequence[float] | None) -> list[float]:
    if expected is None:
        return [1.0] * len(names)
    if len(expected) != len(names):
        raise CompareError(
            f"--expected-split has {len(expected)} shares, experiment {experiment_id!r} has "
            f"{len(names)} variants (control first, then by name: {', '.join(names)})"
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
