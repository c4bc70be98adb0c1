"""The fast readers' independent count of a file's lines, and the file's hash in the same pass.

The count must be the exact reader's numbering (every newline, and a last line without one,
a leading byte order mark unseen), and the hash the SHA-256 of the bytes as received, BOM
and all: the manifest names a file by it, and a file read once must be known again.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.read import fast, readers, sniff
from pipeline.read.source import BOM, Format, Source


def _exact_count(text: bytes) -> int:
    """Lines as the exact reader numbers them (`text` as the readers see it)."""
    return text.count(b"\n") + (not text.endswith(b"\n") and len(text) > 0)


def _counted(
    source: Source, refused: tuple[bytes, ...] = (), hashed: bool = False
) -> fast.LineCounter:
    counter = fast.LineCounter(source, refused, hashed=hashed)
    counter.start()
    counter.join()
    return counter


# Text with what matters to a count: newlines, carriage returns, a quote beside a space, and
# a mark that looks like a BOM inside the text.
_PIECES = st.sampled_from([b"\n", b"\r\n", b"\r", b" ", b'"', b"x", b"{}", BOM, b"\xc3\xa9"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.lists(_PIECES, max_size=40).map(b"".join),
    bom=st.booleans(),
    block=st.sampled_from([1, 2, 3, 5, 64, 1 << 20]),
)
def test_the_count_and_the_hash_of_a_plain_file_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes, bom: bool, block: int
) -> None:
    # Blocks as small as a byte: a BOM, a CRLF or a refused pair split over two reads.
    monkeypatch.setattr(fast, "_COUNT_BLOCK", block)
    raw = (BOM if bom else b"") + body
    path = tmp_path / "f.ndjson"
    path.write_bytes(raw)
    source = Source(path, Format.NDJSON, gzipped=False)
    # What the readers read: the bytes but a leading mark (the body may begin with one too).
    text = raw.removeprefix(BOM)
    refused = (b' "', b'" ')
    expected_found = next((r for r in refused if r in text), None)
    for hashed in (False, True):
        counter = _counted(source, refused, hashed)
        if expected_found is None:
            assert counter.result() == _exact_count(text)
        else:
            with pytest.raises(fast.Fallback, match="refuses"):
                counter.result()
        if hashed:
            assert counter.sha256() == hashlib.sha256(raw).hexdigest()
        # Without refusals, the count alone.
        assert _counted(source, (), hashed).result() == _exact_count(text)


def test_a_gzipped_file_is_counted_on_its_text_and_not_hashed_in_the_pass(tmp_path: Path) -> None:
    text = b'{"a": 1}\n{"a": 2}\n{"a": 3}'
    path = tmp_path / "f.ndjson.gz"
    path.write_bytes(gzip.compress(BOM + text))
    source = sniff(path)
    assert source.gzipped and not fast.plain(source)
    assert _counted(source).result() == 3
    with pytest.raises(ValueError, match="plain"):
        fast.LineCounter(source, hashed=True)


def test_a_file_in_another_encoding_is_counted_on_its_text(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes("session_id,agent_name\n1,caf\u00e9\n2,na\u00efve\n".encode("utf-16"))
    source = sniff(path)
    assert source.encoding == "utf-16" and not fast.plain(source)
    assert _counted(source).result() == 3


def test_a_file_gone_under_the_pass_is_the_inputs_fault(tmp_path: Path) -> None:
    path = tmp_path / "f.ndjson"
    path.write_bytes(b'{"a": 1}\n')
    source = sniff(path)
    path.unlink()
    counter = _counted(source, hashed=True)
    with pytest.raises(fast.Fallback, match="could not be counted"):
        counter.result()
    with pytest.raises(InputError, match="cannot read"):
        counter.sha256()


def test_the_readers_count_refuses_for_a_csv_what_its_fast_reader_refuses(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'session_id,agent_name\n1, "x"\n')
    counter = readers.line_counter(sniff(path), hashed=True)
    counter.start()
    with pytest.raises(fast.Fallback, match="refuses"):
        counter.result()
    assert counter.sha256() == hashlib.sha256(path.read_bytes()).hexdigest()
