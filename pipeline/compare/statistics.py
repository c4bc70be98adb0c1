"""The statistics of one comparison of two samples of durations, and of a set of them.

Pure functions of numpy arrays; every test and interval is scipy's where scipy has one.

Intervals are asymptotic, not bootstrapped, so that a comparison of ten million sessions
costs a few partial sorts, not thousands of resamples:
- a quantile's difference: each side's distribution-free interval for its quantile (the
  sample quantiles at q ± z·sqrt(q(1-q)/n); a bound no order statistic gives at that
  confidence, on a small sample, is None), combined into an interval for the difference by
  MOVER (Zou & Donner, 2008), which keeps the skew of durations;
- the mean's difference: Welch's interval (`scipy.stats.ttest_ind`, unequal variances).
`tests/compare/test_statistics.py` simulates shifted and unshifted log-normal durations
(heavy tails too) and checks that 95% intervals cover the true difference 93-97% of the time;
README's "Comparisons" section gives the coverage measured at small samples, where the p90
interval is wider than it needs to be (it errs on the side of "no clear change").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Difference:
    """Candidate minus baseline, in the samples' unit (seconds)."""

    baseline_p50: float | None
    candidate_p50: float | None
    p50: Interval
    p90: Interval
    mean: Interval
    p_value: float | None


_NONE = Interval(None, None, None)


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def quantile_interval(
    sample: np.ndarray, q: float, confidence: float
) -> tuple[float | None, float, float | None]:
    """The sample's `q` quantile (linear interpolation, as DuckDB's `quantile_cont`) between
    the bounds of its distribution-free interval: the sample quantiles at q ± z·sqrt(q(1-q)/n),
    the order statistics a binomial count of values under the true quantile allows. A bound
    that no order statistic gives at `confidence` is None, not the sample's extreme: the
    count Binomial(n, q) must leave each side at most (1 - confidence) / 2, and a p90 of ten
    values has no 95% upper bound (all ten fall under the true p90 35% of the time), a median
    of five values no 95% bound at all."""
    n = len(sample)
    tail = (1 - confidence) / 2
    h = _z(confidence) * math.sqrt(q * (1 - q) / n)
    low, mid, high = np.quantile(sample, [max(q - h, 0.0), q, min(q + h, 1.0)])
    # The smallest value is a lower bound only where all n values fall above the true
    # quantile at most `tail` of the time, (1 - q)^n; the largest an upper one where q^n.
    return (
        float(low) if (1 - q) ** n <= tail else None,
        float(mid),
        float(high) if q**n <= tail else None,
    )


def quantile_difference(
    baseline: np.ndarray, candidate: np.ndarray, q: float, confidence: float
) -> Interval:
    """The difference of the `q` quantiles, with its interval at `confidence`: each side's
    own interval, recombined by MOVER (Zou & Donner's "method of variance estimates
    recovery"), which keeps each side's skew: a long right tail widens the interval on the
    side it pulls, not on both. A bound is None where a side's interval lacks what it needs."""
    if len(baseline) == 0 or len(candidate) == 0:
        return _NONE
    if len(baseline) < 2 or len(candidate) < 2:  # an estimate, but no interval from one value
        return Interval(float(np.quantile(candidate, q) - np.quantile(baseline, q)), None, None)
    lb, qb, ub = quantile_interval(baseline, q, confidence)
    lc, qc, uc = quantile_interval(candidate, q, confidence)
    d = qc - qb
    low = None if lc is None or ub is None else d - math.hypot(qc - lc, ub - qb)
    high = None if uc is None or lb is None else d + math.hypot(uc - qc, qb - lb)
    return Interval(d, low, high)


def mean_difference(baseline: np.ndarray, candidate: np.ndarray, confidence: float) -> Interval:
    """The difference of the means, with Welch's interval at `confidence`."""
    if len(baseline) == 0 or len(candidate) == 0:
        return _NONE
    diff = float(candidate.mean() - baseline.mean())
    if len(baseline) < 2 or len(candidate) < 2:
        return Interval(diff, None, None)
    if candidate.var() == 0 and baseline.var() == 0:
        return Interval(diff, diff, diff)  # no spread: the difference is known exactly
    test = stats.ttest_ind(candidate, baseline, equal_var=False)
    ci = test.confidence_interval(confidence)
    return Interval(diff, float(ci.low), float(ci.high))


