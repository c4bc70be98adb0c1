"""Property: whatever mix of good and bad rows an export holds, every row is accounted for."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest import ingest
from tests.conftest import rejects, session, stored

BAD_ROWS = {
    "negative duration": lambda n: json.dumps(session(n, duration=-1.5)).encode(),
    "bad timestamp": lambda n: json.dumps(session(n, timestamp="soon")).encode(),
    "bad boolean": lambda n: json.dumps(session(n, is_test="perhaps")).encode(),
    "not json": lambda n: b'{"session_id": "s%d", ' % n,
    "not an object": lambda n: b"[%d]" % n,
    "not utf-8": lambda n: (
        json.dumps(session(n, agent_name="X")).encode().replace(b'"X"', b'"\xc3"')
    ),
}

UNPARSEABLE = {"not json", "not utf-8"}

row = st.one_of(
    st.tuples(st.just("good"), st.integers(0, 30)),
    st.tuples(st.sampled_from(sorted(BAD_ROWS)), st.integers(0, 30)),
    st.tuples(st.just("blank"), st.just(0)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(row, max_size=40), crlf=st.booleans(), as_array=st.booleans())
def test_every_row_is_stored_or_quarantined(
    rows: list[tuple[str, int]], crlf: bool, as_array: bool
) -> None:
    lines, good_ids, bad = [], {}, 0
    for kind, n in rows:
        if kind == "good":
            record = session(n, duration=float(len(lines)))
            lines.append(json.dumps(record).encode())
            good_ids[record["session_id"]] = record["duration"]  # the later one wins
        elif kind == "blank":
            lines.append(b"   ")
        elif not as_array or kind not in UNPARSEABLE:
            # An array holds JSON values: a broken one would break the whole document.
            lines.append(BAD_ROWS[kind](n))
            bad += 1
    counted = [line for line in lines if line.strip()]
    if as_array:
        content = b"[" + b",".join(counted) + b"]"
    else:
        content = (b"\r\n" if crlf else b"\n").join(lines)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.data"
        path.write_bytes(content)
        report = ingest([str(path)], Path(tmp) / "wh")
        assert report.rows_read == len(counted)
        assert report.rows_read == report.rows_accepted + report.rows_rejected
        assert report.rows_rejected == bad == len(rejects(Path(tmp) / "wh"))
        assert {r["session_id"]: r["duration"] for r in stored(Path(tmp) / "wh")} == good_ids
