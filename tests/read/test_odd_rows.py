"""One odd row never sinks a run (issue #12): a row that cannot be read or typed is
quarantined with its reason and position, and the rest of the file ingests.

Each class of input is tried in several variants, through the real CLI, plain and gzipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.read import Format, sniff
from pipeline.read.records import MAX_RECORD_BYTES, PREFIX_BYTES, iter_records
from tests.conftest import SESSIONS, measured, ndjson, rejects, run_cli, session, stored

Write = Callable[[str, bytes], Path]


def ingest(paths: list[Path], wh: Path) -> dict[str, Any]:
    """Ingest `paths` in one run of the CLI: it must succeed, and every file's rows add up.
    The report's `per_file` is keyed by file name."""
    done = run_cli("ingest", *paths, "--warehouse", wh, "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["rows_read"] == report["rows_accepted"] + report["rows_rejected"]
    report["per_file"] = {Path(f["path"]).name: f for f in report["per_file"]}
    for f in report["per_file"].values():
        assert f["rows_read"] == f["rows_accepted"] + f["rows_rejected"], f
    return report


def places(wh: Path, name: str) -> list[tuple[int | None, str]]:
    """Line and reason of each row of file `name` rejected."""
    return [(r["line"], r["reason"]) for r in rejects(wh) if Path(r["source_file"]).name == name]


def kept(wh: Path, name: str) -> dict[str, dict[str, Any]]:
    """The sessions stored from file `name`, by session_id (less a prefix `<stem><.gz>-`, which
    keeps the sessions of files apart: a session given twice is stored once)."""
    prefix = name.replace(".csv", "").replace(".ndjson", "") + "-"
    return {
        r["session_id"].removeprefix(prefix): r
        for r in stored(wh)
        if Path(r["source_file"]).name == name
    }


def csv_text(header: str, rows: list[str]) -> str:
    return header + "\n" + "".join(row + "\n" for row in rows)


HEADER = "timestamp,session_id,agent_name,duration"
T = "2026-10-01T00:00:00Z"
PLAIN_AND_GZIP = ("", ".gz")


# --- CSV: quotes that do not pair up -------------------------------------------------------

INSIDE = {
    "middle": ('12" monitor', '12" monitor'),  # a quote inside an unquoted field
    "end": ('12"', '12"'),  # at its end
    "pair": ('say "hi" now', 'say "hi" now'),  # two of them
    "odd": ('a"b"c"', 'a"b"c"'),  # an odd number
    "text-after-close": ('"quoted" after', "quoted after"),  # text after a closed quote
}


def test_a_quote_inside_a_field_is_a_character(write: Write, wh: Path) -> None:
    paths = []
    for name, (field, _) in INSIDE.items():
        rows = [f"{T},a,{field},1", f"{T},b,plain,2"]
        rows += [f'{T},c,"x, with ""quotes""\nand a newline",3']
        rows += [f"{T},d{n},{field},{n}" for n in range(5)]
        for gz in PLAIN_AND_GZIP:
            own = [row.replace(f"{T},", f"{T},{name}{gz}-", 1) for row in rows]
            paths.append(write(f"{name}.csv{gz}", csv_text(HEADER, own).encode()))
    report = ingest(paths, wh)
    assert report["rows_rejected"] == 0, report
    for name, (_, value) in INSIDE.items():
        for gz in PLAIN_AND_GZIP:
            assert report["per_file"][f"{name}.csv{gz}"]["rows_read"] == 8
            rows = kept(wh, f"{name}.csv{gz}")
            assert rows["a"]["agent_name"] == value and rows["d4"]["agent_name"] == value, name
            assert rows["c"]["agent_name"] == 'x, with "quotes"\nand a newline'


NEVER_CLOSED = {
    # A field opens a quote that never closes: its line alone is rejected.
    "middle": ([f'{T},a,"never closed,1', f"{T},b,x,2", f"{T},c,y,3"], [2], ["b", "c"]),
    # ... on the last line.
    "last-line": ([f"{T},a,x,1", f"{T},b,y,2", f'{T},c,"open,3'], [4], ["a", "b"]),
    # ... closed by a later quote that does not end a field: no rows merged.
    "closed-later": (
        [f'{T},a,"open,1', f"{T},b,x,2", f'{T},c,"y",3', f"{T},d,z,4"],
        [2],
        ["b", "c", "d"],
    ),
    "closed-later-last-field": ([f'{T},a,"open,1', f"{T},b,x,2", f'{T},c,y,"3"'], [2], ["b", "c"]),
    "two": ([f'{T},a,"one,1', f"{T},b,x,2", f'{T},c,"two,3', f"{T},d,z,4"], [2, 4], ["b", "d"]),
}
UNBALANCED = "record: csv_unbalanced_quote (a quoted field opened here never closes)"


def test_a_quote_that_never_closes_rejects_its_line_only(write: Write, wh: Path) -> None:
    paths = [
        write(
            f"{name}.csv{gz}",
            csv_text(
                HEADER, [row.replace(f"{T},", f"{T},{name}{gz}-", 1) for row in rows]
            ).encode(),
        )
        for name, (rows, _, _) in NEVER_CLOSED.items()
        for gz in PLAIN_AND_GZIP
    ]
    # Open at the very end, without a line end.
    eof = csv_text(HEADER, [f"{T},eof-a,x,1"]) + f'{T},eof-b,"open,2'
    paths.append(write("eof.csv", eof.encode()))
    report = ingest(paths, wh)
    for name, (rows, bad_lines, good) in NEVER_CLOSED.items():
        for gz in PLAIN_AND_GZIP:
            assert report["per_file"][f"{name}.csv{gz}"]["rows_read"] == len(rows)
            assert sorted(kept(wh, f"{name}.csv{gz}")) == good, name
            assert places(wh, f"{name}.csv{gz}") == [(line, UNBALANCED) for line in bad_lines]
    assert report["per_file"]["eof.csv"]["rows_read"] == 2
    assert places(wh, "eof.csv") == [(3, UNBALANCED)]


def test_many_stray_quotes_across_chunks(write: Write, wh: Path) -> None:
    # Larger than a read of the CSV reader (8 MB): stray quotes on either side of the cuts.
    rows = [
        f"{T},s{n},{'big 12' if n % 7 else 'plain'} monitor {'x' * 200},{n}" for n in range(60_000)
    ]
    rows[30_000] = f'{T},open,"never closed,1'
    report = ingest([write("many.csv", csv_text(HEADER, rows).encode())], wh)
    assert (report["rows_read"], report["rows_rejected"]) == (60_000, 1)
    assert places(wh, "many.csv") == [(30_002, UNBALANCED)]


# --- CSV: encodings -----------------------------------------------------------------------

LEGACY_HEADER = "timestamp,session_id,agent_name,catégorie"
ENCODINGS = {"cp1252": "cp1252", "latin-1": "cp1252", "utf-16": "utf-16", "utf-16-be": "utf-16"}


def legacy_names(encoding: str) -> list[str]:
    names = ["Café Zoë", "Ångström", "naïve façade"]
    if encoding != "latin-1":
        names.append("l\u2019agent \u2013 \u20ac5")  # Windows-1252 only: 0x92, 0x96, 0x80
    return names


def test_a_csv_in_a_legacy_encoding_is_decoded(write: Write, wh: Path) -> None:
    paths = []
    for encoding in ENCODINGS:
        for gz in PLAIN_AND_GZIP:
            names = legacy_names(encoding)
            rows = [f"{T},{encoding}{gz}-{n},{name},x{n}" for n, name in enumerate(names)]
            data = csv_text(LEGACY_HEADER, rows).replace("\n", "\r\n").encode(encoding)
            if encoding == "utf-16-be":
                data = b"\xfe\xff" + data  # with its BOM, as Excel writes it
            paths.append(write(f"{encoding}.csv{gz}", data))
    # NDJSON saved as "Unicode text" too.
    lines = [session(n, session_id=f"ndjson-s{n}", agent_name="Zoë") for n in range(3)]
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    paths.append(write("utf16.ndjson", text.encode("utf-16")))
    report = ingest(paths, wh)
    assert report["per_file"]["utf16.ndjson"]["encoding"] == "utf-16"
    assert {r["agent_name"] for r in kept(wh, "utf16.ndjson").values()} == {"Zoë"}
    assert report["rows_rejected"] == 0, report
    for encoding, reported in ENCODINGS.items():
        for gz in PLAIN_AND_GZIP:
            name = f"{encoding}.csv{gz}"
            assert report["per_file"][name]["encoding"] == reported
            assert any("not UTF-8" in w for w in report["per_file"][name]["warnings"])
            rows = kept(wh, name)
            names = legacy_names(encoding)
            assert [rows[str(n)]["agent_name"] for n in range(len(names))] == names
            assert json.loads(rows["0"]["extra_fields"]) == {"catégorie": "x0"}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_ndjson_whose_first_line_is_broken_rejects_that_line_only(
    write: Write, wh: Path, encoding: str
) -> None:
    lines = [json.dumps(session(n, session_id=f"broken-{n}")) for n in range(3)]
    lines[0] = lines[0].replace('"timestamp":', '"timestamp"x:', 1)
    text = "".join(line + "\n" for line in lines)
    data = text.encode("utf-16") if encoding == "utf-16" else b"\xfe\xff" + text.encode(encoding)
    report = ingest([write("broken.ndjson", data)], wh)
    assert (report["rows_read"], report["rows_accepted"], report["rows_rejected"]) == (3, 2, 1)
    assert set(kept(wh, "broken.ndjson")) == {"1", "2"}


def test_a_pretty_printed_json_document_in_utf16_is_refused_with_the_way_out(
    write: Write, wh: Path
) -> None:
    # Its lines are not records: not NDJSON with a broken line, but a document it cannot read.
    document = json.dumps([session(n) for n in range(3)], indent=2)
    done = run_cli("ingest", write("pretty.json", document.encode("utf-16")), "--warehouse", wh)
    assert done.returncode == 2
    assert "JSON documents are read in UTF-8 only" in done.stderr


def test_bytes_that_do_not_decode_reject_their_row_only(write: Write, wh: Path) -> None:
    # 0x81 is no character in Windows-1252.
    legacy = [
        f"{T},undefined-a,Caf\xe9,1",
        f"{T},undefined-b,bad \x81 byte,2",
        f"{T},undefined-c,\x92quoted\x92,3",
    ]
    # A UTF-8 file with one corrupt row stays UTF-8: the other rows keep their accents.
    utf8 = [f"{T},corrupt-s{n},Zoë Ångström {n},1" for n in range(20)]
    corrupt = csv_text(HEADER, utf8).encode()
    corrupt = corrupt.replace("Zoë Ångström 7".encode(), b"Zo\xeb 7")
    paths = [
        write("undefined.csv", csv_text(HEADER, legacy).encode("latin-1")),
        write("corrupt.csv", corrupt),
    ]
    report = ingest(paths, wh)
    assert report["per_file"]["undefined.csv"]["encoding"] == "cp1252"
    assert places(wh, "undefined.csv") == [(3, "record: invalid_utf8")]
    assert any("\\x81" in r["record"] for r in rejects(wh))
    names = {key: row["agent_name"] for key, row in kept(wh, "undefined.csv").items()}
    assert names == {"a": "Café", "c": "\u2019quoted\u2019"}
    assert report["per_file"]["corrupt.csv"]["encoding"] == "utf-8"
    assert places(wh, "corrupt.csv") == [(9, "record: invalid_utf8")]
    names = {row["agent_name"] for row in kept(wh, "corrupt.csv").values()}
    assert names == {f"Zoë Ångström {n}" for n in range(20) if n != 7}


def test_a_legacy_encoding_only_in_the_header_is_still_an_export(write: Write) -> None:
    source = sniff(write("header.csv", (LEGACY_HEADER + "\n").encode("cp1252")))
    assert (source.format, source.encoding) == (Format.CSV, "cp1252")


# --- NDJSON: many unknown keys --------------------------------------------------------------


def test_records_with_thousands_of_unknown_keys_are_rejected_alone(write: Write, wh: Path) -> None:
    def lines(prefix: str) -> list[dict[str, Any]]:
        def own(n: int, **more: Any) -> dict[str, Any]:
            return session(n, session_id=f"{prefix}-s{n}", **more)

        wide = own(2, **{f"k{i}": 1 for i in range(5000)})
        just = own(3, **{f"j{i}": {"n": [i]} for i in range(1000)})
        page = {"items": [own(5), own(6, **{f"p{i}": i for i in range(3000)})]}
        return [own(1), wide, just, own(4), page]

    # Many records, each with unknown keys of its own; and unknown values nested deep.
    own = [
        session(n, session_id=f"own-s{n}", **{f"only_{n}": n, "shared": [n, {"deep": None}]})
        | {'q"~/': "é"}
        for n in range(100, 3100)
    ]
    deep = [
        json.dumps(session(n, session_id=f"deep-s{n}"))[:-1]
        + f', "nested": {"[" * depth}1{"]" * depth}}}'
        for n, depth in [(9001, 50), (9002, 400), (9003, 5000)]
    ]
    paths = [write(f"wide.ndjson{gz}", ndjson(lines(f"wide{gz}"))) for gz in PLAIN_AND_GZIP]
    deep_file = ndjson([*deep, session(9, session_id="deep-s9")])
    paths += [write("own.ndjson", ndjson(own)), write("deep.ndjson", deep_file)]
    report = ingest(paths, wh)
    too_many = "record: too_many_fields ({:,} fields the schema does not know, " + (
        "more than a record may have)"
    )
    for gz in PLAIN_AND_GZIP:
        name = f"wide.ndjson{gz}"
        assert report["per_file"][name]["rows_read"] == 6
        found = [
            (r["position"], r["reason"]) for r in rejects(wh) if r["source_file"].endswith(name)
        ]
        assert found == [
            ("line 2", too_many.format(5000)),
            ("line 5, items[1]", too_many.format(3000)),
        ]
        rows = kept(wh, name)
        assert sorted(rows) == ["s1", "s3", "s4", "s5"]
        assert json.loads(rows["s3"]["extra_fields"]) == {f"j{i}": {"n": [i]} for i in range(1000)}
    # The report lists the fields kept, not the thousands of those rejected.
    assert "k1" not in report["unknown_fields"] and "j999" in report["unknown_fields"]
    assert report["per_file"]["own.ndjson"]["rows_accepted"] == 3000
    extra = json.loads(kept(wh, "own.ndjson")["s3099"]["extra_fields"])
    assert extra == {"only_3099": 3099, "shared": [3099, {"deep": None}], 'q"~/': "é"}
    assert report["per_file"]["deep.ndjson"]["rows_read"] == 4
    assert "s9" in kept(wh, "deep.ndjson")


# --- JSON documents that are not NDJSON ---------------------------------------------------


def pretty_variants() -> dict[str, bytes]:
    records = [session(n) for n in range(5)]
    page = {"items": records, "page": 0, "page_size": 25, "total_count": 5}
    items = ",\n".join(json.dumps(r) for r in records)
    rest = ",\n  ".join(json.dumps(r) for r in records[1:])
    first = json.dumps(records[0])
    return {
        "items-on-first-line": (
            '{"items": [' + first + ",\n  " + rest + '\n], "page": 0, "total_count": 5}\n'
        ).encode(),
        "one-item-a-line": ('{"items": [\n' + items + '\n],\n"page": 0}').encode(),
        "array-first-element-on-first-line": ("[" + first + ",\n" + rest + "]").encode(),
        "array-one-element-a-line": ("[\n" + items + "\n]\n").encode(),
        "indent-1-crlf": json.dumps(page, indent=1).replace("\n", "\r\n").encode(),
        "tabs": json.dumps(page, indent="\t").encode(),
        "keys-then-items": json.dumps({"page": 0, "total_count": 5, "items": records}, indent=2)
        .replace('{\n  "page": 0,', '{"page": 0,')
        .encode(),
    }


def test_a_pretty_printed_document_is_one_document(write: Write, wh: Path) -> None:
    paths = [
        write(f"{name}.json{gz}", content)
        for name, content in pretty_variants().items()
        for gz in PLAIN_AND_GZIP
    ]
    # Larger than the head the format is told from (1 MB).
    records = [session(n, agent_name="A" * 300) for n in range(6000)]  # about 3 MB
    text = '{"items": [' + ",\n".join(json.dumps(r) for r in records) + '],\n"page": 0}'
    paths.append(write("big.json", text.encode()))
    for path in paths:
        assert sniff(path).format in (Format.JSON_OBJECT, Format.JSON_ARRAY), path.name
    report = ingest(paths, wh)
    assert report["rows_rejected"] == 0
    for name, figures in report["per_file"].items():
        assert figures["rows_accepted"] == (6000 if name == "big.json" else 5), name


THREE = ndjson([session(n) for n in range(3)])
BROKEN_NDJSON = {
    "broken-first-line": b'{"session_id": "s0", \n' + THREE,
    "broken-page-start": b'{"items": [{"session_id": "s0"},\n' + THREE,
    "broken-array": b"[1, \n" + THREE,
    "broken-last-line": THREE + b'{"broken": \n',
}


def test_ndjson_with_a_broken_line_stays_ndjson(write: Write, wh: Path) -> None:
    paths = [write(f"{name}.ndjson", content) for name, content in BROKEN_NDJSON.items()]
    assert [sniff(path).format for path in paths] == [Format.NDJSON] * len(paths)
    report = ingest(paths, wh)
    for name in BROKEN_NDJSON:
        figures = report["per_file"][f"{name}.ndjson"]
        assert (figures["rows_read"], figures["rows_accepted"]) == (4, 3), name


# --- Records too large --------------------------------------------------------------------


def test_records_beyond_duckdbs_default_size_are_read_and_beyond_ours_rejected(
    write: Write, wh: Path
) -> None:
    big = "d" * (MAX_RECORD_BYTES - (1 << 20))  # above the 4 MB read on a connection alone
    huge = "h" * (MAX_RECORD_BYTES + (1 << 20))
    lines = [session(1), session(2, description=big), session(3, description=huge), session(4)]
    report = ingest([write("large.ndjson", ndjson(lines))], wh)
    assert (report["rows_read"], report["rows_rejected"]) == (4, 1), report
    rows = kept(wh, "large.ndjson")
    assert sorted(rows) == ["s1", "s2", "s4"]
    assert json.loads(rows["s2"]["extra_fields"]) == {"description": big}
    ((line, reason),) = places(wh, "large.ndjson")
    assert line == 3 and reason.startswith("record: record_too_large (")
    assert rejects(wh)[0]["record"].startswith('{"timestamp"')
    assert len(rejects(wh)[0]["record"]) <= PREFIX_BYTES


def test_a_line_far_larger_than_a_record_is_skipped_in_bounded_memory(
    tmp_path: Path, wh: Path
) -> None:
    # 300 MB in one line, gzipped to little: read whole, it alone would take 300 MB and more.
    path = tmp_path / "huge.ndjson.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(ndjson([session(1)]))
        out.write(json.dumps(session(2))[:-1].encode() + b', "description": "')
        for _ in range(300):
            out.write(b"x" * (1 << 20))
        out.write(b'"}\n' + ndjson([session(3)]))
    peak = tmp_path / "peak"
    done = subprocess.run(
        measured([SESSIONS, "ingest", path, "--warehouse", wh, "--json"], peak),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["rows_read"], report["rows_rejected"]) == (3, 1)
    assert places(wh, "huge.ndjson.gz")[0][0] == 2
    peak_mib = int(peak.read_text()) // 1024
    assert peak_mib < 600, f"peak {peak_mib} MiB"


def test_a_csv_field_larger_than_the_parsers_defaults(write: Write, wh: Path) -> None:
    # Above pyarrow's block (1 MB) and Python's csv field limit (128 KiB).
    notes = 'n, with a comma and ""quotes""\n' * 200_000 + "end"
    rows = [f"{T},a,x,1", f'{T},b,"{notes}",2', f"{T},c,y,3"]
    report = ingest([write("wide.csv", csv_text(HEADER, rows).encode())], wh)
    assert (report["rows_read"], report["rows_rejected"]) == (3, 0), report
    assert kept(wh, "wide.csv")["b"]["agent_name"] == notes.replace('""', '"')


# --- The splitter itself: every record counted once, wherever the reads cut ----------------


def split(data: bytes, **options: Any) -> list[tuple[int, bytes, str | None]]:
    out = []
    for records in iter_records(io.BytesIO(data), **options):
        errors = {i: rule for i, rule, _ in records.errors}
        for i, (text, line) in enumerate(
            zip(records.data.to_pylist(), records.line.tolist(), strict=True)
        ):
            out.append((line, text, errors.get(i)))
    return out


@pytest.mark.parametrize("chunk_bytes", [1, 3, 16, 1 << 20])
def test_valid_csv_is_split_as_the_csv_module_reads_it(chunk_bytes: int) -> None:
    rng = random.Random(12)
    values = ["a", 'b"c', "", "x\ny", "q,r", '"', "é", "x\r\ny", '""', " "]
    for _ in range(200):
        rows = [[rng.choice(values) for _ in range(3)] for _ in range(rng.randint(1, 12))]
        out = io.StringIO()
        csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"])).writerows(rows)
        records = split(out.getvalue().encode(), quoted=True, chunk_bytes=chunk_bytes)
        assert all(rule is None for _, _, rule in records)
        parsed = [
            next(csv.reader(io.StringIO(text.decode(), newline=""))) for _, text, _ in records
        ]
        assert parsed == rows


@pytest.mark.parametrize("chunk_bytes", [1, 5, 64, 1 << 20])
def test_stray_quotes_and_large_records_are_counted_with_their_lines(chunk_bytes: int) -> None:
    data = (
        b"h1,h2\n"
        b'1,12" monitor\n'  # line 2
        b'2,"open\n'  # line 3: never closes
        b"3,x\n"
        b'4,"multi\nline"\n'  # lines 5-6
        b"5," + b"L" * 100 + b"\n"  # line 7: too large
        b'6,"also open\n'  # line 8: never closes, and more than a record may hold after it
         + b"7,y\n" * 20
    )
    records = split(data, quoted=True, chunk_bytes=chunk_bytes, max_record_bytes=60)
    assert [(line, rule) for line, _, rule in records][:8] == [
        (1, None),
        (2, None),
        (3, "csv_unbalanced_quote"),
        (4, None),
        (5, None),
        (7, "record_too_large"),
        (8, "csv_unbalanced_quote"),
        (9, None),
    ]
    assert len(records) == 7 + 20
    assert [line for line, _, _ in records[7:]] == list(range(9, 29))


@pytest.mark.parametrize("chunk_bytes", [1, 7, 1 << 20])
def test_a_record_too_large_keeps_its_start_and_the_next_lines(chunk_bytes: int) -> None:
    data = b'{"a": 1}\n' + b'{"x": "' + "é".encode() * 500 + b'"}\n\n{"b": 2}\n' + b"z" * 90
    records = split(data, chunk_bytes=chunk_bytes, max_record_bytes=50)
    assert [(line, rule) for line, _, rule in records] == [
        (1, None),
        (2, "record_too_large"),
        (4, None),
        (5, "record_too_large"),
    ]
    prefix = records[1][1]
    assert prefix.startswith(b'{"x": "') and len(prefix) <= PREFIX_BYTES
    prefix.decode()  # not cut inside a character


@pytest.mark.parametrize(
    ("header", "named"),
    [("timestamp,session_id,sessionId", "'session_id'"), ("timestamp,,agent_name,", "''")],
)
def test_a_csv_header_naming_a_field_twice_says_which(
    write: Write, wh: Path, header: str, named: str
) -> None:
    path = write("twice.csv", f"{header}\n{T},s1,a,b\n".encode())
    done = run_cli("ingest", path, "--warehouse", wh)
    assert done.returncode == 2, done.stderr
    assert f"the CSV header names {named} more than once" in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2 and "Traceback" not in done.stderr
