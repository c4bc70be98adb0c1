"""The HTML report: one self-contained file with every chart and table, readable offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import run_cli

SAMPLE = Path(__file__).parents[2] / "data" / "samples"


class Parts(HTMLParser):
    """Collects what the page holds: images, tables, headings, and anything it links to."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables = 0
        self.headings: list[str] = []
        self.links: list[str] = []
        self._heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("alt") or "")
            assert (values.get("src") or "").startswith("data:image/png;base64,")
        if tag == "table":
            self.tables += 1
        if tag == "h2":
            self._heading = True
        for name in ("src", "href", "action", "data", "poster"):
            value = values.get(name) or ""
            if value and not value.startswith("data:"):
                self.links.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._heading = self._heading and tag != "h2"

    def handle_data(self, data: str) -> None:
        if self._heading:
            self.headings.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    assert run_cli("ingest", SAMPLE, "-w", tmp / "wh", "-q").returncode == 0
    result = run_cli("report", "-w", tmp / "wh", "--out", tmp / "report.html")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == f"wrote {tmp / 'report.html'}"
    return tmp / "report.html"


def test_every_chart_and_table_is_there(report: Path) -> None:
    parts = Parts()
    parts.feed(report.read_text())
    assert parts.images == [
        "Duration per agent",
        "Duration per channel",
        "Duration by prompt version",
        "Experiments",
        "Daily volume and median duration",
        "Rejected at ingest",
    ]
    # Agents, channels, prompt versions, and the verdicts of the versions and experiments.
    assert parts.tables == 5
    assert parts.headings == [
        "Per agent",
        "Per channel",
        "Per prompt version",
        "Experiments",
        "Day by day",
        "Rejected at ingest",
    ]


def test_the_verdicts_of_sessions_compare_are_shown(report: Path) -> None:
    """The page's comparisons are those `sessions compare` gives for the same warehouse."""
    text = report.read_text()
    wh = report.parent / "wh"
    for by, section in (("prompt-version", "Per prompt version"), ("experiment", "Experiments")):
        rows = run_cli("compare", "-w", wh, "--by", by, "--format", "json")
        assert rows.returncode == 0, rows.stderr
        part = text.split(f"<h2>{section}</h2>", 1)[1].split("<h2>", 1)[0]
        for row in json.loads(rows.stdout):
            assert f'<td class="text">{row["verdict"]}</td>' in part
            assert f"{row['p50_diff_s']:,.1f}" in part
    assert "sample ratio mismatch" in text and "before/after comparison" in text


def test_nothing_is_fetched_from_anywhere(report: Path) -> None:
    text = report.read_text()
    parts = Parts()
    parts.feed(text)
    assert parts.links == []
    assert not re.search(r"url\(|@import|<script|<link|<iframe", text, re.I)


def test_it_says_the_period_figures_and_scope(report: Path) -> None:
    text = report.read_text()
    assert "Period: <b>2026-09-19</b> to <b>2026-11-01</b>" in text
    assert "<b>2,917</b>sessions" in text and "test sessions left out" in text
    for agent in ("Billing Assistant", "Web Concierge", "voice_sip_v1", "Claims Intake prompt"):
        assert agent in text


def test_filters_are_applied_and_shown(report: Path) -> None:
    out = report.parent / "filtered.html"
    result = run_cli("report", "-w", report.parent / "wh", "--out", out, "--agent", "agent-101",
                     "--since", "2026-10-01")  # fmt: skip
    assert result.returncode == 0
    text = out.read_text()
    assert "Scope: since 2026-10-01, agent agent-101, test sessions left out" in text
    assert "Billing Assistant" in text and "Web Concierge" not in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless browser on this machine")
def test_it_renders_in_a_headless_browser(report: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3000",
         f"--screenshot={screenshot}", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000  # a page with charts, not a blank one
    pdf = tmp_path / "report.pdf"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile2'}",
         f"--print-to-pdf={pdf}", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 50_000
