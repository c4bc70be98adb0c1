"""The fast readers store exactly what the exact reader stores, whatever the file holds.

Each file is ingested twice, in-process, into two warehouses: once as `sessions ingest` reads
it (the fast reader where it can), once with only the exact reader (`SESSIONS_EXACT_READER`).
The stored sessions, the quarantine and the report must be the same, value for value; and
the report must say which reader read the file, so that a test of the fast reader cannot pass
on the exact one.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import ingest
from pipeline.read import fast, fast_csv, readers, sniff
from pipeline.store import reader
from schemas import FIELD_NAMES, SESSION_FIELDS, Kind

KEY = "fast-reader test key, 32 bytes or longer"


def stored(warehouse: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    _, version = reader.version(str(warehouse))
    files = [f.location for f in version.session_files()]
    sessions = pl.read_parquet(files).drop("ingested_at") if files else pl.DataFrame()
    rejects = (
        pl.read_parquet(str(warehouse / "rejects" / "**" / "*.parquet")).drop(
            "ingested_at", "run_id"
        )
        if list((warehouse / "rejects").rglob("*.parquet"))
        else pl.DataFrame()
    )
    if len(sessions):
        sessions = sessions.sort(sessions.columns, nulls_last=True)
    if len(rejects):
        rejects = rejects.sort("source_file", "element", "item", nulls_last=True)
    return sessions, rejects


def both_ways(
    paths: list[Path], tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ingest `paths` fast and exact; assert the same outcome; give each run's per-file
    reports."""
    monkeypatch.setenv("SESSIONS_PII_KEY", KEY)
    reports = []
    results = []
    for exact in ("0", "1"):
        monkeypatch.setenv(readers.EXACT_ENV, exact)
        warehouse = tmp / f"warehouse-{exact}"
        report = ingest.ingest([str(p) for p in paths], warehouse)
        reports.append(report.to_dict())
        results.append(stored(warehouse))
    (fast_sessions, fast_rejects), (exact_sessions, exact_rejects) = results
    assert fast_sessions.equals(exact_sessions, null_equal=True), _difference(
        fast_sessions, exact_sessions
    )
    assert fast_rejects.equals(exact_rejects, null_equal=True), _difference(
        fast_rejects, exact_rejects
    )
    fast_report, exact_report = (
        {k: v for k, v in r.items() if k not in ("run_id", "warehouse", "per_file")}
        for r in reports
    )
    assert fast_report == exact_report
    fast_files, exact_files = reports[0]["per_file"], reports[1]["per_file"]
    drop = ("reader", "read_note")
    assert [{k: v for k, v in f.items() if k not in drop} for f in fast_files] == [
        {k: v for k, v in f.items() if k not in drop} for f in exact_files
    ]
    assert all(f["reader"] == "exact" for f in exact_files)
    return fast_files, exact_files


def read_batches(path: Path, attempt: str, tmp: Path) -> list[tuple[str, pl.DataFrame]]:
    """The batches a fast reader gives of `path`, read the `attempt` way, on a connection
    of its own."""
    con = readers.fast_connection(tmp / "spill", "1GB")
    try:
        return list(readers.batches(sniff(path), attempt, con, print))
    finally:
        con.close()


def _difference(a: pl.DataFrame, b: pl.DataFrame) -> str:
    if a.shape != b.shape or a.columns != b.columns:
        return f"shapes {a.shape} {b.shape}, columns {a.columns} {b.columns}"
    differing = [c for c in a.columns if not a[c].equals(b[c], null_equal=True)]
    rows = []
    for c in differing[:3]:
        mask = ~(a[c].eq_missing(b[c]))
        rows.append(
            f"{c}: {a.filter(mask)[c].head(3).to_list()} vs {b.filter(mask)[c].head(3).to_list()}"
        )
    return "; ".join(rows)


# Values as exports write them, and as they should not but do.
_BLANKS = [" ", "\t", "\u00a0", "\u200b", "\u3000", "\ufeff", "\r", "\n"]


