"""Caller identities never reach the warehouse raw, unless asked; pseudonyms are stable."""

from __future__ import annotations

import hashlib
import hmac
import stat
from collections.abc import Callable
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.errors import WarehouseError
from pipeline.ingest import Options, ingest
from pipeline.pii import PiiMode, Pseudonyms
from tests.conftest import manifest, ndjson, rejects, run_cli, session, stored

Write = Callable[[str, bytes], Path]
PHONES = [
    "+1 (804) 555-0142",
    "804.555.0142",
    "+18045550142",
    "8045550142",
    "001 804 555 0142",
    "+1\u00a0804\u2010555\u20110142",
    "\uff0b\uff11\uff18\uff10\uff14\uff15\uff15\uff15\uff10\uff11\uff14\uff12",
]
EMAILS = ["Caller.One@Example.COM", "caller.one@example.com "]


def everything_stored(wh: Path) -> str:
    """Every value of every Parquet file and every other file of the warehouse, as text."""
    texts = []
    con = duckdb.connect()
    for path in wh.rglob("*"):
        if path.suffix == ".parquet":
            rows = con.sql(f"SELECT to_json(t) FROM read_parquet('{path}') t").fetchall()
            texts += [r[0] for r in rows]
        elif path.is_file() and path.suffix != ".duckdb":
            texts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(texts)


def records(write: Write) -> Path:
    rows = [session(n, source=s) for n, s in enumerate(PHONES + EMAILS)]
    # The person called, and an unknown field: identities outside `source`.
    rows.append(session(80, is_outbound=True, target="+1 804 555 0143", caller="804-555-0144"))
    rows.append(session(90, source="+1 804 555 0199", duration=-1))  # rejected
    rows.append('{"timestamp": "2026-10-01T00:00:00Z", "source": "+18045550177", broken')
    return write("calls.ndjson", ndjson(rows))


def test_pseudonyms_by_default_stable_across_formatting(write: Write, wh: Path) -> None:
    report = ingest([str(records(write))], wh)
    assert report.pii == "pseudonymise"
    by_id = {r["session_id"]: r["source"] for r in stored(wh)}
    phones = {by_id[f"s{n}"] for n in range(len(PHONES))}
    emails = {by_id[f"s{n}"] for n in range(len(PHONES), len(PHONES) + len(EMAILS))}
    assert len(phones) == 1 and len(emails) == 1 and phones != emails
    (pseudonym,) = phones
    assert pseudonym.startswith("pii:") and len(pseudonym) == 4 + 32


def test_the_pseudonym_is_hmac_sha256_of_the_normalised_identity(
    write: Write, wh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONS_PII_KEY", "a key for this test, 32 bytes or more")
    ingest([str(records(write))], wh)
    expected = hmac.new(
        b"a key for this test, 32 bytes or more", b"+18045550142", hashlib.sha256
    ).hexdigest()
    assert stored(wh, "session_id = 's0'")[0]["source"] == "pii:" + expected[:32]
    email = hmac.new(
        b"a key for this test, 32 bytes or more", b"caller.one@example.com", hashlib.sha256
    )
    assert (
        stored(wh, f"session_id = 's{len(PHONES)}'")[0]["source"] == "pii:" + email.hexdigest()[:32]
    )


def test_no_raw_identity_anywhere_in_the_warehouse(write: Write, wh: Path) -> None:
    result = run_cli("ingest", records(write), "-w", wh, "--json")
    assert result.returncode == 0
    everything = everything_stored(wh) + result.stdout + result.stderr
    for raw in ("555-0142", "5550142", "555 0199", "5550177", "Caller.One", "caller.one",
                "555 0143", "5550143", "555-0144", "5550144"):  # fmt: skip
        assert raw not in everything
    assert len(rejects(wh)) == 2 and all("[redacted]" in r["record"] for r in rejects(wh))


def test_keep_and_drop(write: Write, tmp_path: Path) -> None:
    path = records(write)
    ingest([str(path)], tmp_path / "keep", Options(pii=PiiMode.KEEP))
    assert stored(tmp_path / "keep", "session_id = 's0'")[0]["source"] == PHONES[0]
    ingest([str(path)], tmp_path / "drop", Options(pii=PiiMode.DROP))
    assert {r["source"] for r in stored(tmp_path / "drop")} == {None}
    assert "5550142" not in everything_stored(tmp_path / "drop")


def test_mixing_modes_or_keys_is_refused(
    write: Write, wh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest([str(write("a.ndjson", ndjson([session(1, source="+18045550100")])))], wh)
    more = str(write("b.ndjson", ndjson([session(2)])))
    with pytest.raises(WarehouseError, match="would mix two kinds"):
        ingest([more], wh, Options(pii=PiiMode.KEEP))
    monkeypatch.setenv("SESSIONS_PII_KEY", "another key, also 32 bytes or longer")
    with pytest.raises(WarehouseError, match="not the one this warehouse was built with"):
        ingest([more], wh)
    assert manifest(wh)["pii_mode"] == "pseudonymise"


def test_the_key_file_is_created_owner_only_and_announced(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "keys" / "pii.key"
    monkeypatch.setenv("SESSIONS_PII_KEY_FILE", str(key_file))
    result = run_cli("ingest", write("a.ndjson", ndjson([session(1)])), "-w", tmp_path / "wh")
    assert result.returncode == 0
    assert f"created a pseudonymisation key at {key_file}" in result.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = run_cli("ingest", write("b.ndjson", ndjson([session(2)])), "-w", tmp_path / "wh")
    assert again.returncode == 0 and "created" not in again.stderr


def test_pseudonyms_are_the_same_across_batches_and_after_the_memory_starts_again() -> None:
    con = duckdb.connect()
    pseudonyms = Pseudonyms(con, b"a key", remember=3)
    batches = [
        ["+18045550142", "(804) 555-0142", None, "a@example.com"],
        ["A@Example.com", "+18045550199", "+18045550142"],
        ["b@example.com", "c@example.com", "d@example.com", "+18045550199"],
    ]
    normal = {"(804) 555-0142": "+18045550142", "A@Example.com": "a@example.com"}

    def expected(identity: str | None) -> str | None:
        if identity is None:
            return None
        message = normal.get(identity, identity).encode()
        return "pii:" + hmac.new(b"a key", message, hashlib.sha256).hexdigest()[:32]

    for batch in batches:
        got = pseudonyms(pl.Series("source", batch, dtype=pl.String))
        assert got.name == "source"
        assert got.to_list() == [expected(identity) for identity in batch]
