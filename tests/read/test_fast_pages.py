"""The fast reader of API pages (one a line) stores exactly what the exact reader stores.

As in test_fast_readers.py: each file is ingested fast and exact (`SESSIONS_EXACT_READER`)
into two warehouses; sessions, quarantine and report (warnings included) must be the same,
and the report says which reader read the file.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.read import fast_pages, readers, sniff
from schemas import SESSION_FIELDS
from tests.read.test_fast_readers import (
    _lines,
    _ndjson,
    _usual,
    _usual_record,
    both_ways,
    read_batches,
    records,
    stored,
)


@st.composite
def pages(draw: st.DrawFn, camel: bool) -> object:
    """An API page as the API writes it, now and then with odd items or counts that do not
    agree; or a line that is not a page at all."""
    kind = draw(st.sampled_from(["page"] * 8 + ["session", "junk", "not a list", "twice"]))
    if kind == "session":
        return draw(records(camel))
    if kind == "junk":
        return draw(st.sampled_from(['{"items": [', "[1, 2]", "null", "{}", "   ", ""]))
    if kind == "not a list":
        return {"items": draw(st.sampled_from([{"a": 1}, "[]", None, 5])), "page": 0}
    usual = draw(st.integers(0, 4)) > 0
    clean = st.integers(0, 50).map(
        lambda i: {(f.camel if camel else f.name): _usual(f.name, i) for f in SESSION_FIELDS}
    )
    odd = records(camel) | st.sampled_from([[1], 5, "text", None])
    items = draw(st.lists(clean if usual else odd, max_size=6))
    page: dict[str, object] = {"items": items}
    counts = draw(st.sampled_from(["agree", "none", "size too small", "total off", "text"]))
    size = max(len(items), 1)
    if counts == "agree":
        page.update(page=1, page_size=size, total_count=size + len(items))
    elif counts == "size too small":
        page.update(page=0, page_size=max(len(items) - 1, 0), total_count=99)
    elif counts == "total off":
        page.update(page=2, page_size=size, total_count=3)
    elif counts == "text":
        page.update(page="one", page_size=str(size), total_count=None)
    if kind == "twice":
        # `items` named twice: a record with a key given twice, not a page.
        text = json.dumps(page)
        return text[:-1] + ', "items": []}'
    return page


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(camel=st.booleans(), compact=st.booleans(), data=st.data())
def test_pages_fast_and_exact_store_the_same(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    camel: bool,
    compact: bool,
    data: st.DataObject,
) -> None:
    tmp = tmp_path_factory.mktemp("pages")
    first = {"items": [_usual_record(camel)], "page": 0, "page_size": 1, "total_count": 9}
    lines = [first, *data.draw(st.lists(pages(camel), min_size=1, max_size=12))]
    path = tmp / "pages.ndjson"
    path.write_bytes(_ndjson(lines, compact, crlf=False))
    fast_files, _ = both_ways([path], tmp, monkeypatch)
    blank_line = any(isinstance(i, str) and not i.strip() for i in lines)
    if not blank_line:
        # However odd its lines, a file whose first line is a page is this reader's.
        assert fast_files[0]["reader"] == "fast", fast_files[0]


def _page(n: int, seed: int, page: int = 0) -> dict[str, object]:
    return {"items": _lines(n, seed), "page": page, "page_size": n, "total_count": 10 * n}


@pytest.mark.parametrize(
    ("case", "reader_used"),
    [
        ("clean", "fast"),
        ("gzip", "fast"),
        ("crlf", "fast"),
        ("blank lines", "fast"),
        ("a line not json", "fast"),
        ("an odd value in one item", "fast"),
        ("counts disagree", "fast"),
        ("blanks at values' ends", "fast"),
        ("a page larger than a line may be", "exact"),
        ("not utf-8", "exact"),
    ],
)
def test_page_files_the_fast_reader_declines_or_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, reader_used: str
) -> None:
    lines: list[object] = [_page(50, seed, page=seed) for seed in range(8)]
    name = "pages.ndjson"
    if case == "an odd value in one item":
        items = lines[3]["items"]  # type: ignore[index]
        items[7] = {**items[7], "duration": "12,5"}
    elif case == "counts disagree":
        lines[2] = {**lines[2], "page_size": 40}  # type: ignore[dict-item]
        lines[5] = {"items": [], "page": 0, "page_size": 10, "total_count": 5}
    elif case == "a page larger than a line may be":
        lines[4] = _page(1500, 99, page=4)
    elif case == "a line not json":
        lines.insert(3, "{not json")
    elif case == "blanks at values' ends":
        # Each on a page of its own, the only blank there: a value that starts with a blank is
        # told by its first character, one that ends with one by its closing quote. (Sessions
        # of their own: none superseded by a later delivery.)
        for at, blank in enumerate([" ", "  ", "\t", "\xa0", "\u2003"]):
            items = lines[at]["items"]  # type: ignore[index]
            items[3] = {**items[3], "agent_name": f"{blank}Front desk", "session_id": f"b{at}"}
            items = lines[7 - at % 3]["items"]  # type: ignore[index]
            items[9 + at] = {
                **items[9 + at],
                "prompt_name": f"Triage{blank}",
                "session_id": f"e{at}",
            }
    body = _ndjson(lines, True, crlf=case == "crlf")
    if case == "gzip":
        body, name = gzip.compress(body), "pages.ndjson.gz"
    elif case == "blank lines":
        body = body.replace(b"\n", b"\n\n", 2)
    elif case == "not utf-8":
        body = body.replace(b"agent-", b"agent-\xff", 1)
    path = tmp_path / name
    path.write_bytes(body)
    assert fast_pages.eligible(sniff(path)) == (case != "not utf-8")
    fast_files, exact_files = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == reader_used, fast_files[0]
    if case == "counts disagree":
        on_pages = [w for w in exact_files[0]["warnings"] if w.startswith("line ")]
        assert len(on_pages) == 2, exact_files[0]["warnings"]
    if case == "an odd value in one item":
        assert fast_files[0]["rows_rejected"] == 1
    if case == "blanks at values' ends":
        sessions, _ = stored(tmp_path / "warehouse-0")
        for name in ("agent_name", "prompt_name"):
            assert not any(v != v.strip() for v in sessions[name].drop_nulls()), name


def test_items_keep_their_place_in_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The latest delivery wins by its place: a later page's item over an earlier page's, and
    # within a page a later item over an earlier one.
    first = _lines(30, seed=1)
    again = [dict(r, duration=float(i)) for i, r in enumerate(first[:10])]
    last = [dict(r, duration=100.0 + i) for i, r in enumerate(first[:3])]
    lines = [
        {"items": first, "page": 0, "page_size": 40, "total_count": 70},
        {"items": [*again, *last], "page": 1, "page_size": 40, "total_count": 70},
    ]
    path = tmp_path / "pages.ndjson"
    path.write_bytes(_ndjson(lines, True, False))
    assert readers.attempts(sniff(path))[0] == readers.PAGES
    fast_files, _ = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == "fast"
    sessions, _ = stored(tmp_path / "warehouse-0")
    latest = {r["session_id"]: r["duration"] for r in [*first, *again, *last]}
    assert dict(zip(sessions["session_id"], sessions["duration"], strict=True)) == latest


@pytest.mark.parametrize(
    ("first", "eligible"),
    [
        (_lines(1)[0], False),  # a session: the NDJSON fast reader's
        ({"items": [], "page": 0}, False),  # no item to take the usual keys from
        ({"items": [{**_lines(1)[0], "brand_new": 1}]}, False),  # a key the schema lacks
        ({"items": [5]}, False),
        ({"items": {"a": 1}}, False),
        ({"page": 0, "items": _lines(2)}, True),
    ],
)
def test_which_files_this_reader_tries(tmp_path: Path, first: object, eligible: bool) -> None:
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson([first, _page(3, 1)], True, False))
    assert fast_pages.eligible(sniff(path)) is eligible


def test_each_item_comes_with_its_line_element_and_place_in_the_page(tmp_path: Path) -> None:
    lines: list[object] = [_page(n, seed) for seed, n in enumerate([5, 0, 7, 1, 3])]
    lines.insert(2, "")  # a blank line: counted as a line, not as an element
    path = tmp_path / "pages.ndjson"
    path.write_bytes(_ndjson(lines, True, False))
    batches = read_batches(path, readers.PAGES, tmp_path)
    assert {kind for kind, _ in batches} == {"typed"}
    got = [
        (row["session_id"], row["_line"], row["_element"], row["_item"])
        for _, frame in batches
        for row in frame.iter_rows(named=True)
    ]
    expected = []
    for element, (number, line) in enumerate((n, t) for n, t in enumerate(lines, 1) if t):
        for item, record in enumerate(line["items"]):  # type: ignore[index]
            expected.append((record["session_id"], number, element, item))
    assert got == expected


@pytest.mark.parametrize(
    "counts",
    [
        {},
        {"page_size": 50},
        {"page": 0, "page_size": 50},
        {"page": None, "page_size": None, "total_count": None},
        {"page": "first", "page_size": 50, "total_count": 10},
    ],
)
def test_a_page_without_all_its_counts_is_typed_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: dict[str, object]
) -> None:
    # The exact reader checks a page's counts only where it has them all (and `page_size`
    # alone against its items): nothing to warn of, so nothing to send its way.
    lines: list[object] = [{"items": _lines(50, seed), **counts} for seed in range(4)]
    path = tmp_path / "pages.ndjson"
    path.write_bytes(_ndjson(lines, True, False))
    batches = read_batches(path, readers.PAGES, tmp_path)
    assert {kind for kind, _ in batches} == {"typed"}
    assert sum(len(frame) for _, frame in batches) == 200
    fast_files, exact_files = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == "fast"
    assert not [w for w in exact_files[0]["warnings"] if w.startswith("line ")]  # none of pages


def test_a_line_naming_items_twice_is_a_record_and_no_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its counts are not a page's: no warning about them, whichever reader; it is rejected
    # for its key given twice.
    twice = '{"items": [], "page": 2, "page_size": 1, "total_count": 3, "items": []}'
    path = tmp_path / "pages.ndjson"
    path.write_bytes(_ndjson([_page(2, 1), twice, _page(2, 2)], True, False))
    fast_files, exact_files = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == "fast"
    assert not [w for w in exact_files[0]["warnings"] if w.startswith("line 2")]
    assert exact_files[0]["rows_rejected"] == 1


@pytest.mark.parametrize("first", ["page", "session"])
def test_a_line_nested_deeper_than_python_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    # Python's parser gives up on it (RecursionError) where the fast readers look at the
    # file's head: read tolerant, the same rows as the exact reader, no internal error.
    deep = "[" * 1100 + "]" * 1100
    head: object = _page(3, 1) if first == "page" else _lines(1)[0]
    path = tmp_path / "export.ndjson"
    path.write_bytes(_ndjson([head, deep, _page(2, 2)], True, False))
    fast_files, _ = both_ways([path], tmp_path, monkeypatch)
    assert fast_files[0]["reader"] == "fast"
    assert fast_files[0]["rows_rejected"] == 1
