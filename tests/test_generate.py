"""The synthetic exports look like what a team running agents receives."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pipeline.generate import sessions, write_exports
from pipeline.ingest import ingest
from pipeline.read import Format, sniff
from tests.conftest import stored


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    return sessions(20_000, seed=3)


def test_many_agents_timezones_channels_and_prompt_versions(data: pl.DataFrame) -> None:
    assert data["agent_id"].n_unique() == 8
    assert data["agent_timezone"].n_unique() >= 6
    assert set(data["channel_manager_type"]) == {
        "voice_twilio_v1",
        "voice_sip_v1",
        "webchat_v1",
        "sms_twilio_v1",
    }
    assert (
        data.group_by("prompt_id")
        .agg(pl.col("prompt_version_number").n_unique())
        .min()["prompt_version_number"]
        .item()
        >= 2
    )


def test_durations_are_skewed_and_differ_by_agent_and_version(data: pl.DataFrame) -> None:
    d = data["duration"].drop_nulls()
    assert d.mean() > d.median()  # log-normal: a long right tail
    by_agent = data.group_by("agent_id").agg(pl.col("duration").median())["duration"]
    assert by_agent.max() > 3 * by_agent.min()
    by_version = (
        data.group_by("prompt_version_number")
        .agg(pl.col("duration").median())
        .sort("prompt_version_number")["duration"]
    )
    assert by_version.is_sorted(descending=True)  # later prompt versions run shorter


def test_test_sessions_and_null_durations(data: pl.DataFrame) -> None:
    assert 0.02 < data["is_test"].mean() < 0.04  # type: ignore[operator]
    assert 0.01 < data["duration"].null_count() / len(data) < 0.03


def test_every_format_is_written_and_ingests(tmp_path: Path) -> None:
    paths = write_exports(tmp_path / "x", 2000, seed=5)
    formats = {sniff(p).format for p in paths}
    assert formats == {Format.NDJSON, Format.JSON_ARRAY, Format.CSV}
    assert any(sniff(p).gzipped for p in paths)
    report = ingest([str(tmp_path / "x")], tmp_path / "wh")
    assert report.sessions_new == 2000
    assert report.rows_superseded > 0  # overlapping pages and re-deliveries
    assert report.rows_rejected == 4 and report.unknown_fields == ["sentiment_score"]
    assert all(r["duration"] is not None for r in stored(tmp_path / "wh"))  # filled in later


@pytest.mark.parametrize("seed", [2])
def test_the_fewest_sessions_allowed_still_make_every_export(tmp_path: Path, seed: int) -> None:
    # Below eight plain sessions the file of problems spoiled sessions it did not have (an
    # IndexError, exit 70); fewer than 10 is refused, exit 2.
    from tests.conftest import run_cli

    done = run_cli("generate", tmp_path / "out", "--sessions", "10", "--seed", str(seed))
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").iterdir())) == 7
    assert ingest([str(tmp_path / "out")], tmp_path / "wh").rows_read > 10
    refused = run_cli("generate", tmp_path / "more", "--sessions", "9")
    assert refused.returncode == 2 and "9 is not in the range x>=10" in refused.stderr
