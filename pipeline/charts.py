"""The charts of the notebook and the report, as matplotlib figures of an `Analysis`."""

from __future__ import annotations

import io
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

import matplotlib
import polars as pl
from matplotlib.figure import Figure

from pipeline.analysis import Analysis, top, top_prompts
from pipeline.labels import for_chart

BLUE, ORANGE, GREY = "#3465a4", "#f57900", "#888a85"

# How many agents, channels and reasons a chart shows (those with the most sessions), and how
# many prompts: past that a chart is unreadable, and its image grows without bound.
TOP = 20
TOP_PROMPTS = 12
VERSIONS = 10


@contextmanager
def _plain_text() -> Iterator[None]:
    """Text as matplotlib draws it for our labels, whatever a notebook's settings: never LaTeX,
    and mathtext only where a `$` is unescaped, which `for_chart` leaves none of. A font that
    lacks a glyph (emoji in a name) draws a box; the warning about it says nothing to a
    report's reader, nor does numpy's about an overflow in an axis' arithmetic."""
    with (
        matplotlib.rc_context({"text.usetex": False, "text.parse_math": True}),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        warnings.filterwarnings("ignore", message="overflow encountered", category=RuntimeWarning)
        yield


def _chart(build: Callable[..., Figure]) -> Callable[..., Figure]:
    @wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with _plain_text():
            return build(*args, **kwargs)

    return wrapper


def _figure(
    width: float, height: float, rows: int = 1, columns: int = 1
) -> tuple[Figure, list[Any]]:
    """A figure and its axes, row by row. No pyplot: no global state and no GUI backend,
    so the same code serves a script, the report and a notebook."""
    fig = Figure(figsize=(width, height))
    grid = fig.subplots(rows, columns, squeeze=False)
    return fig, [ax for row in grid for ax in row]


def _empty(ax: Any, text: str) -> None:
    """Say so in a chart with nothing to show, rather than leave bare axes."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_yticks([])


def _label(agent_id: str | None, name: str | None) -> str:
    return for_chart(name or agent_id or "(no agent)")


def _of(shown: int, total: int, what: str) -> str:
    """Says what a chart cut: '' when it shows everything."""
    return f" (the {shown:,} of {total:,} {what} with most sessions)" if shown < total else ""


@_chart
def duration_distribution(analysis: Analysis, n: int = TOP) -> Figure:
    """Box plots of session duration per agent, on a log scale (durations are skewed): the `n`
    agents with most sessions with a duration."""
    # A log scale draws no zero: the agents with only zeros are left out, and said to be.
    everyone = analysis.distribution.filter(pl.col("duration_count") > pl.col("zero_count"))
    zeros = int(analysis.distribution["zero_count"].sum())
    chosen = top(everyone.with_columns(session_count=pl.col("duration_count")), n).shown
    rows = chosen.drop("session_count").sort("p50", maintain_order=True).to_dicts()
    fig, (ax,) = _figure(9, 0.45 * max(len(rows), 3) + 1.2)
    stats = [
        {
            "label": f"{_label(r['agent_id'], r['agent_name'])} (n={r['duration_count']:,}"
            + (f", {r['zero_count']:,} at 0 s" if r["zero_count"] else "")
            + ")",
            "whislo": r["p05"],
            "q1": r["p25"],
            "med": r["p50"],
            "q3": r["p75"],
            "whishi": r["p95"],
            "fliers": [],
        }
        for r in rows
    ]
    if stats:
        ax.bxp(stats, orientation="horizontal", showfliers=False, patch_artist=True,
               boxprops={"facecolor": "#c6d7ee", "edgecolor": BLUE},
               medianprops={"color": ORANGE, "linewidth": 2})  # fmt: skip
    else:
        _empty(ax, "no duration above 0 s" if zeros else "no session with a duration")
    ax.set_xscale("log")
    ax.set_xlabel(
        "session duration, seconds (log scale); box 25-75%, whiskers 5-95%"
        + (f"; {zeros:,} durations of 0 s not drawn" if zeros else "")
    )
    ax.set_title("Duration per agent" + _of(len(rows), everyone.height, "agents"))
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    return fig


@_chart
def channel_comparison(analysis: Analysis, n: int = TOP) -> Figure:
    """Median and p90 duration per channel, with the sessions behind each: the `n` channels
    with most sessions."""
    rows = top(analysis.channels, n).shown.to_dicts()
    labels = [
        f"{for_chart(r['channel_manager_type'] or '(none)')}\n"
        f"{'' if r['channel_manager_service'] is None else for_chart(r['channel_manager_service'])}"
        f" (n={r['session_count']:,})"
        for r in rows
    ]
    fig, (ax,) = _figure(9, 0.6 * max(len(rows), 2) + 1.2)
    y = range(len(rows))
    ax.barh(
        [i + 0.2 for i in y], [r["duration_p90_s"] or 0 for r in rows], 0.4, color=GREY, label="p90"
    )
    ax.barh(
        [i - 0.2 for i in y],
        [r["duration_p50_s"] or 0 for r in rows],
        0.4,
        color=BLUE,
        label="median",
    )
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title("Duration per channel" + _of(len(rows), analysis.channels.height, "channels"))
    if rows:
        ax.legend(loc="best")
    else:
        _empty(ax, "no sessions")
    fig.tight_layout()
    return fig


@_chart
def prompt_versions(analysis: Analysis, n: int = TOP_PROMPTS, versions: int = VERSIONS) -> Figure:
    """Median and p90 duration of each prompt's versions, in order, with their sessions: the
    latest `versions` of the `n` prompts with most sessions with a duration."""
    measured = analysis.prompt_versions.filter(pl.col("duration_count") > 0)
    data = top_prompts(measured.with_columns(session_count=pl.col("duration_count")), n, versions)
    everyone = measured["prompt_id"].n_unique()
    prompts = data.shown["prompt_id"].unique(maintain_order=True).to_list()
    columns = min(len(prompts), 4) or 1
    rows = -(-len(prompts) // columns) or 1
    fig, axes = _figure(3.2 * columns, 2.6 * rows, rows, columns)
    for ax, prompt in zip(axes, prompts, strict=False):
        shown = data.shown.filter(pl.col("prompt_id").eq_missing(prompt)).to_dicts()
        x = _version_ticks(shown)
        ax.plot(x, [v["duration_p50_s"] for v in shown], "o-", color=BLUE, label="median")
        # Each median's 95% interval (distribution-free): a step inside the bars is noise.
        low, high = _median_bars(analysis, prompt, shown)
        ax.errorbar(x, [v["duration_p50_s"] for v in shown], yerr=[low, high], fmt="none",
                    ecolor=BLUE, elinewidth=1, capsize=3, label="95% interval")  # fmt: skip
        ax.plot(x, [v["duration_p90_s"] for v in shown], "s--", color=GREY, label="p90")
        for i, v in enumerate(shown):
            # Under the interval's bar, not across it.
            under = v["duration_p50_s"] - low[i]
            ax.annotate(f"n={v['duration_count']:,}", (i, under), fontsize=7,
                        textcoords="offset points", xytext=(0, -9), ha="center")  # fmt: skip
        ax.set_title(for_chart(shown[-1]["prompt_name"] or str(prompt), 36), fontsize=9)
        ax.set_xlabel("version", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=8)
    for ax in axes[len(prompts) :]:
        ax.axis("off")
    axes[0].set_ylabel("seconds")
    if prompts:
        axes[0].legend(fontsize=7)
    else:
        _empty(axes[0], "no prompt version with a duration")
    fig.suptitle("Duration by prompt version" + _of(len(prompts), everyone, "prompts"))
    fig.tight_layout()
    return fig


def _version_ticks(shown: list[dict[str, Any]]) -> list[str]:
    """A tick for each shown version, each its own: the version number, and its text where
    that number (or no number) is shown more than once (one version exported under two
    `prompt_version` texts, or several drafts without a number)."""
    numbers = Counter(v["prompt_version_number"] for v in shown)
    ticks = []
    for v in shown:
        tick = "none" if v["prompt_version_number"] is None else str(v["prompt_version_number"])
        if numbers[v["prompt_version_number"]] > 1:
            tick = f"{tick} {v['prompt_version'] or ''}".rstrip()
        ticks.append(tick)
    # Two ticks alike (texts cut alike) would draw two versions at one place.
    seen = Counter(for_chart(t, 12) for t in ticks)
    return [
        for_chart(t, 12) if seen[for_chart(t, 12)] == 1 else f"{for_chart(t, 9)} #{i + 1}"
        for i, t in enumerate(ticks)
    ]


def _median_bars(
    analysis: Analysis, prompt: Any, shown: list[dict[str, Any]]
) -> tuple[list[float], list[float]]:
    """How far below and above each shown version's median its interval reaches (0 where the
    version has fewer than two durations, or too few for that bound: see
    `statistics.quantile_interval`; and where its number is shown more than once: the
    interval is of the number's sessions pooled, as `compare` pools them, not of this row's)."""
    bars = {
        row["prompt_version_number"]: row
        for row in analysis.version_medians.filter(
            pl.col("prompt_id").eq_missing(prompt)
        ).to_dicts()
    }
    numbers = Counter(v["prompt_version_number"] for v in shown)
    low, high = [], []
    for v in shown:
        bar = (
            bars.get(v["prompt_version_number"])
            if numbers[v["prompt_version_number"]] == 1
            else None
        )
        median = v["duration_p50_s"]
        below, above = (
            (bar["duration_p50_low_s"], bar["duration_p50_high_s"]) if bar else (None, None)
        )
        low.append(median - below if below is not None else 0.0)
        high.append(above - median if above is not None else 0.0)
    return low, high


@_chart
def experiment_differences(analysis: Analysis, n: int = TOP) -> Figure:
    """Each experiment variant's median difference from its control, with its interval, and
    its verdict: a forest plot, zero marked. At most `n` rows."""
    rows = analysis.experiments.head(n).to_dicts()
    fig, (ax,) = _figure(9, 1.2 + 0.45 * max(len(rows), 1))
    if not rows:
        _empty(ax, "no experiment with a control variant")
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        diff, low, high = row["p50_diff_s"], row["p50_diff_low_s"], row["p50_diff_high_s"]
        broken = row["verdict"] == "sample ratio mismatch"
        color = GREY if broken or diff is None else ORANGE if row["verdict"] == "longer" else BLUE
        if diff is not None and low is not None and high is not None:
            ax.errorbar([diff], [y], xerr=[[diff - low], [high - diff]], fmt="o", color=color,
                        capsize=3)  # fmt: skip
        label = f"{row['group_id']}: {row['candidate']} vs {row['baseline']}"
        ax.annotate(for_chart(row["verdict"], 30), (1.01, y), xycoords=("axes fraction", "data"),
                    fontsize=8, va="center", color=color)  # fmt: skip
        ax.text(-0.01, y, for_chart(label, 50), transform=ax.get_yaxis_transform(),
                ha="right", va="center", fontsize=8)  # fmt: skip
    ax.axvline(0, color=GREY, linewidth=1)
    ax.set_yticks([])
    ax.set_ylim(-0.7, max(len(rows), 1) - 0.3)
    ax.set_xlabel("median difference from the control, s (95% interval)")
    total = analysis.experiments.height
    ax.set_title("Experiments" + (f" (the first {n} of {total} comparisons)" if total > n else ""))
    fig.subplots_adjust(left=0.35, right=0.82)
    return fig


@_chart
def daily_trend(analysis: Analysis) -> Figure:
    """Sessions per day and their median duration, days in each agent's local time."""
    daily = analysis.daily
    fig, (volume,) = _figure(9, 3.4)
    volume.bar(daily["local_date"].to_list(), daily["session_count"].to_list(), color="#c6d7ee",
               label="sessions")  # fmt: skip
    volume.set_ylabel("sessions per day")
    median = volume.twinx()
    median.plot(daily["local_date"].to_list(), daily["duration_p50_s"].to_list(), color=ORANGE,
                marker=".", label="median duration")  # fmt: skip
    median.set_ylabel("median duration, s")
    median.set_ylim(bottom=0)
    volume.set_title("Daily volume and median duration (agents' local dates)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


@_chart
def rejects_by_reason(analysis: Analysis, n: int = TOP) -> Figure:
    """What ingest rejected, by field and rule: the `n` most frequent."""
    rows = analysis.rejects.head(n).to_dicts()
    fig, (ax,) = _figure(9, 0.4 * max(len(rows), 2) + 1.2)
    if rows:
        ax.barh(
            # A bar per row, by position: two reasons that read the same once cut short
            # stay two bars.
            range(len(rows)),
            [r["reasons"] for r in rows],
            color=ORANGE,
        )
        ax.set_yticks(range(len(rows)), [for_chart(f"{r['field']}: {r['rule']}", 60) for r in rows])
        ax.invert_yaxis()
    else:
        _empty(ax, "nothing was rejected")
    ax.set_xlabel("rejected rows with this reason")
    title = f"Rejected at ingest: {analysis.rejected_rows:,} rows"
    if analysis.rejects.height > len(rows):
        title += f" (the {len(rows)} most frequent of {analysis.rejects.height:,} reasons)"
    ax.set_title(title)
    fig.tight_layout()
    return fig


ALL = {
    "Duration per agent": duration_distribution,
    "Duration per channel": channel_comparison,
    "Duration by prompt version": prompt_versions,
    "Experiments": experiment_differences,
    "Daily volume and median duration": daily_trend,
    "Rejected at ingest": rejects_by_reason,
}


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    with _plain_text():
        fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
