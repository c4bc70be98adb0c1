"""Ingesting the same content twice changes nothing, and says so; --force applies it again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from pipeline import ingest as ingest_module
from pipeline.errors import InputError
from pipeline.ingest import Options, ingest
from tests.conftest import ndjson, run_cli, session, tree

Write = Callable[[str, bytes], Path]


def test_the_same_file_again_changes_no_file(write: Write, wh: Path, tmp_path: Path) -> None:
    path = write("a.ndjson", ndjson([session(n) for n in range(5)] + ["broken"]))
    ingest([str(path)], wh)
    before = tree(wh)
    copy = tmp_path / "renamed.ndjson"  # same content under another name: still the same
    copy.write_bytes(path.read_bytes())
    result = run_cli("ingest", path, copy, "-w", wh, "--json")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["committed"] is False and report["rows_read"] == 0
    assert [f["path"] for f in report["files_skipped"]] == [str(path), str(copy)]
    assert tree(wh) == before
    text = run_cli("ingest", path, "-w", wh)
    assert "Skipped" in text.stdout and "Nothing to do" in text.stdout


def test_force_applies_it_again(write: Write, wh: Path) -> None:
    path = write("a.ndjson", ndjson([session(n) for n in range(5)]))
    ingest([str(path)], wh)
    report = ingest([str(path)], wh, Options(force=True))
    assert report.committed and report.sessions_unchanged == 5 and report.partitions_written == 0


def test_only_new_files_of_a_folder_are_read(write: Write, wh: Path) -> None:
    write("a.ndjson", ndjson([session(1)]))
    ingest([str(wh.parent / "exports")], wh)
    write("b.ndjson", ndjson([session(2)]))
    report = ingest([str(wh.parent / "exports")], wh)
    assert [f.path.rsplit("/", 1)[1] for f in report.files] == ["b.ndjson"]
    assert len(report.skipped) == 1 and report.sessions_new == 1


def test_the_manifest_records_each_ingest(write: Write, wh: Path) -> None:
    ingest([str(write("a.ndjson", ndjson([session(1), "bad"])))], wh)
    ingest([str(write("b.ndjson", ndjson([session(2)])))], wh)
    # The manifest as of the latest commit: the file that commit names.
    (name,) = [e["sessions.manifest"] for e in DeltaTable(str(wh / "sessions")).history(1)]
    body = json.loads((wh / name).read_text())
    assert body["pii_mode"] == "pseudonymise"
    assert [run["rows_read"] for run in body["ingests"]] == [2, 1]
    assert [(f["rows_accepted"], f["rows_rejected"]) for f in body["ingests"][0]["files"]] == [
        (1, 1)
    ]
    assert all(len(f["sha256"]) == 64 for run in body["ingests"] for f in run["files"])


def _manifest(wh: Path) -> tuple[Path, dict]:
    (name,) = [e["sessions.manifest"] for e in DeltaTable(str(wh / "sessions")).history(1)]
    return wh / name, json.loads((wh / name).read_text())


def test_a_file_hashed_while_read_is_recorded_by_its_sha256(write: Write, wh: Path) -> None:
    # A file of a size no ingested file has cannot be a repeat: it is hashed beside its read,
    # and the manifest must hold the same hash and size a hash before the read would give.
    first = write("a.ndjson", ndjson([session(n) for n in range(3)]))
    other = write("b.ndjson", ndjson([session(n) for n in range(40)] + ["broken"]))
    ingest([str(first)], wh)
    report = ingest([str(other)], wh)
    assert report.committed
    _, body = _manifest(wh)
    recorded = {f["path"]: f for run in body["ingests"] for f in run["files"]}
    for path in (first, other):
        assert recorded[str(path)]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert recorded[str(path)]["bytes"] == path.stat().st_size
    again = ingest([str(other)], wh)
    assert not again.files and [s.path for s in again.skipped] == [str(other)]


def test_a_repeat_is_found_in_a_manifest_that_kept_no_sizes(
    write: Write, wh: Path, tmp_path: Path
) -> None:
    # Manifests written before sizes were kept: any file may be a repeat, so every file is
    # hashed before it is read, as before.
    path = write("a.ndjson", ndjson([session(n) for n in range(5)]))
    ingest([str(path)], wh)
    where, body = _manifest(wh)
    for run in body["ingests"]:
        for entry in run["files"]:
            del entry["bytes"]
    where.write_text(json.dumps(body))
    copy = tmp_path / "copy.ndjson"
    copy.write_bytes(path.read_bytes())
    report = ingest([str(copy)], wh)
    assert not report.files and [s.path for s in report.skipped] == [str(copy)]


@pytest.mark.parametrize("hashed", ["beside the read", "before the read"])
def test_a_file_that_changes_while_it_is_read_is_not_committed(
    write: Write, wh: Path, monkeypatch: pytest.MonkeyPatch, hashed: str
) -> None:
    # An export still being written (a download, an export job): its rows and its hash could
    # be of two versions, and the manifest would name a file that does not exist. Whether the
    # file is hashed as it is read (a size no ingested file has) or before (a size one has).
    first = write("a.ndjson", ndjson([session(n) for n in range(3)]))
    ingest([str(first)], wh)
    before = tree(wh)
    count = 3 if hashed == "before the read" else 4
    growing = write("b.ndjson", ndjson([session(n + 3) for n in range(count)]))
    assert (growing.stat().st_size == first.stat().st_size) == (hashed == "before the read")
    real = ingest_module._ingest_file

    def then_grows(*args: Any, **kwargs: Any) -> Any:
        stats = real(*args, **kwargs)
        with growing.open("ab") as f:
            f.write(ndjson([session(99)]))
        return stats

    monkeypatch.setattr(ingest_module, "_ingest_file", then_grows)
    with pytest.raises(InputError, match="changed while it was read") as caught:
        ingest([str(growing)], wh)
    assert caught.value.exit_code == 2 and caught.value.path == str(growing)
    assert tree(wh) == before
    monkeypatch.setattr(ingest_module, "_ingest_file", real)
    # Once complete, it is ingested whole, under its final hash and size.
    report = ingest([str(growing)], wh)
    assert report.committed and report.rows_read == count + 1
    _, body = _manifest(wh)
    entry = body["ingests"][-1]["files"][0]
    assert entry["sha256"] == hashlib.sha256(growing.read_bytes()).hexdigest()
    assert entry["bytes"] == growing.stat().st_size