def mann_whitney(baseline: np.ndarray, candidate: np.ndarray) -> float | None:
    """Two-sided Mann-Whitney U p-value (scipy's, its method chosen by scipy); None without a
    value on either side, 1.0 where every value is the same (no evidence of a difference)."""
    if len(baseline) == 0 or len(candidate) == 0:
        return None
    if np.all(baseline == baseline[0]) and np.all(candidate == baseline[0]):
        return 1.0
    return float(stats.mannwhitneyu(candidate, baseline, alternative="two-sided").pvalue)


# Resamples of the bootstrap (scipy's default), and how many are drawn at a time: memory is
# about 8 bytes x BOOTSTRAP_BATCH x the larger sample.
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_BATCH = 100


def bootstrap_difference(
    baseline: np.ndarray,
    candidate: np.ndarray,
    statistic: str | float,
    confidence: float,
    seed: int,
) -> Interval:
    """The difference of `statistic` ("mean", or a quantile's q), with its percentile
    bootstrap interval (`scipy.stats.bootstrap`, both samples resampled apart), seeded: the
    same samples and seed give the same interval."""
    if len(baseline) == 0 or len(candidate) == 0:
        return _NONE

    def of(x: np.ndarray, axis: int) -> np.ndarray:
        if statistic == "mean":
            return np.asarray(np.mean(x, axis=axis))
        return np.asarray(np.quantile(x, float(statistic), axis=axis))

    def diff(b: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        result: np.ndarray = of(c, axis) - of(b, axis)
        return result

    estimate = float(diff(baseline, candidate))
    if len(baseline) < 2 or len(candidate) < 2:  # an estimate, but no interval from one value
        return Interval(estimate, None, None)
    result = stats.bootstrap(
        (baseline, candidate),
        diff,
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        n_resamples=BOOTSTRAP_RESAMPLES,
        batch=BOOTSTRAP_BATCH,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high))


def difference(
    baseline: np.ndarray,
    candidate: np.ndarray,
    confidence: float,
    method: str = "asymptotic",
    seed: int = 0,
) -> Difference:
    """Everything one comparison row needs about its two samples; intervals `asymptotic`
    (the default: fast at any size) or `bootstrap` (percentile, seeded)."""
    if method == "bootstrap":
        p50 = bootstrap_difference(baseline, candidate, 0.5, confidence, seed)
        p90 = bootstrap_difference(baseline, candidate, 0.9, confidence, seed)
        mean = bootstrap_difference(baseline, candidate, "mean", confidence, seed)
    else:
        p50 = quantile_difference(baseline, candidate, 0.5, confidence)
        p90 = quantile_difference(baseline, candidate, 0.9, confidence)
        mean = mean_difference(baseline, candidate, confidence)
    return Difference(
        baseline_p50=float(np.median(baseline)) if len(baseline) else None,
        candidate_p50=float(np.median(candidate)) if len(candidate) else None,
        p50=p50,
        p90=p90,
        mean=mean,
        p_value=mann_whitney(baseline, candidate),
    )


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values that are not None (None stays None).

    scipy has no Holm (its `false_discovery_control` is Benjamini-Hochberg/Yekutieli): the k-th
    smallest of m p-values is multiplied by m - k + 1, made non-decreasing, and capped at 1.
    """
    known = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(known)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for k, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
    return adjusted


def sample_ratio_p_value(counts: Sequence[int], expected_shares: Sequence[float]) -> float | None:
    """Chi-square test of the variants' session counts against the expected split; None with
    fewer than two variants or no sessions."""
    total = sum(counts)
    if len(counts) < 2 or total == 0:
        return None
    shares = np.asarray(expected_shares, dtype=float)
    shares = shares / shares.max()  # 1e308,1e308 is 1,1: no sum overflows to infinity
    expected = shares / shares.sum() * total
    return float(stats.chisquare(np.asarray(counts, dtype=float), expected).pvalue)