def _timestamp(draw: st.DrawFn) -> object:
    moment = draw(st.datetimes(datetime(1960, 1, 1), datetime(2110, 1, 1), timezones=st.just(UTC)))
    fraction = draw(st.sampled_from(["", ".5", ".582", ".123456", ".123456789"]))
    base = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction
    return draw(
        st.sampled_from(
            [
                base + "Z",
                base + "Z",
                base + "z",
                base + "+02:00",
                base,
                base.replace("T", " ") + "Z",
                " " + base + "Z",
                moment.strftime("%Y-%m-%dT%H:%M") + "Z",
                "2026-02-30T10:00:00Z",
                "2026-10-01T24:00:00Z",
                "not a time",
                "",
                None,
                12345,
            ]
        )
    )


def _number(draw: st.DrawFn) -> object:
    value = draw(st.floats(allow_nan=True, allow_infinity=True, width=64))
    return draw(
        st.sampled_from(
            [
                value,
                abs(value) if value == value else 1.0,
                round(abs(value) % 5000, 3)
                if value == value and abs(value) != float("inf")
                else 2.5,
                str(value),
                f" {value} ",
                -0.0,
                "-0.0",
                "1e5",
                "1E400",
                ".5",
                "5.",
                "+5",
                "abc",
                "",
                None,
                7,
                "0x10",
                "n/a",
                "NaN",
            ]
        )
    )


def _integer(draw: st.DrawFn) -> object:
    value = draw(st.integers(-(2**70), 2**70))
    return draw(
        st.sampled_from(
            [
                value,
                value % 100,
                str(value % 100),
                f" {value % 9}",
                "3.0",
                "3.5",
                "007",
                "-0",
                "",
                None,
                2.0,
                True,
            ]
        )
    )


def _boolean(draw: st.DrawFn) -> object:
    return draw(
        st.sampled_from(
            [True, False, "true", "false", "TRUE", " true", "1", "0", "yes", "", None, 1]
        )
    )


def _string(draw: st.DrawFn) -> object:
    core = draw(st.text(max_size=6))
    return draw(
        st.sampled_from(
            [
                core,
                "agent-1",
                "After Hours",
                draw(st.sampled_from(_BLANKS)) + "x" + draw(st.sampled_from(_BLANKS)),
                "é" + core,
                "",
                " ",
                None,
                5,
                {"nested": [1, 2]},
                "+14155550124",
                "NULL",
                "NA",
                "null",
            ]
        )
    )


_VALUES = {
    Kind.TIMESTAMP: _timestamp,
    Kind.FLOAT: _number,
    Kind.INT: _integer,
    Kind.BOOL: _boolean,
    Kind.STRING: _string,
}


@st.composite
def records(draw: st.DrawFn, camel: bool) -> object:
    """A session as an export writes it, now and then with a defect or as a line that is not
    a session at all."""
    kind = draw(st.sampled_from(["usual"] * 6 + ["odd keys", "junk"]))
    if kind == "junk":
        return draw(
            st.sampled_from(['{"timestamp": ', "[1, 2]", "null", '"text"', "{}", "   ", ""])
        )
    record: dict[str, object] = {}
    for f in SESSION_FIELDS:
        key = f.camel if camel else f.name
        if draw(st.integers(0, 9)) == 0:
            record[key] = _VALUES[f.kind](draw)
        else:
            record[key] = _usual(f.name, draw(st.integers(0, 50)))
    if kind == "odd keys":
        change = draw(st.sampled_from(["unknown", "missing", "both spellings", "reordered"]))
        if change == "unknown":
            record["brand_new_field"] = draw(st.sampled_from([1, "x", None, [1]]))
        elif change == "missing":
            record.pop(next(iter(record)))
        elif change == "both spellings":
            record["sessionId" if not camel else "session_id"] = "again"
        else:
            record = dict(reversed(list(record.items())))
    return record


