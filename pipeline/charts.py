"""The charts of the notebook and the report, as matplotlib figures of an `Analysis`."""

from __future__ import annotations

import io
from typing import Any

import polars as pl
from matplotlib.figure import Figure

from pipeline.analysis import Analysis

BLUE, ORANGE, GREY = "#3465a4", "#f57900", "#888a85"


def _figure(
    width: float, height: float, rows: int = 1, columns: int = 1
) -> tuple[Figure, list[Any]]:
    """A figure and its axes, row by row. No pyplot: no global state and no GUI backend,
    so the same code serves a script, the report and a notebook."""
    fig = Figure(figsize=(width, height))
    grid = fig.subplots(rows, columns, squeeze=False)
    return fig, [ax for row in grid for ax in row]


def _label(agent_id: str | None, name: str | None) -> str:
    return name or agent_id or "(no agent)"


def duration_distribution(analysis: Analysis) -> Figure:
    """Box plots of session duration per agent, on a log scale (durations are skewed)."""
    rows = analysis.distribution.to_dicts()
    fig, (ax,) = _figure(9, 0.45 * max(len(rows), 3) + 1.2)
    stats = [
        {
            "label": f"{_label(r['agent_id'], r['agent_name'])} (n={r['duration_count']:,})",
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
    ax.set_xscale("log")
    ax.set_xlabel("session duration, seconds (log scale); box 25-75%, whiskers 5-95%")
    ax.set_title("Duration per agent")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def channel_comparison(analysis: Analysis) -> Figure:
    """Median and p90 duration per channel, with the sessions behind each."""
    rows = analysis.channels.to_dicts()
    labels = [
        f"{r['channel_manager_type'] or '(none)'}\n{r['channel_manager_service'] or ''} "
        f"(n={r['session_count']:,})"
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
    ax.set_title("Duration per channel")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def prompt_versions(analysis: Analysis) -> Figure:
    """Median and p90 duration of each prompt's versions, in order, with their sessions."""
    data = analysis.prompt_versions.filter(pl.col("duration_count") > 0)
    prompts = data["prompt_id"].unique(maintain_order=True).to_list()
    columns = min(len(prompts), 4) or 1
    rows = -(-len(prompts) // columns) or 1
    fig, axes = _figure(3.2 * columns, 2.6 * rows, rows, columns)
    for ax, prompt in zip(axes, prompts, strict=False):
        versions = data.filter(pl.col("prompt_id").eq_missing(prompt)).to_dicts()
        x = [str(v["prompt_version_number"]) for v in versions]
        ax.plot(x, [v["duration_p50_s"] for v in versions], "o-", color=BLUE, label="median")
        ax.plot(x, [v["duration_p90_s"] for v in versions], "s--", color=GREY, label="p90")
        for i, v in enumerate(versions):
            ax.annotate(f"n={v['duration_count']:,}", (i, v["duration_p50_s"]), fontsize=7,
                        textcoords="offset points", xytext=(0, -12), ha="center")  # fmt: skip
        ax.set_title(versions[-1]["prompt_name"] or str(prompt), fontsize=9)
        ax.set_xlabel("version", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.tick_params(labelsize=8)
    for ax in axes[len(prompts) :]:
        ax.axis("off")
    axes[0].set_ylabel("seconds")
    axes[0].legend(fontsize=7)
    fig.suptitle("Duration by prompt version")
    fig.tight_layout()
    return fig


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


def rejects_by_reason(analysis: Analysis) -> Figure:
    """What ingest rejected, by field and rule."""
    rows = analysis.rejects.to_dicts()
    fig, (ax,) = _figure(9, 0.4 * max(len(rows), 2) + 1.2)
    if rows:
        ax.barh(
            [f"{r['field']}: {r['rule']}" for r in rows], [r["reasons"] for r in rows], color=ORANGE
        )
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "nothing was rejected", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("rejected rows with this reason")
    ax.set_title(f"Rejected at ingest: {analysis.rejected_rows:,} rows")
    fig.tight_layout()
    return fig


ALL = {
    "Duration per agent": duration_distribution,
    "Duration per channel": channel_comparison,
    "Duration by prompt version": prompt_versions,
    "Daily volume and median duration": daily_trend,
    "Rejected at ingest": rejects_by_reason,
}


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
