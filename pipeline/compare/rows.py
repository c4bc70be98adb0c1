"""One comparison row per pair of samples: the columns `sessions compare` writes (fixed names,
scripts read them), their statistics, Holm's adjustment over the rows, and the verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.compare import statistics
from pipeline.compare.verdict import verdict

COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("group_id", pa.string()),
    ("group_name", pa.string()),
    ("baseline", pa.string()),
    ("candidate", pa.string()),
    ("baseline_count", pa.int64()),
    ("candidate_count", pa.int64()),
    ("baseline_p50_s", pa.float64()),
    ("candidate_p50_s", pa.float64()),
    ("p50_diff_s", pa.float64()),
    ("p50_diff_low_s", pa.float64()),
    ("p50_diff_high_s", pa.float64()),
    ("p50_change_share", pa.float64()),
    ("p90_diff_s", pa.float64()),
    ("p90_diff_low_s", pa.float64()),
    ("p90_diff_high_s", pa.float64()),
    ("mean_diff_s", pa.float64()),
    ("mean_diff_low_s", pa.float64()),
    ("mean_diff_high_s", pa.float64()),
    ("p_value", pa.float64()),
    ("p_value_adjusted", pa.float64()),
    ("srm_p_value", pa.float64()),
    ("verdict", pa.string()),
    ("note", pa.string()),
)
SCHEMA = pa.schema(COLUMNS)


@dataclass(frozen=True)
class Pair:
    """Two samples to compare, and what names them in the output."""

    group_id: str | None
    group_name: str | None
    baseline: str
    candidate: str
    baseline_durations: np.ndarray
    candidate_durations: np.ndarray
    srm_p_value: float | None = None
    note: str | None = None


@dataclass(frozen=True)
class Settings:
    confidence: float = 0.95
    min_sessions: int = 30
    interval: str = "asymptotic"  # or "bootstrap" (`statistics.difference`)
    seed: int = 0


def table(pairs: Sequence[Pair], settings: Settings) -> pa.Table:
    """The comparison rows of `pairs`, in their order."""
    differences = [
        statistics.difference(
            p.baseline_durations,
            p.candidate_durations,
            settings.confidence,
            method=settings.interval,
            seed=settings.seed,
        )
        for p in pairs
    ]
    adjusted = statistics.holm([d.p_value for d in differences])
    rows = [
        _row(p, d, p_adj, settings)
        for p, d, p_adj in zip(pairs, differences, adjusted, strict=True)
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _row(
    pair: Pair, d: statistics.Difference, p_adjusted: float | None, settings: Settings
) -> dict[str, Any]:
    n_b, n_c = len(pair.baseline_durations), len(pair.candidate_durations)
    share = (
        d.p50.estimate / d.baseline_p50 if d.p50.estimate is not None and d.baseline_p50 else None
    )
    called = verdict(
        baseline_count=n_b,
        candidate_count=n_c,
        p50_low=d.p50.low,
        p50_high=d.p50.high,
        p_value_adjusted=p_adjusted,
        srm_p_value=pair.srm_p_value,
        confidence=settings.confidence,
        min_sessions=settings.min_sessions,
    )
    notes = [pair.note] if pair.note else []
    if min(n_b, n_c) < settings.min_sessions:
        notes.append(f"fewer than {settings.min_sessions} durations on a side")
    return {
        "group_id": pair.group_id,
        "group_name": pair.group_name,
        "baseline": pair.baseline,
        "candidate": pair.candidate,
        "baseline_count": n_b,
        "candidate_count": n_c,
        "baseline_p50_s": d.baseline_p50,
        "candidate_p50_s": d.candidate_p50,
        "p50_diff_s": d.p50.estimate,
        "p50_diff_low_s": d.p50.low,
        "p50_diff_high_s": d.p50.high,
        "p50_change_share": share,
        "p90_diff_s": d.p90.estimate,
        "p90_diff_low_s": d.p90.low,
        "p90_diff_high_s": d.p90.high,
        "mean_diff_s": d.mean.estimate,
        "mean_diff_low_s": d.mean.low,
        "mean_diff_high_s": d.mean.high,
        "p_value": d.p_value,
        "p_value_adjusted": p_adjusted,
        "srm_p_value": pair.srm_p_value,
        "verdict": called,
        "note": "; ".join(notes) or None,
    }
