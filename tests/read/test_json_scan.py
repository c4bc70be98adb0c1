"""The JSON document scanner cuts every document into the values a parser finds in it, in any
block size, and refuses a document whose outline is broken."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.read import json_scan
from pipeline.read.json_scan import Malformed, scan

# Strings with the bytes that could fool a scanner: quotes, backslashes, brackets, commas.
tricky = st.text(alphabet='ab"\\[]{},: é\n', max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "items", 'b"\\', "page"]), inner, max_size=3)
    ),
    max_leaves=10,
)


def cut(content: bytes, *, array: bool, block: int) -> list[tuple[Any, int, int]]:
    found = []
    for batch in scan(io.BytesIO(content), array=array, block_bytes=block):
        texts = zip(batch.texts, batch.elements, batch.items, strict=True)
        found += [(json.loads(text), element, item) for text, element, item in texts]
    return found


def expected(elements: list[Any]) -> list[tuple[Any, int, int]]:
    """Each element, or the items of each element that is an API page."""
    found = []
    for number, value in enumerate(elements):
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            found += [(item, number, i) for i, item in enumerate(value["items"])]
        else:
            found.append((value, number, -1))
    return found


@settings(max_examples=300, deadline=None)
@given(
    elements=st.lists(values, max_size=5),
    block=st.integers(1, 20),
    indent=st.sampled_from([None, 1]),
)
def test_an_array_is_cut_into_its_elements_and_page_items(
    elements: list[Any], block: int, indent: int | None
) -> None:
    content = json.dumps(elements, indent=indent).encode()
    assert cut(content, array=True, block=block) == expected(elements)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(values, max_size=5), block=st.integers(1, 20), pretty=st.booleans())
def test_a_page_document_is_cut_into_its_items(items: list[Any], block: int, pretty: bool) -> None:
    page = {"page": 0, "items": items, "total_count": 9}
    content = json.dumps(page, indent=1 if pretty else None).encode()
    assert cut(content, array=False, block=block) == expected([page])


@pytest.mark.parametrize(
    ("content", "array"),
    [
        (b'[{"a": 1}, {"b": ', True),  # cut off
        (b'[{"a": "open string]', True),
        (b'[{"a": 1}}', True),  # closes what is not open
        (b"[1,,2]", True),  # an empty element
        (b"[1,]", True),
        (b"[1] [2]", True),  # content after the array
        (b'{"items": [1,,2]}', False),
        (b'{"items": [1, 2}', False),
    ],
)
def test_a_broken_outline_is_malformed(content: bytes, array: bool) -> None:
    for block in (1, 3, 1000):
        with pytest.raises(Malformed):
            cut(content, array=array, block=block)


def test_a_text_too_large_is_kept_as_its_first_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_scan, "MAX_TEXT_BYTES", 30)
    monkeypatch.setattr(json_scan, "PREVIEW_BYTES", 8)
    content = b'[{"a": "' + b"x" * 100 + b'"}, {"b": 1}, "' + b"y" * 40 + b'"]'
    for block in (1, 7, 1000):
        found = [
            (text, batch.too_large.get(i))
            for batch in scan(io.BytesIO(content), array=True, block_bytes=block)
            for i, text in enumerate(batch.texts)
        ]
        assert found == [(b'{"a": "x', 109), (b'{"b": 1}', None), (b'"yyyyyyy', 42)]
