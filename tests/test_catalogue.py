"""The catalogue of odd inputs: every class of issue #12, and the outcome each one gets.

One row per class, each a small export holding one or two odd rows beside good ones, run
through the installed CLI as a nightly job would: the exit code, the rows kept, the reasons
the others were quarantined with, and always `rows_read == rows_accepted + rows_rejected`.
The README's table under "Validation rules" says the same in words; each class has deeper
tests of its own (named in `covered_by`) with many variants.

Classes that need large inputs (a 200k-session API page document, gzip bombs, records of
tens of MB) are measured in `tests/trust/test_memory.py` and `tests/read/test_odd_rows.py`;
classes of where the warehouse lives in `tests/warehouse/test_location.py`; the reading
commands over odd stored values in `tests/test_every_command.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ndjson, rejects, run_cli, session, stored

T = "2026-10-01T12:00:00Z"
CSV_HEADER = "timestamp,session_id,agent_name,duration\n"


@dataclass(frozen=True)
class Case:
    """One class of odd input: an export, and what the ingest makes of it."""

    name: str
    content: bytes
    accepted: int
    rejected: dict[str, int] = field(default_factory=dict)
    sessions: int | None = None  # distinct sessions stored, where rows collapse
    rejected_rows: int | None = None  # where a row has several reasons
    covered_by: str = ""


def _csv(*rows: str, encoding: str = "utf-8") -> bytes:
    return (CSV_HEADER + "".join(r + "\n" for r in rows)).encode(encoding)


def _with(n: int, **values: Any) -> dict[str, Any]:
    return session(n, **values)


CASES = [
    # --- §1 row-level oddities ------------------------------------------------------------
    Case(
        "csv: a stray double quote inside a field",
        _csv(f'{T},s1,12" monitor,1', f"{T},s2,plain,2", f'{T},s3,"quoted ""ok""",3'),
        accepted=3,
        covered_by="tests/read/test_odd_rows.py::test_a_quote_inside_a_field_is_a_character",
    ),
    Case(
        "csv: a quoted field that never closes",
        _csv(f'{T},s1,"never closed,1', f"{T},s2,x,2", f"{T},s3,y,3"),
        accepted=2,
        rejected={"record: csv_unbalanced_quote": 1},
        covered_by="tests/read/test_odd_rows.py::test_a_quote_that_never_closes_rejects_its_line_only",
    ),
    Case(
        "csv: Windows-1252 / Latin-1 encoding",
        _csv(f"{T},s1,Caf\u00e9 \u2019Bar\u2019,1", f"{T},s2,Se\u00f1or,2", encoding="cp1252"),
        accepted=2,
        covered_by="tests/read/test_odd_rows.py::test_a_csv_in_a_legacy_encoding_is_decoded",
    ),
    Case(
        "ndjson: a record with thousands of unknown keys",
        ndjson([_with(1), _with(2, **{f"k{i}": i for i in range(5000)}), _with(3)]),
        accepted=2,
        rejected={"record: too_many_fields": 1},
        covered_by="tests/read/test_odd_rows.py::test_records_with_thousands_of_unknown_keys_are_rejected_alone",
    ),
    Case(
        "json: a pretty-printed API page whose items start on its first line",
        (
            '{"items": ['
            + json.dumps(_with(1))
            + ",\n  "
            + json.dumps(_with(2))
            + '\n], "page": 0, "page_size": 25, "total_count": 2}\n'
        ).encode(),
        accepted=2,
        covered_by="tests/read/test_odd_rows.py::test_a_pretty_printed_document_is_one_document",
    ),
    Case(
        "ndjson: one record of a few MB (a long text field)",
        ndjson([_with(1, agent_name="x" * (3 << 20)), _with(2)]),
        accepted=2,
        covered_by="tests/read/test_odd_rows.py::"
        "test_records_beyond_duckdbs_default_size_are_read_and_beyond_ours_rejected",
    ),
    Case(
        "ndjson: 3,000 records with a 10 kB field the schema does not know (30 MB)",
        ndjson([_with(n, transcript="x" * 10_000) for n in range(3000)]),
        accepted=3000,
        covered_by="the default --memory-limit; tests/trust/test_memory.py",
    ),
    Case(
        "ndjson: a line that is not JSON, and one that is not UTF-8",
        ndjson([_with(1), "{broken", "{not utf-8}", _with(2)]).replace(
            b"{not utf-8}", b'{"agent_name": "\xff"}'
        ),
        accepted=2,
        rejected={"record: invalid_json": 1, "record: invalid_utf8": 1},
    ),
    Case(
        "json array: an element that is not JSON",
        ("[\n" + json.dumps(_with(1)) + ",\n{oops},\n" + json.dumps(_with(2)) + "\n]").encode(),
        accepted=2,
        rejected={"record: invalid_json": 1},
        covered_by="tests/read/test_json_scan.py",
    ),
    Case(
        "json array on one line (minified): an element that is not JSON",
        ("[" + json.dumps(_with(1)) + ", {oops: 1}, " + json.dumps(_with(2)) + "]").encode(),
        accepted=2,
        rejected={"record: invalid_json": 1},
    ),
    Case(
        "API page on one line (minified): an item with a bad escape",
        json.dumps({"items": [_with(1), "PLACE", _with(2)], "page": 0})
        .replace('"PLACE"', '{"note": "bad \\x escape"}')
        .encode(),
        accepted=2,
        rejected={"record: invalid_json": 1},
    ),
    Case(
        "ndjson: an API page naming `items` twice",
        ndjson(
            [
                f'{{"items": [{json.dumps(_with(1))}], "items": [{json.dumps(_with(2))}]}}',
                _with(3),
            ]
        ),
        accepted=1,
        # Which list is meant cannot be told: the line is one rejected row, not a page.
        rejected={"items: duplicate_key": 1, "timestamp: missing": 1},
        rejected_rows=1,
    ),
    # --- §3 values that are valid JSON but not plausible -----------------------------------
    Case(
        "timestamp: Go's zero time, year 0, a negative year, after 2100",
        ndjson(
            [
                _with(1, timestamp="0001-01-01T00:00:00Z"),
                _with(2, timestamp="0000-01-01T00:00:00Z"),
                _with(3, timestamp="-0001-01-01T00:00:00Z"),
                _with(4, timestamp="2100-01-01T00:00:00Z"),
                _with(5, timestamp="1969-12-31T23:59:59Z"),
                _with(6, timestamp="1970-01-01T00:00:00Z"),
                _with(7, timestamp="2099-12-31T23:59:59.999999Z"),
            ]
        ),
        accepted=2,
        rejected={"timestamp: out_of_range": 5},
        covered_by="tests/cli/test_plausible.py",
    ),
    Case(
        "duration: above 30 days, 1e308",
        ndjson(
            [
                _with(1, duration=1e308),
                _with(2, duration=1e308),
                _with(3, duration=2_592_000.0),
                _with(4, duration=2_592_000.001),
                _with(5, duration=5e-324),
            ]
        ),
        accepted=2,
        rejected={"duration: implausible": 3},
        covered_by="tests/cli/test_plausible.py",
    ),
    Case(
        "duration: negative, NaN, Infinity",
        ndjson(
            [
                _with(1, duration=-1),
                _with(2, duration="NaN"),
                _with(3, duration="Infinity"),
                _with(4, duration="-0.0"),
            ]
        ),
        accepted=1,
        rejected={"duration: negative": 1, "duration: not_finite": 2},
    ),
    Case(
        "session_id: the same id with whitespace around it",
        ndjson(
            [
                _with(1, session_id="abc"),
                _with(1, session_id=" abc "),
                _with(1, session_id="abc\t"),
                _with(1, session_id="\u00a0abc\u2003"),
            ]
        ),
        accepted=4,
        sessions=1,
        covered_by="tests/cli/test_plausible.py",
    ),
    Case(
        "session_id: only whitespace is a missing id",
        ndjson([_with(1, session_id="   "), _with(2, session_id="")]),
        accepted=2,
        sessions=2,
    ),
    # --- §6 personal data outside `source` -------------------------------------------------
    Case(
        "pii: identities in unknown fields and in a rejected value",
        ndjson(
            [
                _with(1, caller_number="+1 415 555 0124", caller_email="alice@example.com"),
                _with(2, duration="+14155550124"),
            ]
        ),
        accepted=1,
        # Read as a number, and a phone number is far more than 30 days of seconds.
        rejected={"duration: implausible": 1},
        covered_by="tests/trust/test_pii_more.py",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_class_gets_its_outcome(case: Case, tmp_path: Path) -> None:
    export = tmp_path / "exports" / "export.data"
    export.parent.mkdir()
    export.write_bytes(case.content)
    wh = tmp_path / "wh"
    result = run_cli("ingest", export, "--warehouse", wh, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["rows_read"] == report["rows_accepted"] + report["rows_rejected"]
    assert report["rows_accepted"] == case.accepted, report
    expected_rows = case.rejected_rows
    if expected_rows is None:
        expected_rows = sum(case.rejected.values())
    assert report["rows_rejected"] == expected_rows, report
    # A reason label may carry detail in brackets; the catalogue names field and rule.
    reasons: dict[str, int] = {}
    for label, count in report["rejected_by_reason"].items():
        reasons[label.split(" (")[0]] = reasons.get(label.split(" (")[0], 0) + count
    assert reasons == case.rejected, report["rejected_by_reason"]
    quarantined = rejects(wh)
    assert len(quarantined) == report["rows_rejected"]
    assert all(r["position"] and r["reason"] for r in quarantined)
    if case.sessions is not None:
        assert len(stored(wh)) == case.sessions
    if case.name.startswith("pii:"):
        everything = b"".join(p.read_bytes() for p in wh.rglob("*") if p.is_file())
        for identity in (b"555 0124", b"5550124", b"alice@example.com"):
            assert identity not in everything and identity.decode() not in result.stdout
