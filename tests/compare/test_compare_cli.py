"""`sessions compare` through the CLI on a real warehouse, checked against an independent
computation from the export itself (polars + scipy), and on data with known effects."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from pipeline.compare import COLUMNS
from pipeline.generate import as_text, sessions
from tests.compare.test_statistics import _holm_by_definition
from tests.conftest import ndjson, run_cli, session


def _extra(frame: pl.DataFrame) -> pl.DataFrame:
    """Sessions of two more cases, on an agent of their own: an experiment whose variants got
    70% / 30% of the sessions (a broken assignment), and a prompt with 10 sessions a version."""
    rng = np.random.default_rng(99)
    start = datetime(2026, 10, 5, tzinfo=UTC)
    template = frame.row(0, named=True)
    rows: list[dict[str, Any]] = []
    for i in range(1000):
        treated = i % 10 < 3
        rows.append(
            {
                **template,
                "session_id": f"ses_srm_{i}",
                "timestamp": start + timedelta(minutes=i),
                "agent_id": "agent-900",
                "prompt_id": "prompt-900",
                "prompt_version_number": 1,
                "experiment_id": "exp-broken-split",
                "experiment_variant_id": "v-b" if treated else "v-a",
                "experiment_variant": "new" if treated else "old",
                "experiment_variant_is_control": not treated,
                "duration": float(rng.lognormal(5, 0.5)),
                "is_test": False,
            }
        )
    for i in range(20):
        rows.append(
            {
                **template,
                "session_id": f"ses_small_{i}",
                "timestamp": start + timedelta(days=i),
                "agent_id": "agent-901",
                "prompt_id": "prompt-small",
                "prompt_version_number": 1 + i // 10,
                "experiment_id": None,
                "experiment_variant_id": None,
                "experiment_variant": None,
                "experiment_variant_is_control": None,
                "duration": float(10 + i),
                "is_test": False,
            }
        )
    return pl.DataFrame(rows, schema=frame.schema)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    tmp = tmp_path_factory.mktemp("compare")
    frame = sessions(6000, seed=11)
    frame = pl.concat([frame, _extra(frame)])
    export = tmp / "sessions.ndjson"
    as_text(frame).write_ndjson(export)
    wh = tmp / "wh"
    done = run_cli("ingest", export, "--warehouse", wh, "-q")
    assert done.returncode == 0, done.stderr
    return wh, frame


def _compare(wh: Path, *args: str) -> list[dict[str, str]]:
    done = run_cli("compare", "--warehouse", wh, "--format", "csv", *args)
    assert done.returncode == 0, done.stderr
    return list(csv.DictReader(io.StringIO(done.stdout)))


def _kept(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(~pl.col("is_test").fill_null(False), pl.col("duration").is_not_null())


def _durations(frame: pl.DataFrame, **where: Any) -> np.ndarray:
    selected = frame.filter(*[pl.col(k) == v for k, v in where.items()])
    return selected["duration"].to_numpy()


def test_prompt_versions_match_an_independent_computation(
    warehouse: tuple[Path, pl.DataFrame],
) -> None:
    wh, frame = warehouse
    rows = _compare(wh, "--by", "prompt-version")
    kept = _kept(frame)
    expected_pairs = []
    for prompt_id in sorted(kept["prompt_id"].unique().to_list()):
        of_prompt = kept.filter(pl.col("prompt_id") == prompt_id)
        versions = sorted(of_prompt["prompt_version_number"].unique())
        expected_pairs += [(prompt_id, str(b), str(c)) for b, c in itertools.pairwise(versions)]
    assert [(r["group_id"], r["baseline"], r["candidate"]) for r in rows] == expected_pairs
    p_values = []
    for row in rows:
        b = _durations(kept, prompt_id=row["group_id"], prompt_version_number=int(row["baseline"]))
        c = _durations(kept, prompt_id=row["group_id"], prompt_version_number=int(row["candidate"]))
        assert (int(row["baseline_count"]), int(row["candidate_count"])) == (len(b), len(c))
        assert float(row["baseline_p50_s"]) == pytest.approx(np.median(b), rel=1e-12)
        assert float(row["candidate_p50_s"]) == pytest.approx(np.median(c), rel=1e-12)
        assert float(row["p50_diff_s"]) == pytest.approx(np.median(c) - np.median(b), rel=1e-9)
        assert float(row["p90_diff_s"]) == pytest.approx(
            np.quantile(c, 0.9) - np.quantile(b, 0.9), rel=1e-9
        )
        assert float(row["mean_diff_s"]) == pytest.approx(c.mean() - b.mean(), rel=1e-9)
        p = stats.mannwhitneyu(c, b, alternative="two-sided").pvalue
        assert float(row["p_value"]) == pytest.approx(p, rel=1e-9)
        p_values.append(p)
        assert (
            float(row["p50_diff_low_s"])
            <= float(row["p50_diff_s"])
            <= float(row["p50_diff_high_s"])
        )
        assert row["srm_p_value"] == ""
        assert "before/after" in row["note"]
    adjusted = [float(r["p_value_adjusted"]) for r in rows]
    assert adjusted == pytest.approx(_holm_by_definition(p_values), rel=1e-9)
    small = [r for r in rows if r["group_id"] == "prompt-small"]
    assert [r["verdict"] for r in small] == ["too few sessions"]
    # After Hours' (agent-105) prompt versions change nothing in the generated data.
    assert {r["verdict"] for r in rows if r["group_id"] == "prompt-105"} == {"no clear change"}


def test_experiments_with_and_without_an_effect_and_a_broken_split(
    warehouse: tuple[Path, pl.DataFrame],
) -> None:
    wh, frame = warehouse
    rows = {r["group_id"]: r for r in _compare(wh, "--by", "experiment")}
    assert set(rows) == {"exp-concise-answers", "exp-shorter-greeting", "exp-broken-split"}
    concise = rows["exp-concise-answers"]
    assert (concise["baseline"], concise["candidate"]) == ("detailed", "concise")
    assert concise["verdict"] == "shorter"
    # The true effect is a quarter off the median (how often an interval holds the true
    # difference is test_statistics' simulation; one sample only shows the size).
    assert -0.4 < float(concise["p50_change_share"]) < -0.1
    assert rows["exp-shorter-greeting"]["verdict"] == "no clear change"
    broken = rows["exp-broken-split"]
    assert broken["verdict"] == "sample ratio mismatch"
    assert float(broken["srm_p_value"]) == pytest.approx(stats.chisquare([700, 300]).pvalue)
    assert "do not read" in broken["note"]
    # With the split as planned, the same experiment reads normally.
    planned = _compare(wh, "--by", "experiment", "--expected-split", "70,30")
    by_id = {r["group_id"]: r for r in planned}
    assert by_id["exp-broken-split"]["verdict"] == "no clear change"
    # Counts for the check are sessions, test sessions left out, null durations in.
    kept = frame.filter(
        ~pl.col("is_test").fill_null(False), pl.col("experiment_id") == "exp-concise-answers"
    )
    counts = [
        kept.filter(pl.col("experiment_variant") == v).height for v in ("detailed", "concise")
    ]
    assert float(concise["srm_p_value"]) == pytest.approx(stats.chisquare(counts).pvalue)


def test_window_days_cut_both_sides_around_the_switch(
    warehouse: tuple[Path, pl.DataFrame],
) -> None:
    wh, frame = warehouse
    rows = _compare(wh, "--by", "prompt-version", "--window-days", "5", "--agent", "agent-103")
    kept = _kept(frame.filter(pl.col("agent_id") == "agent-103"))
    every = frame.filter(~pl.col("is_test").fill_null(False), pl.col("agent_id") == "agent-103")
    assert rows
    for row in rows:
        base, cand = int(row["baseline"]), int(row["candidate"])
        switch = every.filter(pl.col("prompt_version_number") == cand)["timestamp"].min()
        assert isinstance(switch, datetime)
        window = timedelta(days=5)
        b = kept.filter(
            pl.col("prompt_version_number") == base,
            pl.col("timestamp") >= switch - window,
            pl.col("timestamp") < switch,
        )
        c = kept.filter(
            pl.col("prompt_version_number") == cand,
            pl.col("timestamp") >= switch,
            pl.col("timestamp") < switch + window,
        )
        assert (int(row["baseline_count"]), int(row["candidate_count"])) == (b.height, c.height)
        assert float(row["baseline_p50_s"]) == pytest.approx(b["duration"].median(), rel=1e-12)
        assert "5 days before and after" in row["note"]


def test_json_has_the_fixed_columns_and_the_bootstrap_is_seeded(
    warehouse: tuple[Path, pl.DataFrame],
) -> None:
    wh, _ = warehouse
    # One experiment (its 800 sessions): the bootstrap's 9,999 resamples are the slow part.
    args = ("compare", "--warehouse", wh, "--by", "experiment", "--format", "json",
            "--agent", "agent-102")  # fmt: skip
    first = run_cli(*args, "--interval", "bootstrap", "--seed", "4")
    again = run_cli(*args, "--interval", "bootstrap", "--seed", "4")
    other = run_cli(*args, "--interval", "bootstrap", "--seed", "5")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout and first.stdout != other.stdout
    rows = json.loads(first.stdout)
    assert len(rows) == 1 and all(list(row) == [name for name, _ in COLUMNS] for row in rows)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--by", "experiment", "--window-days", "7"), "--window-days"),
        (("--by", "experiment", "--expected-split", "1,2,3"), "has 2 variants"),
        (("--by", "experiment", "--expected-split", "50,x"), "--expected-split"),
        (("--by", "experiment", "--expected-split", "100"), "--expected-split"),
        (("--by", "prompt-version", "--expected-split", "50,50"), "--expected-split"),
        (("--confidence", "1.5"), "--confidence"),
    ],
)
def test_a_comparison_that_cannot_be_made_is_one_line_exit_2(
    warehouse: tuple[Path, pl.DataFrame], args: tuple[str, ...], says: str
) -> None:
    wh, _ = warehouse
    if args[-1] == "1,2,3":
        # Only the broken-split experiment's two variants in scope: one line names it.
        args = (*args, "--agent", "agent-900")
    done = run_cli("compare", "--warehouse", wh, *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_no_warehouse_is_exit_3(tmp_path: Path) -> None:
    done = run_cli("compare", "--warehouse", tmp_path / "nothing")
    assert done.returncode == 3, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_every_column_and_verdict_is_in_the_explain_dictionary() -> None:
    from pipeline.compare import verdict

    explained = run_cli("stats", "--explain").stdout
    for name, _ in COLUMNS:
        assert f"`{name}`" in explained, name
    for called in (
        verdict.SHORTER,
        verdict.LONGER,
        verdict.NO_CLEAR_CHANGE,
        verdict.TOO_FEW,
        verdict.SAMPLE_RATIO_MISMATCH,
    ):
        assert f"`{called}`" in explained, called


def _experiment_session(n: int, experiment: str, variant_id: str | None, name: str | None,
                        control: bool | None) -> dict[str, Any]:  # fmt: skip
    return session(
        n,
        experiment_id=experiment,
        experiment_variant_id=variant_id,
        experiment_variant=name,
        experiment_variant_is_control=control,
        duration=float(50 + n % 97),
    )


@pytest.fixture(scope="module")
def odd_experiments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Experiments as exports have them: one with nothing but its control, one whose variant
    id is missing on half its sessions, one with two variants of the same name (and sessions
    with that name alone), sessions naming no variant, and a prompt version with one
    duration."""
    tmp = tmp_path_factory.mktemp("odd-experiments")
    records = [_experiment_session(i, "only-control", "c", "ctl", True) for i in range(100)]
    records += [_experiment_session(100 + i, "half-ids", "c", "ctl", True) for i in range(200)]
    records += [
        _experiment_session(300 + i, "half-ids", "v" if i % 2 else None, "B", False)
        for i in range(200)
    ]
    records += [_experiment_session(500 + i, "half-ids", None, None, None) for i in range(7)]
    records += [
        _experiment_session(
            600 + i, "same-names", f"s{i % 3}", "ctl" if i % 3 == 0 else "same", i % 3 == 0
        )
        for i in range(300)
    ]
    # Without an id, a name two ids share places a session in neither (some say control).
    records += [
        _experiment_session(1000 + i, "same-names", None, "same", i < 10 or None) for i in range(30)
    ]
    # An experiment none of whose sessions names a variant.
    records += [_experiment_session(1100 + i, "no-variants", None, None, None) for i in range(5)]
    records += [session(900, prompt_id="p-one", prompt_version_number=1, duration=5.0)]
    records += [session(901 + i, prompt_id="p-one", prompt_version_number=2) for i in range(2)]
    export = tmp / "odd.ndjson"
    export.write_bytes(ndjson(records))
    assert run_cli("ingest", export, "-w", tmp / "wh", "-q").returncode == 0
    return tmp / "wh"


