"""`sessions report` over anything ingest stored: odd names, thousands of prompts, nothing at
all; and an output that cannot be written leaves the files there as they were."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import resource
import signal
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from matplotlib import cbook
from matplotlib.figure import Figure

from pipeline import charts
from pipeline.analysis import analyse
from pipeline.labels import BLANK, for_chart, plain
from tests.conftest import SESSIONS, measured, ndjson, peak_kib, run_cli, session, tree
from tests.trust.test_readers_and_faults import without_root_overrides

Write = Callable[[str, bytes], Path]

# Names as exports hold them: mathtext and TeX, markup, controls, scripts, sizes.
ODD_NAMES = [
    "$$",
    "$x_{$",
    "$\\alpha$ and $\\beta$",
    "costs $5 or $6",
    "\\frac{1}{2}",
    "\\$ escaped \\$",
    "unbalanced {",
    "under_score^caret%percent#hash&amp",
    "<script>alert('x')</script> & <b>",
    "line\nbreak\r\nand\ttab",
    "nul\x00char\x1b[31mescape\x7f",
    "שלום עולם مرحبا",
    "\u202eover\u200bride",
    "emoji 😀🎉 👩‍👩‍👧",
    "",
    "   \t ",
    "x" * 5_000,
]


def _odd_sessions() -> list[dict[str, Any]]:
    """Each odd name as an agent, a prompt and a channel, twice (two prompt versions)."""
    records = []
    for n, name in enumerate(ODD_NAMES * 2):
        records.append(
            session(
                n,
                agent_id=f"agent-{n % len(ODD_NAMES)}",
                agent_name=name,
                prompt_id=f"prompt-{n % len(ODD_NAMES)}",
                prompt_name=name,
                prompt_version_number=1 + n // len(ODD_NAMES),
                channel_manager_type=name,
                channel_manager_service=name,
            )
        )
    return records


def _warehouse(tmp: Path, records: list[dict[str, Any] | str]) -> Path:
    (tmp / "export.ndjson").write_bytes(ndjson(records))
    assert run_cli("ingest", tmp / "export.ndjson", "-w", tmp / "wh", "-q").returncode == 0
    return tmp / "wh"


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse of odd names, and a rejected row that holds some."""
    rejected = json.dumps({"session_id": "r1", "agent_name": "$$", "duration": "$x_{$"})
    return _warehouse(tmp_path_factory.mktemp("odd"), [*_odd_sessions(), rejected])


@pytest.mark.parametrize("name", ODD_NAMES)
def test_a_chart_label_is_plain_text(name: str) -> None:
    """What matplotlib draws for a name is the name as one line: never math, never TeX."""
    label = for_chart(name, limit=10_000)
    assert not cbook.is_math_text(label)
    shown = label.replace("\\$", "$")  # what matplotlib draws of text that is not math
    assert shown == plain(name) and "\n" not in shown and "\x00" not in shown
    assert plain(name).strip() == plain(name) != ""
    with matplotlib.rc_context({"text.usetex": True}):  # a notebook's setting is overruled
        fig = charts._chart(_titled)(label)
    assert charts.png(fig).startswith(b"\x89PNG")


def _titled(label: str) -> Figure:
    fig = Figure()
    fig.subplots().set_title(label)
    return fig


def test_blank_and_long_names() -> None:
    assert plain("") == plain(" \n\t") == BLANK
    assert plain("x" * 50, limit=10) == "x" * 9 + "…"
    assert plain("a\x00b") == "a\ufffdb" and plain("a\r\nb") == "a b"
    # An override or isolate would turn around what follows the name (its "(n=3)").
    for control in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        assert plain(f"{control}Support") == "\ufffdSupport"
    assert plain("\u200fmark") == "\u200fmark"  # a mark reorders nothing: kept


