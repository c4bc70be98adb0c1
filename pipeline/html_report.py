"""One self-contained HTML page of an `Analysis`: figures, charts and tables, no network."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from pipeline import charts
from pipeline.analysis import Analysis, Top, top, top_prompts
from pipeline.labels import plain
from pipeline.output import NULL

# The rows a table of the page shows: the agents and channels with most sessions, and the
# latest versions of the prompts with most sessions. Every row is in the CSV beside the page.
TOP = 20
VERSIONS = 10
# A name longer than this is cut in the page (it is whole in the CSV).
CELL_LIMIT = 200

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
td.text { overflow-wrap: anywhere; } tr.others td { color: #555; font-style: italic; }
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
    "median; bars: its 95% interval. A step inside the bars is likely noise; the table "
    "below tests each step.",
    "Experiments": "Each variant against its control: the median's difference with its 95% "
    "interval. Grey: the sessions were not split as planned (sample ratio mismatch), so the "
    "durations cannot be read.",
    "Daily volume and median duration": "Days are local dates in each agent's timezone.",
    "Rejected at ingest": "A row can break several rules; each counts once per rule.",
}


def files(analysis: Analysis, out: Path) -> dict[Path, bytes]:
    """What `sessions report --out OUT` writes: the page, and beside it every table whole as
    CSV (`OUT-agents.csv`, ...), which the page names."""
    tables = {name: out.with_name(f"{out.stem}-{name}.csv") for name in _FULL_TABLES}
    page = render(analysis, {name: path.name for name, path in tables.items()})
    # errors="replace": a warehouse path that is not valid UTF-8 still gives a page.
    written = {out: page.encode("utf-8", errors="replace")}
    for name, path in tables.items():
        buffer = io.BytesIO()
        getattr(analysis, name).write_csv(buffer)
        written[path] = buffer.getvalue()
    return written


_FULL_TABLES = ("agents", "channels", "prompt_versions")


def render(analysis: Analysis, full_tables: dict[str, str] | None = None) -> str:
    """The report as one HTML document with every chart embedded. `full_tables` names the
    files that hold each table whole, by `Analysis` attribute."""
    first, last = analysis.period
    period = f"{_text(first)} to {_text(last)}" if first else "(no sessions)"
    shown = f"<b>{_text(first)}</b> to <b>{_text(last)}</b> (local dates)" if first else period
    head = analysis.headline
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Session durations {period}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Session durations</h1>",
        f'<p class="meta">Period: {shown}. '
        f"Scope: {_text(_scope(analysis))}. "
        f"Warehouse: {_text(analysis.warehouse)}, version {analysis.version}. "
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
    if not head["session_count"]:
        parts.append(f'<p class="meta"><b>{_text(_nothing(analysis))}</b></p>')
    full = full_tables or {}
    tables = {
        "agents": (top(analysis.agents, TOP), _AGENT_COLUMNS, "agents"),
        "channels": (top(analysis.channels, TOP), _CHANNEL_COLUMNS, "channels"),
        "prompt_versions": (
            top_prompts(analysis.prompt_versions, TOP, VERSIONS),
            _PROMPTS,
            "prompts",
        ),
    }
    sections = [
        ("Per agent", "Duration per agent", "agents"),
        ("Per channel", "Duration per channel", "channels"),
        ("Per prompt version", "Duration by prompt version", "prompt_versions"),
        ("Experiments", "Experiments", None),
        ("Day by day", "Daily volume and median duration", None),
        ("Rejected at ingest", "Rejected at ingest", None),
    ]
    for title, chart, name in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(_chart(chart, analysis))
        if name is not None:
            cut, columns, what = tables[name]
            parts.append(_table(cut.shown.select(columns), _others(cut, what, full.get(name))))
            if name in full:
                parts.append(
                    f'<p class="meta">Every row and every measure: <code>{_text(full[name])}'
                    "</code>, beside this file.</p>"
                )
        if title in _VERDICTS:
            parts.append(_verdicts(getattr(analysis, _VERDICTS[title]), title))
        if title == "Experiments" and analysis.comparison_notes:
            parts.append(
                '<p class="meta">Left out: '
                + "; ".join(_text(note) for note in analysis.comparison_notes)
                + ".</p>"
            )
    parts.append(
        '<p class="meta">Measures: durations in seconds; percentiles interpolate linearly '
        "between order statistics; test sessions are left out unless included. "
        "<code>sessions stats --explain</code> defines every measure.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


# The sections that end with the verdicts of `sessions compare`, and the Analysis field.
_VERDICTS = {"Per prompt version": "comparisons", "Experiments": "experiments"}
_VERDICT_COLUMNS = ["group_id", "group_name", "baseline", "candidate", "baseline_count",
                    "candidate_count", "p50_diff_s", "p50_diff_low_s", "p50_diff_high_s",
                    "p_value_adjusted", "srm_p_value", "verdict", "note"]  # fmt: skip


def _verdicts(comparisons: pl.DataFrame, title: str) -> str:
    """The comparisons of a section, as `sessions compare` gives them, with how to read them."""
    if comparisons.is_empty():
        return '<p class="meta">Nothing to compare in this scope.</p>'
    how = (
        "Each prompt version against the previous one: a before/after comparison, not a "
        "randomised one, so anything else that changed in the same days counts too."
        if title == "Per prompt version"
        else "Each variant against its control; srm_p_value under 0.001 means the sessions "
        "were not split as planned, and the read-out is not to be trusted."
    )
    shown = comparisons.head(TOP * VERSIONS)
    others = (
        f"{comparisons.height - shown.height:,} more comparisons: sessions compare"
        if comparisons.height > shown.height
        else None
    )
    return (
        f'<p class="meta">{html.escape(how)} Verdict: <code>shorter</code>/<code>longer</code> '
        "when the p50 interval leaves out 0 and the Holm-adjusted Mann-Whitney p-value is under "
        "0.05; <code>sessions stats --explain</code> has the rule.</p>"
        + _table(shown.select(_VERDICT_COLUMNS), others)
    )


def _nothing(analysis: Analysis) -> str:
    """Why the report has no figures."""
    tests = analysis.headline["test_sessions_excluded"]
    if tests and not analysis.scope.include_tests:
        return (
            f"Every session in this scope is a test session ({tests:,}, left out): "
            "--include-tests counts them."
        )
    if analysis.scope != type(analysis.scope)():
        return "No sessions in this scope: the figures and charts below are empty."
    if analysis.rejected_rows:
        return (
            "The warehouse holds no sessions: every row ingested so far was rejected "
            "(see below why)."
        )
    return "The warehouse holds no sessions yet."


def _others(cut: Top, what: str, where: str | None) -> str | None:
    """The last row of a table cut short: what it leaves out, and where to find it."""
    if cut.complete:
        return None
    if cut.groups_left_out == cut.rows_left_out:
        text = f"… {cut.groups_left_out:,} more {what}"
    elif cut.groups_left_out:
        text = f"… {cut.rows_left_out:,} more rows ({cut.groups_left_out:,} more {what})"
    else:
        text = f"… {cut.rows_left_out:,} more rows (older versions)"
    text += f", with {cut.sessions_left_out:,} sessions"
    return text + (f": every row is in {where}" if where else "")


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


def _text(value: Any, limit: int | None = None) -> str:
    """Any value as HTML text: one line, controls made visible, escaped."""
    return html.escape(plain(value.isoformat() if isinstance(value, date) else value, limit))


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


def _table(frame: pl.DataFrame, others: str | None = None) -> str:
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    head = "".join(
        # Long column names may break at their underscores.
        f'<th class="{"" if num else "text"}">{html.escape(name).replace("_", "_<wbr>")}</th>'
        for name, num in zip(frame.columns, numeric, strict=True)
    )
    rows = []
    for row in frame.iter_rows():
        cells = "".join(
            f'<td class="{"" if num else "text"}">{_text(_cell(name, value), CELL_LIMIT)}</td>'
            for name, value, num in zip(frame.columns, row, numeric, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    if others is not None:
        rows.append(
            f'<tr class="others"><td class="text" colspan="{frame.width}">{_text(others)}</td></tr>'
        )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def _cell(name: str, value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, float):
        if name.endswith("_share"):
            return f"{value:.1%}"
        if "p_value" in name:
            return f"{value:.2g}"
        sign = "+" if name.endswith("_change_s") and value > 0 else ""
        return f"{sign}{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