def test_experiments_that_cannot_be_compared_are_said_and_left_out(odd_experiments: Path) -> None:
    done = run_cli("compare", "-w", odd_experiments, "--by", "experiment", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert "only-control" not in {r["group_id"] for r in rows}
    assert "'only-control': nothing but its control" in done.stderr
    # A session without its variant's id belongs to the variant whose name it has.
    (half,) = [r for r in rows if r["group_id"] == "half-ids"]
    assert (half["baseline"], half["candidate"]) == ("ctl", "B")
    assert (half["baseline_count"], half["candidate_count"]) == ("200", "200")
    assert float(half["srm_p_value"]) == pytest.approx(1.0)
    assert "'half-ids': 7 session(s) name no variant" in done.stderr
    # Two variants of one name are told apart by their ids.
    same = sorted(
        (r["candidate"], r["candidate_count"], r["srm_p_value"])
        for r in rows
        if r["group_id"] == "same-names"
    )
    # The sessions with the shared name alone are in neither, nor a variant of their own.
    assert same == [("same (s1)", "100", "1.0"), ("same (s2)", "100", "1.0")]
    said = "'same-names': 30 session(s) have no variant id and a name several variant ids share"
    assert said in done.stderr
    assert "'no-variants': none of its 5 session(s) can be placed in a variant" in done.stderr
    # The report says what it left out.
    out = odd_experiments.parent / "report.html"
    assert run_cli("report", "-w", odd_experiments, "--out", out).returncode == 0
    assert "experiment &#x27;only-control&#x27;: nothing but its control" in out.read_text()


def test_one_experiment_alone_takes_its_own_split(odd_experiments: Path) -> None:
    every = run_cli("compare", "-w", odd_experiments, "--by", "experiment",
                    "--expected-split", "1,1")  # fmt: skip
    assert every.returncode == 2 and "--experiment ID" in every.stderr
    one = _compare(odd_experiments, "--by", "experiment", "--experiment", "same-names",
                   "--expected-split", "1e308,1e308,1e308")  # fmt: skip
    assert {r["group_id"] for r in one} == {"same-names"}
    assert float(one[0]["srm_p_value"]) == pytest.approx(1.0)


@pytest.mark.parametrize("interval", ["asymptotic", "bootstrap"])
def test_a_side_of_one_duration_has_estimates_but_no_interval(
    odd_experiments: Path, interval: str
) -> None:
    rows = _compare(odd_experiments, "--by", "prompt-version", "--min-sessions", "2",
                    "--interval", interval)  # fmt: skip
    (row,) = [r for r in rows if r["group_id"] == "p-one"]
    assert (row["baseline_count"], row["candidate_count"]) == ("1", "2")
    assert float(row["p50_diff_s"]) == pytest.approx(float(row["candidate_p50_s"]) - 5.0)
    assert row["p90_diff_s"] != "" and row["mean_diff_s"] != ""
    assert row["p50_diff_low_s"] == "" == row["mean_diff_low_s"] == row["p90_diff_high_s"]
    assert row["verdict"] == "too few sessions"


@pytest.mark.parametrize("args", [("--seed", "-1"), ("--expected-split", "1_0,1")])
def test_bad_numbers_are_exit_2(odd_experiments: Path, args: tuple[str, ...]) -> None:
    done = run_cli("compare", "-w", odd_experiments, "--by", "experiment",
                   "--interval", "bootstrap", *args)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_nothing_to_compare_says_so_and_swapped_dates_are_refused(odd_experiments: Path) -> None:
    # An empty answer is also what a typo gives: it is said, on stderr, exit 0.
    nope = run_cli("compare", "-w", odd_experiments, "--by", "experiment",
                   "--experiment", "nope", "--format", "csv")  # fmt: skip
    assert nope.returncode == 0 and nope.stdout.count("\n") == 1  # the header alone
    assert nope.stderr == (
        "note: nothing to compare: no experiment 'nope' with a control and another variant in "
        "this scope\n"
    )
    later = run_cli("compare", "-w", odd_experiments, "--since", "2027-01-01", "--format", "csv")
    assert later.stderr == "note: nothing to compare: no prompt with two versions in this scope\n"
    for command in ("compare", "stats", "report"):
        swapped = run_cli(command, "-w", odd_experiments, "--since", "2026-12-01",
                          "--until", "2026-11-01")  # fmt: skip
        assert swapped.returncode == 2, (command, swapped.stderr)
        assert "Invalid value for '--until': 2026-11-01 is before --since 2026-12-01" in (
            swapped.stderr
        )


def test_a_variant_named_as_another_variants_id_is_not_that_variant(tmp_path: Path) -> None:
    # Ids A (named "ctl", the control) and B ("trt"); sessions with no id and the name "A":
    # a variant of that name, not the control's sessions.
    records = [_experiment_session(i, "E1", "A", "ctl", True) for i in range(60)]
    records += [_experiment_session(100 + i, "E1", "B", "trt", False) for i in range(60)]
    records += [_experiment_session(200 + i, "E1", None, "A", None) for i in range(40)]
    export = tmp_path / "e.ndjson"
    export.write_bytes(ndjson(records))
    assert run_cli("ingest", export, "-w", tmp_path / "wh", "-q").returncode == 0
    rows = _compare(tmp_path / "wh", "--by", "experiment")
    found = sorted((r["baseline"], r["baseline_count"], r["candidate"], r["candidate_count"])
                   for r in rows)  # fmt: skip
    assert found == [("ctl", "60", "A", "40"), ("ctl", "60", "trt", "60")]
