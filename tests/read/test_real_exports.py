"""What real exports hold, each with its decided outcome (see README, "Validation rules")."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.ingest import Options, ingest
from pipeline.read.records import CHUNK_BYTES
from tests.conftest import ndjson, rejects, session, stored, tree

Write = Callable[[str, bytes], Path]


def reasons(warehouse: Path) -> list[str]:
    return [r["reason"] for r in rejects(warehouse)]


def test_zero_byte_file_is_zero_rows_and_a_warning(write: Write, wh: Path) -> None:
    report = ingest([str(write("empty.ndjson", b""))], wh)
    assert (report.rows_read, report.rows_rejected, report.committed) == (0, 0, True)
    assert report.warnings == [f"{wh.parent}/exports/empty.ndjson: the file is empty"]


def test_nan_and_infinity_tokens_are_rejected_as_not_finite(write: Write, wh: Path) -> None:
    text = ndjson([session(1)]).decode()
    lines = [
        text.replace('"duration": 11.0', '"duration": NaN'),
        text.replace('"duration": 11.0', '"duration": Infinity').replace('"s1"', '"s2"'),
        text.replace('"duration": 11.0', '"duration": -Infinity').replace('"s1"', '"s3"'),
        text.replace('"duration": 11.0', '"duration": 1e400').replace('"s1"', '"s4"'),
    ]
    report = ingest([str(write("nan.ndjson", "".join(lines).encode()))], wh)
    assert report.rows_rejected == 4
    # -Infinity breaks two rules; a row lists every rule it breaks.
    assert report.rejected_by_reason == {"duration: not_finite": 4, "duration: negative": 1}
    assert stored(wh) == []


def test_integers_beyond_64_bits(write: Write, wh: Path) -> None:
    big = 2**70
    records = [
        session(1, prompt_version_number=big),
        session(2, duration=big),  # a float field reads it: finite, but above 30 days
        session(3, session_id=big),  # a string field keeps its digits
    ]
    report = ingest([str(write("big.ndjson", ndjson(records)))], wh)
    assert report.rejected_by_reason == {
        "prompt_version_number: not_an_integer": 1,
        "duration: implausible": 1,
    }
    rows = {r["session_id"]: r for r in stored(wh)}
    assert set(rows) == {str(big)}


def test_invalid_utf8_in_one_line_rejects_that_line_only(write: Write, wh: Path) -> None:
    good = ndjson([session(1), session(3)]).splitlines()
    bad = json.dumps(session(2, agent_name="X")).encode().replace(b'"X"', b'"\xff\xfe"')
    report = ingest([str(write("utf8.ndjson", b"\n".join([good[0], bad, good[1]])))], wh)
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (3, 2, 1)
    (reject,) = rejects(wh)
    assert reject["line"] == 2 and reject["reason"] == "record: invalid_utf8"
    assert "\\xFF\\xFE" in reject["record"]  # kept, with the bad bytes escaped


def test_a_field_that_first_appears_late_is_kept(write: Write, wh: Path) -> None:
    records = [session(n) for n in range(40_000)]
    records[-1] = session(39_999, experiment_id="exp-late", is_outbound=True, brand_new="x")
    report = ingest([str(write("late.ndjson", ndjson(records)))], wh)
    assert report.rows_accepted == 40_000
    assert report.unknown_fields == ["brand_new"]
    (row,) = stored(wh, "session_id = 's39999'")
    assert (row["experiment_id"], row["is_outbound"]) == ("exp-late", True)
    assert json.loads(row["extra_fields"]) == {"brand_new": "x"}


def test_a_bad_line_in_the_middle_keeps_every_line_after_it(write: Write, wh: Path) -> None:
    records: list = [session(n) for n in range(1000)]
    records[500] = '{"timestamp": "2026-10-01T00:00:00Z", "session_id": "cut'
    report = ingest([str(write("mid.ndjson", ndjson(records)))], wh)
    assert (report.rows_accepted, report.rows_rejected) == (999, 1)
    assert rejects(wh)[0]["line"] == 501
    assert {r["session_id"] for r in stored(wh)} == {f"s{n}" for n in range(1000)} - {"s500"}


def test_the_same_key_twice_in_one_object_is_rejected(write: Write, wh: Path) -> None:
    line = json.dumps(session(1))[:-1] + ', "duration": 99}'
    camel_and_snake = json.dumps(session(2) | {"sessionId": "other"})
    report = ingest([str(write("dup.ndjson", ndjson([line, camel_and_snake, session(3)])))], wh)
    assert report.rejected_by_reason == {
        "duration: duplicate_key": 1,
        "session_id: duplicate_key": 1,
    }
    assert [r["session_id"] for r in stored(wh)] == ["s3"]


def test_records_unlike_the_first_are_checked_for_repeated_and_unknown_keys(
    write: Write, wh: Path
) -> None:
    # The first record's keys are the batch's usual ones; the others differ from them.
    first = json.dumps(session(0))
    repeated = first.replace('"s0"', '"s1"')[:-1] + ', "duration": 99}'
    both_spellings = json.dumps(session(2) | {"sessionId": "other"})
    unknown = json.dumps(session(3, brand_new=1))
    text = ndjson([first, repeated, both_spellings, unknown, json.dumps(session(4))])
    report = ingest([str(write("unlike.ndjson", text))], wh)
    assert report.rejected_by_reason == {
        "duration: duplicate_key": 1,
        "session_id: duplicate_key": 1,
    }
    assert report.unknown_fields == ["brand_new"]
    assert sorted(r["session_id"] for r in stored(wh)) == ["s0", "s3", "s4"]
    assert json.loads(stored(wh, "session_id = 's3'")[0]["extra_fields"]) == {"brand_new": 1}


def test_a_repeated_key_is_found_among_records_whose_keys_all_differ(
    write: Write, wh: Path
) -> None:
    # Each record has a key of its own, so a batch holds as many lists of keys as records.
    lines = [json.dumps(session(n, **{f"note_{n}": n})) for n in range(1_500)]
    lines[700] = lines[700][:-1] + ', "duration": 99}'
    report = ingest([str(write("varied.ndjson", ndjson(lines)))], wh)
    assert report.rejected_by_reason == {"duration: duplicate_key": 1}
    assert rejects(wh)[0]["line"] == 701 and report.rows_accepted == 1_499


def test_a_page_whose_items_disagree_with_its_counts_is_a_warning(write: Write, wh: Path) -> None:
    page = {"items": [session(1), session(2)], "page": 0, "page_size": 25, "total_count": 90}
    report = ingest([str(write("page.json", json.dumps(page).encode()))], wh)
    assert report.rows_accepted == 2
    assert len(report.warnings) == 1
    assert "page 0 has 2 items; page_size 25 and total_count 90 say 25" in report.warnings[0]


def test_blank_lines_are_not_rows(write: Write, wh: Path) -> None:
    content = b"\n\n" + ndjson([session(1)]) + b"   \n\r\n\t\n" + ndjson([session(2)]) + b"\n\n"
    report = ingest([str(write("blank.ndjson", content))], wh)
    assert (report.rows_read, report.rows_accepted) == (2, 2)


def test_values_that_are_not_objects_are_rejected_with_what_they_are(
    write: Write, wh: Path
) -> None:
    content = json.dumps([session(1), 42, "text", None, [1], True]).encode()
    report = ingest([str(write("mixed.json", content))], wh)
    assert report.rows_read == 6
    assert [(r["element"], r["reason"]) for r in rejects(wh)] == [
        (2, "record: not_an_object (a number)"),
        (3, "record: not_an_object (a string)"),
        (4, "record: not_an_object (null)"),
        (5, "record: not_an_object (an array)"),
        (6, "record: not_an_object (a boolean)"),
    ]


def test_csv_rows_with_the_wrong_number_of_fields(write: Write, wh: Path) -> None:
    content = (
        "timestamp,session_id,duration\n"
        "2026-10-01T00:00:00Z,a,1\n"
        '2026-10-01T00:00:00Z,"b, with ""quotes""\nand a newline",2\n'
        "2026-10-01T00:00:00Z,c,3,surplus\n"
        "2026-10-01T00:00:00Z,d\n"
        "2026-10-01T00:00:00Z,e,5\n"
    )
    report = ingest([str(write("ragged.csv", content.encode()))], wh)
    assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (5, 3, 2)
    assert [(r["line"], r["reason"]) for r in rejects(wh)] == [
        (5, "record: csv_field_count (4 fields, the header has 3)"),
        (6, "record: csv_field_count (2 fields, the header has 3)"),
    ]
    assert 'b, with "quotes"\nand a newline' in [r["session_id"] for r in stored(wh)]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("notes.txt", b"hello, world\nthis is not an export\n", "neither JSON nor CSV"),
        ("binary.bin", bytes(range(256)), "neither JSON nor CSV"),
        ("cut.json.gz", gzip.compress(ndjson([session(1)] * 50))[:-30], "gzip"),
        ("cut.json", b'[{"session_id": "a"}, {"session_id": ', "Malformed JSON"),
    ],
    ids=["text", "binary", "truncated-gzip", "truncated-json-array"],
)
def test_unreadable_input_fails_and_leaves_the_warehouse_as_it_was(
    name: str, content: bytes, problem: str, tmp_path: Path, wh: Path, write: Write
) -> None:
    ingest([str(write("good.ndjson", ndjson([session(1)])))], wh)
    before = tree(wh)
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(InputError) as caught:
        ingest([str(write("more.ndjson", ndjson([session(2)]))), str(bad)], wh)
    assert str(bad) in str(caught.value) and problem in str(caught.value)
    assert tree(wh) == before


def test_a_missing_file_is_an_error(tmp_path: Path, wh: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        ingest([str(tmp_path / "nope.ndjson")], wh)
    assert not (wh / "sessions").exists()


def test_timestamp_layouts_mixed_in_one_file(write: Write, wh: Path) -> None:
    # Most lines in the exported layout, a few in others: every one is read, in one batch.
    layouts = ["2026-10-01T12:30:00Z", "2026-10-01 14:30:00+02:00", "2026-10-01T07:30:00"]
    records = [session(n, timestamp=layouts[n % 3] if n < 3 else layouts[0]) for n in range(50)]
    report = ingest([str(write("mixed.ndjson", ndjson(records)))], wh, Options("America/Chicago"))
    assert report.rows_accepted == 50
    assert {r["timestamp"] for r in stored(wh)} == {datetime(2026, 10, 1, 12, 30, tzinfo=UTC)}


def test_api_pages_are_read_wherever_they_are_and_however_their_key_is_spelled(
    write: Write, wh: Path
) -> None:
    # More than one read of plain sessions first, so that the pages fall in a later read;
    # one page spells `items` with an escape, which JSON allows.
    plain = [json.dumps(session(n, agent_name="x" * 700)) for n in range(CHUNK_BYTES // 800)]
    page = {
        "items": [session(40_001), session(40_002)],
        "page": 0,
        "page_size": 2,
        "total_count": 4,
    }
    escaped = json.dumps({"items": [session(40_003)], "page": 1, "page_size": 2, "total_count": 3})
    escaped = escaped.replace('"items"', '"\\u0069tems"')
    text = "\n".join([*plain, json.dumps(page)]) + "\n"
    assert len(text) > CHUNK_BYTES + (1 << 20)
    late = write("pages_late.ndjson", text.encode())
    alone = write("escaped.ndjson", ndjson([session(40_004), escaped]))  # no `"items"` in it
    report = ingest([str(late), str(alone)], wh)
    assert report.rows_read == report.rows_accepted == len(plain) + 4
    assert len(stored(wh, "session_id IN ('s40001', 's40002', 's40003')")) == 3


def test_an_unknown_timezone_is_kept_with_one_warning_per_name(write: Write, wh: Path) -> None:
    rows = [
        session(1, agent_timezone="Not/AZone"),
        session(2, agent_timezone="Not/AZone"),
        session(3, agent_timezone="Mars/Base"),
        session(4, agent_timezone=None),
        session(5),
    ]
    report = ingest([str(write("zones.ndjson", ndjson(rows)))], wh)
    assert report.rows_accepted == 5
    assert [w.split(": ", 1)[1] for w in report.warnings] == [
        "1 row(s) with agent_timezone 'Mars/Base', not an IANA timezone: kept, and read as UTC "
        "for local times",
        "2 row(s) with agent_timezone 'Not/AZone', not an IANA timezone: kept, and read as UTC "
        "for local times",
    ]


def test_a_timezone_only_some_engines_know_is_warned_about_and_read_as_utc(
    write: Write, wh: Path
) -> None:
    # IANA names (Python's zoneinfo has them) that DuckDB or the JVM lacks: the views read
    # them as UTC on every engine alike, which the ingest must say, as for an unknown name.
    rows = [
        session(1, timestamp="2026-10-01T01:00:00Z", agent_timezone="America/Coyhaique"),
        session(2, timestamp="2026-10-01T01:00:00Z", agent_timezone="EST"),
        session(3, timestamp="2026-10-01T01:00:00Z", agent_timezone="America/Chicago"),
    ]
    report = ingest([str(write("zones.ndjson", ndjson(rows)))], wh)
    assert [w.split(": ", 1)[1] for w in report.warnings] == [
        f"1 row(s) with agent_timezone {name!r}, a timezone not both DuckDB and Spark know: "
        "kept, and read as UTC for local times"
        for name in ("America/Coyhaique", "EST")
    ]
    dates = {r["session_id"]: str(r["local_date"]) for r in stored(wh)}
    assert dates == {"s1": "2026-10-01", "s2": "2026-10-01", "s3": "2026-09-30"}
