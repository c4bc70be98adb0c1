"""The verdict of one comparison row: the rule `sessions stats --explain` documents."""

from __future__ import annotations

SHORTER = "shorter"
LONGER = "longer"
NO_CLEAR_CHANGE = "no clear change"
TOO_FEW = "too few sessions"
SAMPLE_RATIO_MISMATCH = "sample ratio mismatch"

# Below this p-value the variants' counts are taken not to match the planned split.
SRM_THRESHOLD = 0.001


def verdict(
    *,
    baseline_count: int,
    candidate_count: int,
    p50_low: float | None,
    p50_high: float | None,
    p_value_adjusted: float | None,
    srm_p_value: float | None,
    confidence: float,
    min_sessions: int,
) -> str:
    """In this order: an experiment whose split is off cannot be read at all; a side with
    fewer than `min_sessions` durations cannot be read yet; a change is called only when the
    p50 interval leaves out zero and the Holm-adjusted Mann-Whitney p-value is under
    1 - `confidence` (both, so that neither a shifted tail nor a lucky interval alone calls
    it); otherwise there is no clear change."""
    if srm_p_value is not None and srm_p_value < SRM_THRESHOLD:
        return SAMPLE_RATIO_MISMATCH
    if min(baseline_count, candidate_count) < min_sessions:
        return TOO_FEW
    if (
        p50_low is not None
        and p50_high is not None
        and p_value_adjusted is not None
        # Rounded: 1 - 0.95 is 0.050000000000000044 in binary floating point.
        and p_value_adjusted < round(1 - confidence, 12)
    ):
        if p50_high < 0:
            return SHORTER
        if p50_low > 0:
            return LONGER
    return NO_CLEAR_CHANGE