def test_odd_names_give_a_whole_report(odd: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run_cli("report", "-w", odd, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning about a missing glyph
    page = out.read_text()
    assert page.count("data:image/png;base64,") == len(charts.ALL)
    assert "<script" not in page
    for name in ODD_NAMES:
        # A blank name is stored as a missing one (the ingest trims values).
        assert html.escape(plain(name, 200) if name.strip() else "(null)") in page
    assert "\x00" not in page and "\x1b" not in page
    # The CSV holds the names as stored, whole.
    with (tmp_path / "report-agents.csv").open(newline="") as file:
        names = {row["agent_name"] for row in csv.DictReader(file)}
    assert {"$$", "$x_{$", "x" * 5_000, "line\nbreak\r\nand\ttab"} <= names


def test_the_charts_take_odd_names_in_a_notebook(odd: Path) -> None:
    """The notebook draws the charts itself, after they are built, with its own settings."""
    analysis = analyse(odd)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        for build in charts.ALL.values():
            buffer = io.BytesIO()
            build(analysis).savefig(buffer, format="png")  # as the inline backend does
            assert buffer.getvalue().startswith(b"\x89PNG")


def _many(prompts: int) -> list[dict[str, Any]]:
    """Two versions of each of `prompts` prompts, over prompts/2 agents and prompts/5 channels."""
    return [
        session(
            n,
            session_id=f"m{n}",
            agent_id=f"agent-{n % (prompts // 2)}",
            agent_name=f"Agent {n % (prompts // 2)}",
            prompt_id=f"prompt-{n // 2:05d}",
            prompt_name=f"Prompt {n // 2}",
            prompt_version_number=1 + n % 2,
            channel_manager_type=f"type-{n % (prompts // 5)}",
        )
        for n in range(2 * prompts)
    ]


def _peak_rss(args: list[str], out: Path) -> tuple[int, int, str]:
    """Run the CLI; its exit code, its peak resident memory in bytes, and its stderr."""
    peak = out / "peak"
    with (out / "stderr").open("w") as err:
        process = subprocess.run(
            measured([SESSIONS, *args], peak), stdout=subprocess.DEVNULL, stderr=err, check=False
        )
    return process.returncode, peak_kib(peak) * 1024, (out / "stderr").read_text()


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _warehouse(tmp_path_factory.mktemp("many"), [*_many(2_500)])


def test_thousands_of_prompts_give_a_small_report(many: Path, tmp_path: Path) -> None:
    prompts = 2_500
    out = tmp_path / "out" / "week.html"
    code, peak, stderr = _peak_rss(["report", "-w", str(many), "--out", str(out)], tmp_path)
    assert code == 0, stderr
    assert peak < 700 * 2**20
    assert out.stat().st_size < 2_000_000
    page = out.read_text()
    assert "… 4,960 more rows (2,480 more prompts), with 4,960 sessions" in page
    assert "… 1,230 more agents, with" in page and "… 480 more channels, with" in page
    assert "every row is in week-prompt_versions.csv" in page
    with (out.parent / "week-prompt_versions.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * prompts
    assert {row["prompt_id"] for row in rows} == {f"prompt-{p:05d}" for p in range(prompts)}
    for name, count in (("agents", prompts // 2), ("channels", prompts // 5)):
        with (out.parent / f"week-{name}.csv").open(newline="") as file:
            assert len(list(csv.DictReader(file))) == count


def test_the_charts_show_the_top_and_say_so(many: Path) -> None:
    analysis = analyse(many)
    fig = charts.prompt_versions(analysis)
    assert len([ax for ax in fig.axes if ax.axison]) == charts.TOP_PROMPTS
    assert "(the 12 of 2,500 prompts with most sessions)" in fig.get_suptitle()
    fig = charts.channel_comparison(analysis)
    assert len(fig.axes[0].get_yticklabels()) == charts.TOP
    assert "(the 20 of 500 channels with most sessions)" in fig.axes[0].get_title()
    fig = charts.duration_distribution(analysis)
    assert "(the 20 of 1,250 agents with most sessions)" in fig.axes[0].get_title()


def test_no_sessions_is_a_report_that_says_so(write: Write, tmp_path: Path) -> None:
    cases = {
        "empty": (b"", "The warehouse holds no sessions yet."),
        "rejected": (ndjson(['{"duration": "long"}', "x"]), "every row ingested so far was"),
    }
    for name, (content, says) in cases.items():
        wh, out = tmp_path / name, tmp_path / f"{name}.html"
        assert run_cli("ingest", write(f"{name}.ndjson", content), "-w", wh).returncode == 0
        result = run_cli("report", "-w", wh, "--out", out)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        page = out.read_text()
        assert says in page and "Period: (no sessions)" in page
        assert page.count("data:image/png;base64,") == len(charts.ALL)
    out = tmp_path / "future.html"
    result = run_cli("report", "-w", tmp_path / "rejected", "--out", out, "--since", "2099-01-01",
                     "--agent", "<i>$x_{$")  # fmt: skip
    page = out.read_text()
    assert result.returncode == 0 and "No sessions in this scope" in page
    assert "agent &lt;i&gt;$x_{$" in page


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _warehouse(tmp_path_factory.mktemp("small"), [session(n) for n in range(30)])


def test_out_in_a_missing_folder_is_created(warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "2026" / "week.html"
    result = run_cli("report", "-w", warehouse, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"wrote {out}",
        *(
            f"wrote {out.parent / f'week-{n}.csv'}"
            for n in ["agents", "channels", "prompt_versions"]
        ),
    ]
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "week-agents.csv",
        "week-channels.csv",
        "week-prompt_versions.csv",
        "week.html",
    ]


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, *says: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    for text in says:
        assert text in result.stderr


def test_out_where_nothing_can_be_written(warehouse: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("report", "-w", warehouse, "--out", blocker / "week.html")
    _one_line_error(result, 3, str(blocker))
    folder = tmp_path / "reports"
    folder.mkdir()
    result = run_cli("report", "-w", warehouse, "--out", folder)
    assert result.returncode == 2 and "is a directory" in result.stderr
    assert list(folder.iterdir()) == []


def test_out_that_names_no_regular_file(warehouse: Path, tmp_path: Path) -> None:
    """`--out ""`, a path ending in a slash, and a FIFO (as `/dev/null` is a device): one line,
    exit 3, and nothing replaced or written beside them."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    before = tree(tmp_path)
    for out, says in [
        ("", "names no file"),
        (f"{tmp_path}/week.html/", "names no file"),
        (str(fifo), "not a regular file"),
    ]:
        result = run_cli("report", "-w", warehouse, "--out", out)
        _one_line_error(result, 3, says)
    # `-` is not stdout here (a report is several files), nor a file named `-`.
    _one_line_error(run_cli("report", "-w", warehouse, "--out", "-", cwd=tmp_path), 3, "--out -")
    assert fifo.is_fifo() and tree(tmp_path) == before


def test_a_read_only_folder_leaves_the_old_report(warehouse: Path, tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "week.html").write_text("last week's report")
    (folder / "week.html").chmod(0o444)
    before = tree(folder)
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            [str(SESSIONS), "report", "-w", str(warehouse), "--out", str(folder / "week.html")],
            capture_output=True, text=True, preexec_fn=without_root_overrides, check=False,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
    _one_line_error(result, 3, "Permission denied", str(folder))
    assert tree(folder) == before


def test_a_full_disk_leaves_the_old_report(warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "week.html"
    out.write_text("last week's report")
    before = tree(tmp_path)

    def small_disk() -> None:
        # Writes past 100 kB fail as they do on a full disk (EFBIG instead of ENOSPC); the
        # report is larger, its tables smaller.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    result = subprocess.run(
        [str(SESSIONS), "report", "-w", str(warehouse), "--out", str(out)],
        capture_output=True, text=True, preexec_fn=small_disk, check=False,
    )  # fmt: skip
    _one_line_error(result, 3, "File too large", str(out), "unchanged")
    assert tree(tmp_path) == before


def test_versions_exported_under_two_texts_and_without_numbers(
    tmp_path: Path, write: Write
) -> None:
    """Version 1 exported under two `prompt_version` texts, and two drafts without a number:
    the report is written (the chart drew the pooled version's interval around each text's
    median, below zero: exit 70), and each version has a place of its own on the axis."""
    records = [
        {**session(i, duration=base + i % 10), "prompt_id": "p1", "prompt_name": "P",
         "prompt_version_number": number, "prompt_version": text}
        for i, (number, text, base) in enumerate(
            [(1, "v1-a", 100)] * 10 + [(1, "v1-b", 200)] * 10 + [(2, "v2", 50)] * 10
            + [(None, "draft-a", 10), (None, "draft-b", 100)]
        )
    ]  # fmt: skip
    wh = _warehouse(tmp_path, records)
    result = run_cli("report", "-w", wh, "--out", tmp_path / "r.html")
    assert result.returncode == 0, result.stderr
    figure = charts.prompt_versions(analyse(wh))
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert len(ticks) == len(set(ticks)) == 5, ticks
    assert {"1 v1-a", "1 v1-b", "2"} <= set(ticks)


def test_the_headline_counts_agents_as_the_tables_do(tmp_path: Path, write: Write) -> None:
    """Sessions without an agent id are an agent row of their own in the tables and in
    `sessions stats`: the headline counts them too. A scope of test sessions only says so."""
    wh = _warehouse(tmp_path, [session(1), {**session(2), "agent_id": None}])
    out = tmp_path / "r.html"
    assert run_cli("report", "-w", wh, "--out", out).returncode == 0
    stats = run_cli("stats", "-w", wh, "--format", "csv").stdout.splitlines()
    assert len(stats) - 1 == 2
    assert "<b>2</b>agents" in out.read_text().replace("\n", "")

    tests = tmp_path / "tests"
    tests.mkdir()
    wh = _warehouse(tests, [{**session(n), "is_test": True} for n in range(2)])
    assert run_cli("report", "-w", wh, "--out", out).returncode == 0
    page = out.read_text()
    assert "Every session in this scope is a test session (2, left out)" in page
    assert "holds no sessions yet" not in page


def test_zero_durations_are_counted_and_said_to_be_left_off_the_log_scale(
    tmp_path: Path, write: Write
) -> None:
    """The box plot's log scale draws no zero: its n is still the table's, it says how many
    are at 0 s, and an agent with only zeros is said to be left off (it was left out, and
    each n counted the durations above zero only)."""
    records = [
        {**session(1), "agent_id": "zero", "agent_name": "zero", "duration": 0},
        {**session(2), "agent_id": "zero", "agent_name": "zero", "duration": 0},
        {**session(3), "agent_id": "mixed", "agent_name": "mixed", "duration": 0},
        {**session(4), "agent_id": "mixed", "agent_name": "mixed", "duration": 120},
        {**session(5), "agent_id": "mixed", "agent_name": "mixed", "duration": 60},
    ]
    analysis = analyse(_warehouse(tmp_path, records))
    ax = charts.duration_distribution(analysis).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mixed (n=3, 1 at 0 s)"]
    assert ax.get_xlabel().endswith("; 3 durations of 0 s not drawn")