def _usual(name: str, i: int) -> object:
    usual: dict[str, object] = {
        "timestamp": (datetime(2026, 9, 20, tzinfo=UTC) + timedelta(minutes=37 * i)).strftime(
            "%Y-%m-%dT%H:%M:%S.%f"
        )[:-3]
        + "Z",
        "session_id": f"ses_{i % 40}",
        "prompt_version_number": i % 3,
        "duration": round(10 + i * 1.7, 3),
        "agent_id": f"agent-{i % 4}",
        "agent_timezone": ["America/Chicago", "UTC", "Mars/Olympus"][i % 3],
        "source": f"+1415555{i:04d}",
        "target": "+18005550100",
    }
    if name in usual:
        return usual[name]
    kind = next(f.kind for f in SESSION_FIELDS if f.name == name)
    return {Kind.BOOL: i % 2 == 0, Kind.STRING: f"{name}-{i % 5}"}.get(kind)


def _ndjson(items: list[object], compact: bool, crlf: bool) -> bytes:
    separators = (",", ":") if compact else (", ", ": ")
    lines = [
        item
        if isinstance(item, str)
        else json.dumps(item, separators=separators, ensure_ascii=False)
        for item in items
    ]
    end = "\r\n" if crlf else "\n"
    return (end.join(lines) + end).encode()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    camel=st.booleans(),
    compact=st.booleans(),
    data=st.data(),
)
def test_ndjson_fast_and_exact_store_the_same(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    camel: bool,
    compact: bool,
    data: st.DataObject,
) -> None:
    tmp = tmp_path_factory.mktemp("ndjson")
    first = _usual_record(camel)
    items = [first, *data.draw(st.lists(records(camel), min_size=1, max_size=40))]
    path = tmp / "export.ndjson"
    path.write_bytes(_ndjson(items, compact, crlf=False))
    fast_files, _ = both_ways([path], tmp, monkeypatch)
    blank_line = any(isinstance(i, str) and not i.strip() for i in items)
    if not blank_line:
        # A file without blank lines is the fast reader's, however odd its lines are.
        assert fast_files[0]["reader"] == "fast", fast_files[0]


def _usual_record(camel: bool) -> dict[str, object]:
    return {(f.camel if camel else f.name): _usual(f.name, 0) for f in SESSION_FIELDS}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(camel=st.booleans(), extra_column=st.booleans(), data=st.data())
def test_csv_fast_and_exact_store_the_same(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    camel: bool,
    extra_column: bool,
    data: st.DataObject,
) -> None:
    tmp = tmp_path_factory.mktemp("csv")
    rows = [_usual_record(camel)]
    for item in data.draw(st.lists(records(camel), min_size=1, max_size=40)):
        if isinstance(item, dict) and set(item) == set(rows[0]):
            rows.append(item)
    header = list(rows[0]) + (["console_note"] if extra_column else [])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    short = data.draw(st.sets(st.integers(1, len(rows)), max_size=3))
    for i, row in enumerate(rows):
        values = [_csv_text(row[k]) for k in rows[0]]
        values += ["note, with comma"] if extra_column else []
        if i in short:
            # A record cut short (fewer fields than the header): rejected, with its text.
            values = values[: data.draw(st.integers(1, len(values) - 1))]
        writer.writerow(values)
    text = out.getvalue()
    path = tmp / "export.csv"
    path.write_text(text)
    fast_files, _ = both_ways([path], tmp, monkeypatch)
    multi_line = any("\n" in v or "\r" in v for row in rows for v in map(_csv_text, row.values()))
    refused = any(r in text.encode() for r in fast_csv.REFUSED)
    if not multi_line and not refused:
        # Only a record over several lines, or text DuckDB's parser reads otherwise (a space
        # beside a quote, its null text), sends a CSV the exact way.
        assert fast_files[0]["reader"] == "fast", fast_files[0]


