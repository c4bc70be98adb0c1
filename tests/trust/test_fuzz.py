"""Hostile input: the ingest never crashes or hangs, and every row read is accounted for."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.ingest import ingest
from schemas import FIELD_NAMES
from tests.conftest import rejects, stored

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "NaN", "1e400", "true", "2026-10-01T00:00:00Z", "\u202e\u0000x", "😀" * 5]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from([*FIELD_NAMES, "sessionId", "agentId", "isTest", "items", "extra", ""])
records = st.dictionaries(keys, values, max_size=12)
lines = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),
    values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=80).filter(lambda b: b"\n" not in b),
)


def ingest_bytes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.export"
        path.write_bytes(content)
        wh = Path(tmp) / "wh"
        try:
            report = ingest([str(path)], wh)
        except InputError as exc:
            assert str(path) in str(exc)  # a whole-file refusal names the file
            return
        assert report.rows_read == report.rows_accepted + report.rows_rejected
        assert len(rejects(wh)) == report.rows_rejected
        assert len(stored(wh)) == report.sessions_new


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, min_size=1, max_size=12))
def test_random_ndjson(content: list[bytes]) -> None:
    ingest_bytes(b"\n".join(content))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, max_size=8))
def test_random_json_arrays(content: list[Any]) -> None:
    ingest_bytes(json.dumps(content).encode())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes(content: bytes) -> None:
    ingest_bytes(content)


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"session_id": "' + b"x" * 5_000_000 + b'", "timestamp": "2026-10-01T00:00:00Z"}',
        b'{"duration": 1' + b"0" * 400 + b', "timestamp": "2026-10-01T00:00:00Z"}',
        "\n".join(
            json.dumps({"timestamp": "2026-10-01T00:00:00Z", "duration": v})
            for v in [1, "2", True, None, [3], {"x": 4}]
        ).encode(),
    ],
    ids=["deep-array", "deep-object", "huge-string", "huge-number", "mixed-types"],
)
def test_extreme_input(content: bytes) -> None:
    ingest_bytes(content)
