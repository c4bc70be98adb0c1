"""The targets of issue #14, each decided on the measured results of one run.

Every ratio is a speed ratio to DuckDB's bare `COPY (SELECT * FROM read_json|read_csv(file))
TO '...parquet'` of the same file, in the same run: reference seconds / case seconds.
"""

from __future__ import annotations

from measure import Result

GIB = 2**30
# Full ingest into an empty warehouse, by export; "aim" is what the issue hopes for.
INGEST_RATIO = {
    "ndjson": (0.40, "≥ 0.40x (aim 0.5x)"),
    "csv": (0.45, "≥ 0.45x (aim 0.5x)"),
    "pages": (0.30, "≥ 0.30x"),
    "pages_document": (0.30, "≥ 0.30x"),
    "odd_ndjson": (0.30, "≥ 0.30x"),
    "odd_csv": (0.30, "≥ 0.30x"),
}
PEAK_RSS = 1 * GIB
FLAT = 0.20  # the 5M peak within 20% of the 1M peak
INCREMENTAL = 1.5  # 100k into 5M at most 1.5x the time of 100k into an empty warehouse


def ratio(result: Result, by_case: dict[str, Result]) -> float | None:
    reference = by_case.get(result.reference)
    return reference.seconds / result.seconds if reference else None


def ingest(result: Result, kind: str, by_case: dict[str, Result]) -> None:
    minimum, text = INGEST_RATIO[kind]
    measured = ratio(result, by_case)
    result.target = text
    result.met = measured is not None and measured >= minimum


def memory(result: Result, smaller: Result | None) -> None:
    """Peak RSS ≤ 1 GiB; with `smaller`, also within 20% of its peak (flat as input grows)."""
    within = result.peak_rss <= PEAK_RSS
    text = "peak RSS ≤ 1 GiB"
    if smaller is not None:
        within = within and result.peak_rss <= smaller.peak_rss * (1 + FLAT)
        text += f", ≤ {1 + FLAT:.1f}x the {smaller.rows:,}-session peak"
    result.target = f"{result.target}; {text}" if result.target else text
    result.met = within if result.met is None else result.met and within


def incremental(into_big: Result, into_empty: Result) -> None:
    into_big.target = f"≤ {INCREMENTAL}x the time into an empty warehouse"
    into_big.met = into_big.seconds <= INCREMENTAL * into_empty.seconds


def ahead_of(peer: Result, ingest: Result, by_case: dict[str, Result]) -> None:
    """A peer's row: met when `sessions ingest` of the same file is faster than the peer."""
    peer_ratio, ingest_ratio = ratio(peer, by_case), ratio(ingest, by_case)
    peer.target = "sessions ingest ahead"
    if peer_ratio is not None and ingest_ratio is not None:
        peer.target += f" (it is at {ingest_ratio:.2f}x)"
        peer.met = ingest_ratio > peer_ratio


def mark(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: ""}[met]