def _csv_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def test_the_bundled_samples_store_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = sorted((Path(__file__).parents[2] / "data" / "samples").iterdir())
    fast_files, _ = both_ways(samples, tmp_path, monkeypatch)
    readers = {Path(f["path"]).name: f["reader"] for f in fast_files}
    assert readers["01_sessions.ndjson"] == "fast"
    assert readers["02_sessions_typescript_sdk.ndjson.gz"] == "fast"
    assert readers["05_console_export.csv"] == "fast"
    assert readers["06_redelivered_durations.ndjson"] == "fast"


def _lines(n: int, seed: int = 3) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [{f.name: _usual(f.name, rng.randrange(1000)) for f in SESSION_FIELDS} for _ in range(n)]


@pytest.mark.parametrize(
    ("case", "reader_used"),
    [
        ("byte order mark", "fast"),  # DuckDB drops it, as the exact reader does
        ("blank lines", "fast"),  # DuckDB reads an empty line as a row, and so counts it
        ("crlf", "fast"),
        ("gzip", "fast"),
        ("not utf-8", "exact"),
        ("control byte", "fast"),  # DuckDB keeps the line whole: its JSON is refused
        ("first line odd", "exact"),
        ("line not json", "fast"),
        ("api page among sessions", "fast"),
        ("no newline at the end", "fast"),
    ],
)
def test_files_the_fast_reader_declines_or_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, reader_used: str
) -> None:
    items: list[object] = list(_lines(30))
    crlf = case == "crlf"
    body = _ndjson(items, True, crlf)
    name = "export.ndjson"
    if case == "byte order mark":
        body = b"\xef\xbb\xbf" + body
    elif case == "blank lines":
        body = body.replace(b"\n", b"\n\n", 3).replace(b"\n", b"\n \t\n", 1)
    elif case == "gzip":
        body, name = gzip.compress(body), "export.ndjson.gz"
    elif case in ("not utf-8", "control byte"):
        # On a later line: a first line the fast reader cannot read, it does not try.
        lines = body.split(b"\n")
        lines[5] = lines[5].replace(b"agent-", b"agent-\xff" if case == "not utf-8" else b"\x01")
        body = b"\n".join(lines)
    elif case == "first line odd":
        body = b'{"unknown": 1}\n' + body
    elif case == "line not json":
        body = body.replace(b"\n", b"\n{not json\n", 1)
    elif case == "api page among sessions":
        page = {"items": _lines(3, seed=9), "page": 0, "page_size": 3, "total_count": 3}
        body += (json.dumps(page) + "\n").encode()
    elif case == "no newline at the end":
        body = body.rstrip(b"\n")
    path = tmp_path / name
    path.write_bytes(body)
    fast_files, _ = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == reader_used, fast_files[0]
    if reader_used == "exact" and case != "first line odd":
        assert fast_files[0]["read_note"], "the report says why the fast reader gave up"


