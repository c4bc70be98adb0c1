"""Every export format, recognised from its content, gives the same stored sessions."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ingest import ingest
from pipeline.read import Format, sniff
from tests.conftest import ndjson, rejects, session, stored

RECORDS = [session(n) for n in range(5)]


def api_page(records: list[dict], page: int = 0, size: int = 25, total: int | None = None) -> dict:
    total = len(records) if total is None else total
    return {
        "items": records,
        "page": page,
        "page_size": size,
        "total_pages": -(-total // size),
        "total_count": total,
    }


def as_csv(records: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def camel(record: dict) -> dict:
    def to_camel(key: str) -> str:
        head, *rest = key.split("_")
        return head + "".join(p.capitalize() for p in rest)

    return {to_camel(k): v for k, v in record.items()}


FORMATS: dict[str, tuple[str, bytes]] = {
    "api page": ("page.json", json.dumps(api_page(RECORDS)).encode()),
    "api page pretty": ("page.json", json.dumps(api_page(RECORDS), indent=2).encode()),
    "array of pages": (
        "pages.json",
        json.dumps([api_page(RECORDS[:3], 0, 3, 5), api_page(RECORDS[3:], 1, 3, 5)]).encode(),
    ),
    "array of sessions": ("sessions.json", json.dumps(RECORDS).encode()),
    "ndjson": ("sessions.ndjson", ndjson(RECORDS)),
    "ndjson of pages": (
        "pages.ndjson",
        ndjson(
            [
                api_page(RECORDS[:2], 0, 2, 5),
                api_page(RECORDS[2:4], 1, 2, 5),
                api_page(RECORDS[4:], 2, 2, 5),
            ]
        ),
    ),
    "csv": ("console.csv", as_csv(RECORDS).encode()),
    "camelCase ndjson": ("sdk.ndjson", ndjson([camel(r) for r in RECORDS])),
    "camelCase csv": ("sdk.csv", as_csv([camel(r) for r in RECORDS]).encode()),
    "bom and crlf ndjson": (
        "bom.ndjson",
        b"\xef\xbb\xbf" + ndjson(RECORDS).replace(b"\n", b"\r\n"),
    ),
    "bom and crlf csv": (
        "bom.csv",
        b"\xef\xbb\xbf" + as_csv(RECORDS).encode().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
    ),
}


def comparable(rows: list[dict]) -> list[tuple]:
    keep = ("session_id", "timestamp", "agent_id", "duration", "prompt_version_number", "is_test")
    return [tuple(r[k] for k in keep) for r in rows]


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    tmp = tmp_path_factory.mktemp("expected")
    (tmp / "x.ndjson").write_bytes(ndjson(RECORDS))
    ingest([str(tmp / "x.ndjson")], tmp / "wh")
    return comparable(stored(tmp / "wh"))


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("kind", list(FORMATS))
def test_every_format_gives_the_same_sessions(
    kind: str, gzipped: bool, write: Callable[[str, bytes], Path], wh: Path, expected: list[tuple]
) -> None:
    name, content = FORMATS[kind]
    path = write(name + (".gz" if gzipped else ""), content)
    report = ingest([str(path)], wh)
    assert report.rows_read == 5 and report.rows_accepted == 5, report.to_dict()
    assert report.warnings == []
    assert comparable(stored(wh)) == expected


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (ndjson(RECORDS), Format.NDJSON),
        (json.dumps(RECORDS).encode(), Format.JSON_ARRAY),
        (json.dumps(api_page(RECORDS), indent=2).encode(), Format.JSON_OBJECT),
        (as_csv(RECORDS).encode(), Format.CSV),
        (b'{"session_id": "s0", \n' + ndjson(RECORDS), Format.NDJSON),  # a broken first line
        (b'{"session_id": "s0", ', Format.NDJSON),  # one broken line is a bad row, not a file
        (b"[0]\n" + ndjson(RECORDS), Format.NDJSON),  # a first line that is not an object
        (b"", Format.EMPTY),
        (b"\n\n  \n", Format.EMPTY),
    ],
    ids=[
        "ndjson",
        "array",
        "page",
        "csv",
        "ndjson-broken-first",
        "one-broken-line",
        "ndjson-array-first",
        "empty",
        "blank",
    ],
)
def test_format_is_told_from_content_not_name(
    content: bytes, fmt: Format, write: Callable[[str, bytes], Path]
) -> None:
    # Misleading names: the content decides.
    assert sniff(write("export.csv", content)).format is fmt
    assert sniff(write("export.txt", content)).format is fmt


def test_gzip_content_in_a_file_not_named_gz(write: Callable[[str, bytes], Path], wh: Path) -> None:
    import gzip

    path = write("export.json", gzip.compress(ndjson(RECORDS)))
    assert sniff(path).gzipped
    assert ingest([str(path)], wh).rows_accepted == 5


def test_plain_text_in_a_file_named_gz(tmp_path: Path, wh: Path) -> None:
    path = tmp_path / "export.ndjson.gz"
    path.write_bytes(ndjson(RECORDS))  # not compressed, whatever the name says
    assert not sniff(path).gzipped
    assert ingest([str(path)], wh).rows_accepted == 5


def test_file_name_with_glob_characters(tmp_path: Path, wh: Path) -> None:
    path = tmp_path / "export[1]*.json"
    path.write_text(json.dumps(RECORDS))
    assert ingest([str(path)], wh).rows_accepted == 5


def _page_with_items_twice(first: list[dict], second: list[dict]) -> str:
    # A dict cannot hold a key twice: the page's text is written out.
    return '{"items": ' + json.dumps(first) + ', "page": 0, "items": ' + json.dumps(second) + "}"


@pytest.mark.parametrize("layout", ["document", "one page", "NDJSON line over 1 MB"])
def test_a_page_naming_items_twice_loses_neither_list(
    write: Callable[[str, bytes], Path], wh: Path, layout: str
) -> None:
    """The items of the first `items` are read; the page with the other list is one rejected
    row (`items: duplicate_key`) that keeps it, as a page read whole is: nothing dropped."""
    many = 4_000 if layout.startswith("NDJSON") else 2
    first = [session(n) for n in range(many)]
    second = [session(10_000 + n) for n in range(3)]
    page = _page_with_items_twice(first, second)
    if layout == "document":
        path = write("pages.json", ("[" + page + "]").encode())
    elif layout == "one page":
        path = write("page.json", page.encode())
    else:
        path = write("pages.ndjson", (page + "\n").encode())
        assert path.stat().st_size > 1 << 20  # read item by item, as a document is
    report = ingest([str(path)], wh)
    if layout == "one page":
        # A single object is one record, read whole: the page is the rejected row.
        assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (1, 0, 1)
        assert [r["session_id"] for r in stored(wh)] == []
    else:
        assert (report.rows_read, report.rows_accepted, report.rows_rejected) == (many + 1, many, 1)
        assert sorted(r["session_id"] for r in stored(wh)) == sorted(s["session_id"] for s in first)
    (reject,) = rejects(wh)
    assert "items: duplicate_key" in reject["reason"]
    for lost in second:
        assert f'"session_id": "{lost["session_id"]}"' in reject["record"]
