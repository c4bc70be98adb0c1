"""One self-contained HTML page of an `Analysis`: figures, charts and tables, no network."""

from __future__ import annotations

import base64
import html
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from pipeline import charts
from pipeline.analysis import Analysis
from pipeline.output import NULL

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta { color: #555; }
.headline { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr));
            gap: 0.8em; margin: 1.2em 0; }
.headline div { background: #f3f6fa; border-radius: 6px; padding: 0.6em 0.8em; }
.headline b { display: block; font-size: 1.5em; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; margin: 0.6em 0 1.2em; }
th, td { padding: 0.3em 0.5em; border-bottom: 1px solid #e3e3e3; text-align: right; }
th { background: #f3f6fa; vertical-align: bottom; } td.text, th.text { text-align: left; }
.wide { overflow-x: auto; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { color: #555; font-size: 12px; }
@media print { body { margin: 0; max-width: none; font-size: 11px; } h2 { break-after: avoid; }
               table { font-size: 9.5px; } .wide { overflow: visible; }
               figure, tr { break-inside: avoid; } }
"""

_AGENT_COLUMNS = ["agent_id", "agent_name", "session_count", "duration_count", "duration_mean_s",
                  "duration_p50_s", "duration_p90_s", "duration_p95_s", "duration_max_s",
                  "user_terminated_share", "test_sessions_excluded"]  # fmt: skip
_CHANNEL_COLUMNS = ["channel_manager_service", "channel_manager_type", "session_count",
                    "duration_count", "duration_mean_s", "duration_p50_s", "duration_p90_s",
                    "duration_p95_s", "outbound_share"]  # fmt: skip
_PROMPTS = ["prompt_id", "prompt_name", "prompt_version_number", "duration_count",
            "duration_p50_s", "duration_p90_s", "previous_duration_count",
            "duration_p50_change_s", "duration_p90_change_s"]  # fmt: skip

_CAPTIONS = {
    "Duration per agent": "Box: middle half of the sessions; whiskers: 5th to 95th "
    "percentile; orange: median. Log scale, as durations are skewed.",
    "Duration per channel": "Chat and SMS durations are not talk time: compare them with "
    "each other, not with voice.",
    "Duration by prompt version": "n is the number of sessions with a duration behind each "
    "median: a change between small samples is often noise.",
    "Daily volume and median duration": "Days are local dates in each agent's timezone.",
    "Rejected at ingest": "A row can break several rules; each counts once per rule.",
}


def render(analysis: Analysis) -> str:
    """The report as one HTML document with every chart embedded."""
    first, last = analysis.period
    head = analysis.headline
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Session durations {_text(first)} to {_text(last)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Session durations</h1>",
        f'<p class="meta">Period: <b>{_text(first)}</b> to <b>{_text(last)}</b> (local dates). '
        f"Scope: {html.escape(_scope(analysis))}. "
        f"Warehouse: {html.escape(str(analysis.warehouse))}. "
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>",
        '<div class="headline">',
        _figure_box("sessions", head["session_count"]),
        _figure_box("agents", head["agent_count"]),
        _figure_box("median duration", head["duration_p50_s"], "s"),
        _figure_box("p90 duration", head["duration_p90_s"], "s"),
        _figure_box("hours in sessions", head["duration_total_h"]),
        _figure_box("test sessions left out", head["test_sessions_excluded"]),
        _figure_box("rows rejected at ingest", analysis.rejected_rows),
        "</div>",
    ]
    sections = [
        ("Per agent", "Duration per agent", analysis.agents, _AGENT_COLUMNS),
        ("Per channel", "Duration per channel", analysis.channels, _CHANNEL_COLUMNS),
        ("Per prompt version", "Duration by prompt version", analysis.prompt_versions, _PROMPTS),
        ("Day by day", "Daily volume and median duration", analysis.daily, None),
        ("Rejected at ingest", "Rejected at ingest", analysis.rejects, None),
    ]
    for title, chart, table, columns in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(_chart(chart, analysis))
        if columns is not None:
            parts.append(_table(table.select(columns)))
    parts.append(
        '<p class="meta">Measures: durations in seconds; percentiles interpolate linearly '
        "between order statistics; test sessions are left out unless included. "
        "<code>sessions stats --explain</code> defines every measure.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


def _scope(analysis: Analysis) -> str:
    scope = analysis.scope
    given = [
        f"since {scope.since}" if scope.since else "",
        f"until {scope.until}" if scope.until else "",
        f"agent {scope.agent}" if scope.agent else "",
        f"channel {scope.channel}" if scope.channel else "",
        "test sessions included" if scope.include_tests else "test sessions left out",
    ]
    return ", ".join(g for g in given if g) or "all sessions"


def _text(value: Any) -> str:
    return html.escape(value.isoformat() if isinstance(value, date) else str(value))


def _figure_box(label: str, value: Any, unit: str = "") -> str:
    shown = (
        NULL
        if value is None
        else f"{value:,.1f}{unit}"
        if isinstance(value, float)
        else f"{value:,}"
    )
    return f"<div><b>{html.escape(shown)}</b>{html.escape(label)}</div>"


def _chart(title: str, analysis: Analysis) -> str:
    image = base64.b64encode(charts.png(charts.ALL[title](analysis))).decode()
    caption = html.escape(_CAPTIONS[title])
    return (
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{image}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _table(frame: pl.DataFrame) -> str:
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    head = "".join(
        # Long column names may break at their underscores.
        f'<th class="{"" if num else "text"}">{html.escape(name).replace("_", "_<wbr>")}</th>'
        for name, num in zip(frame.columns, numeric, strict=True)
    )
    rows = []
    for row in frame.iter_rows():
        cells = "".join(
            f'<td class="{"" if num else "text"}">{html.escape(_cell(name, value))}</td>'
            for name, value, num in zip(frame.columns, row, numeric, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def _cell(name: str, value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, float):
        if name.endswith("_share"):
            return f"{value:.1%}"
        sign = "+" if name.endswith("_change_s") and value > 0 else ""
        return f"{sign}{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