@pytest.mark.parametrize(
    ("case", "reader_used"),
    [
        ("quoted newline", "exact"),
        ("field count", "fast"),  # a record with fewer fields: DuckDB pads it, it is odd
        ("a field too many", "exact"),
        ("crlf", "fast"),
        ("gzip", "fast"),
        ("blank values and spaces", "fast"),
        ("byte order mark", "fast"),
        ("null spellings", "fast"),
        ("space before a quote", "exact"),
        ("space after a quote", "exact"),
        ("one column, blank lines", "exact"),
        ("DuckDB's null text", "exact"),
    ],
)
def test_csv_files_the_fast_reader_declines_or_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, reader_used: str
) -> None:
    rows = _lines(30)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n" if case == "crlf" else "\n")
    writer.writerow(FIELD_NAMES)
    for i, row in enumerate(rows):
        values = [_csv_text(row[k]) for k in FIELD_NAMES]
        if case == "quoted newline" and i == 5:
            values[7] = "two\nlines"
        if case == "null spellings" and i % 4 == 0:
            # Arrow's CSV parser, the exact reader's, reads these as null, quoted or not.
            values[18], values[7], values[13] = (
                ["n/a", "NULL", '"NA"', "NaN"][i % 16 // 4],
                "null",
                "NA",
            )
        if case == "DuckDB's null text" and i in (2, 5, 8):
            # A field that is just the character DuckDB reads as null (`fast_csv._PADDED`):
            # in a name, in the id (the session's key), and quoted.
            values[7 if i == 2 else 1] = "\x02"
            if i == 8:
                values[7] = "QUOTED-NULL-TEXT"
        if case == "blank values and spaces" and i % 3 == 0:
            values[1], values[18] = f" {values[1]}\u00a0", f" {values[18]} "
        writer.writerow(values)
    body = out.getvalue().encode().replace(b"QUOTED-NULL-TEXT", b'"\x02"')
    name = "export.csv"
    if case in ("space before a quote", "space after a quote"):
        # DuckDB reads `, "x"` and `"x" ` as x; the exact reader as the text with its quotes
        # and spaces (so `, "2"` is not a number).
        lines = body.split(b"\n")
        fields = lines[3].split(b",")
        fields[18] = b' "' + fields[18] + b'"' if case == "space before a quote" else b""
        fields[6] = fields[6] if case == "space before a quote" else b'"' + fields[6] + b'" '
        lines[3] = b",".join(fields)
        body = b"\n".join(lines)
    elif case == "one column, blank lines":
        body = b"timestamp\n2026-10-25T17:04:24.868Z\n\n2026-10-25T17:05:24.868Z\n"
    if case == "field count":
        body = body.replace(b"\n", b"\none,two\n", 2)
        lines = body.split(b"\n")
        # Cut short with its last fields empty, and after a comma (an empty field) at the end.
        lines[6] = b",".join(lines[6].split(b",")[:-2]) + b","
        lines[9] = b",".join(lines[9].split(b",")[:5]) + b","
        body = b"\n".join(lines)
    elif case == "a field too many":
        lines = body.split(b"\n")
        lines[4] += b",extra"
        body = b"\n".join(lines)
    elif case == "gzip":
        body, name = gzip.compress(body), "export.csv.gz"
    elif case == "byte order mark":
        body = b"\xef\xbb\xbf" + body
    path = tmp_path / name
    path.write_bytes(body)
    fast_files, _ = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == reader_used, fast_files[0]


def test_redeliveries_within_a_file_keep_the_latest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows carry their place from the fast reader as from the exact one: the later wins.
    rows = _lines(40)
    again = [dict(r, duration=float(i)) for i, r in enumerate(rows[:10])]
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson([*rows, *again, {**rows[3], "duration": "oops"}], True, False))
    fast_files, _ = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == "fast"
    sessions, _ = stored(tmp_path / "warehouse-0")
    latest = {r["session_id"]: r["duration"] for r in [*rows, *again]}
    got = dict(zip(sessions["session_id"], sessions["duration"], strict=True))
    assert got == latest


def test_the_fast_csv_reader_keeps_the_files_order(tmp_path: Path) -> None:
    """Each row's place is counted as DuckDB gives it: the rows must come in the file's
    order. (DuckDB 2.0 rewrote the reader's IN list of null spellings into a join, which
    gave the rows of a file of a few row groups out of order, from row 0.)"""
    n = 200_000  # 14 MB: several of DuckDB's buffers, read on both cores
    rows = pl.DataFrame({name: pl.Series([None] * n, dtype=pl.String) for name in FIELD_NAMES})
    rows = rows.with_columns(
        pl.format("2026-09-20T10:00:{}.000Z", (pl.int_range(n) % 50 + 10)).alias("timestamp"),
        pl.format("ses_{}", pl.int_range(n)).alias("session_id"),
        pl.lit("12.5").alias("duration"),
    )
    path = tmp_path / "export.csv"
    rows.write_csv(path)
    batches = read_batches(path, readers.FAST, tmp_path)
    assert {kind for kind, _ in batches} == {"typed"}
    got = pl.concat([frame.select("session_id", "_element") for _, frame in batches])
    assert len(got) == n
    assert got["session_id"].to_list() == [f"ses_{i}" for i in got["_element"]]


@pytest.mark.parametrize("where", ["in the head", "past the head"])
def test_a_line_not_json_is_read_tolerant_from_where_it_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # A line that is not JSON among the first MiB: the file is read tolerant from the start.
    # Past it: read as it is first, and again, tolerant, when DuckDB meets the line. Both
    # store what the exact reader stores.
    lines = _ndjson(list(_lines(2000)), True, False).split(b"\n")
    assert sum(len(line) + 1 for line in lines[:-10]) > 1 << 20
    lines.insert(3 if where == "in the head" else len(lines) - 5, b"{not json")
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"\n".join(lines))
    first = readers.attempts(sniff(path))[0]
    assert first == (readers.FAST_TOLERANT if where == "in the head" else readers.FAST)
    fast_files, _ = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == "fast" and fast_files[0]["rows_rejected"] == 1


def test_odd_lines_gathered_over_batches_keep_their_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Odd lines are read the exact way some at a time, over several batches: small batches
    # and a small gathering here, so that one file has many of each.
    monkeypatch.setattr(fast, "BATCH_ROWS", 500)
    monkeypatch.setattr(fast, "ODD_ROWS", 40)
    items: list[object] = list(_lines(4000, seed=5))
    for i in range(7, 4000, 37):
        record = dict(items[i])  # type: ignore[call-overload]
        items[i] = {**record, "duration": "n/a"} if i % 2 else {**record, "brand_new": i}
    items.insert(1500, "{not json")
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson(items, True, False))
    fast_files, _ = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == "fast"
    assert fast_files[0]["rows_rejected"] == 1 + len(range(7, 4000, 74))
    assert fast_files[0]["unknown_fields"] == ["brand_new"]


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": "), (" , ", " : "), (",\t", ":\t")])
def test_blanks_at_a_values_ends_are_trimmed_however_the_json_is_spaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, separators: tuple[str, str]
) -> None:
    # A value ending with a space is followed by its quote and then a comma, a bracket or a
    # blank: the fast reader trims where it sees that, and only there.
    rows: list[dict[str, object]] = []
    for i, record in enumerate(_lines(20, seed=8)):
        # Only at the end (a blank at the start has a quote before it, whatever the spacing),
        # and in one field a line (the line is trimmed whole where one is seen): the last
        # key's value, before the brace, or another's, before the separator.
        edge = " " * (i % 3)
        record = {**record, "agent_name": f"name {i}{edge if i % 2 else ''}"}
        record["agent_id"] = f"agent {i}{'' if i % 2 else edge}"
        # And at the start, told by the value's own first character: spaces, or a blank that
        # is escaped or not ASCII.
        record["prompt_name"] = f"{[' ', '  ', chr(9), chr(160), ''][i % 5]}prompt {i}"
        record["session_id"] = f"ses_{i}"  # each stored: none superseded by another
        rows.append(record)
    first = _usual_record(False)
    rows[0] = {**first, "agent_name": "first"}
    # Every record's last key: its value's quote is followed by the closing brace.
    rows = [{**{k: v for k, v in r.items() if k != "agent_name"}, "agent_name": r["agent_name"]}
            for r in rows]  # fmt: skip
    text = "\n".join(json.dumps(r, separators=separators) for r in rows) + "\n"
    path = tmp_path / "export.ndjson"
    path.write_text(text)
    fast_files, _ = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == "fast"
    sessions, _ = stored(tmp_path / "warehouse-0")
    for name in ("agent_name", "agent_id", "prompt_name"):
        assert not any(v != v.strip() for v in sessions[name].drop_nulls()), name
