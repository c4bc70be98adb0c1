"""The manifest: what each committed ingest read, when, with which counts, and how the
warehouse treats caller identities. Each ingest writes the whole manifest as a new file,
`manifests/<run>.json`, before its commit; the sessions commit names it, so that the
manifest of a version is the one its commit names, and a run that did not commit leaves
only a file that nothing names."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import WarehouseError, unreadable
from pipeline.store.location import Warehouse

FOLDER = "manifests"
VERSION = 1


@dataclass
class Manifest:
    pii_mode: str | None = None
    key_fingerprint: str | None = None
    ingests: list[dict[str, Any]] = field(default_factory=list)

    def ingested(self) -> dict[str, dict[str, Any]]:
        """Content hash -> the ingest (and file entry) that committed it, the latest last."""
        found: dict[str, dict[str, Any]] = {}
        for run in self.ingests:
            for entry in run["files"]:
                found[entry["sha256"]] = {"run_id": run["run_id"], "at": run["finished"], **entry}
        return found

    def sizes(self) -> set[int] | None:
        """The sizes of every file ingested, or None where an entry does not say (written
        before sizes were kept): then any file may be a repeat."""
        found: set[int] = set()
        for run in self.ingests:
            for entry in run["files"]:
                if not isinstance(entry.get("bytes"), int):
                    return None
                found.add(entry["bytes"])
        return found

    def to_json(self) -> str:
        body = {
            "version": VERSION,
            "pii_mode": self.pii_mode,
            "key_fingerprint": self.key_fingerprint,
            "ingests": self.ingests,
        }
        return json.dumps(body, indent=1) + "\n"


def read(wh: Warehouse, relative: str | None) -> Manifest:
    """The manifest at `relative` (as a commit names it); an empty one for None."""
    if relative is None:
        return Manifest()
    fs, root = wh.filesystem()
    path = f"{root}/{relative}"
    try:
        with fs.open_input_stream(path) as stream:
            body = json.loads(stream.read())
    except (OSError, ValueError) as exc:
        raise WarehouseError(f"cannot read the manifest {wh}/{relative}: {exc}") from None
    if (problem := _damage(body)) is not None:
        raise WarehouseError(
            f"the manifest {wh}/{relative} is damaged ({problem}): restore it from a backup "
            "(the sessions commit names it)"
        )
    return Manifest(body.get("pii_mode"), body.get("key_fingerprint"), body.get("ingests", []))


def _damage(body: object) -> str | None:
    """What in a manifest's JSON is not as `Manifest` writes it, if anything: its readers
    index every field they use."""
    if not isinstance(body, dict):
        return "not an object"
    for name in ("pii_mode", "key_fingerprint"):
        if not isinstance(body.get(name), str | None):
            return f"{name} is not text"
    ingests = body.get("ingests", [])
    if not isinstance(ingests, list):
        return "ingests is not a list"
    for run in ingests:
        if not isinstance(run, dict) or not isinstance(run.get("run_id"), str):
            return "an ingest without its run_id"
        if not isinstance(run.get("files"), list) or not isinstance(run.get("finished"), str):
            return f"ingest {run['run_id']} without its files or its time"
        for entry in run["files"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                return f"a file of ingest {run['run_id']} without its sha256"
    return None


def write(manifest: Manifest, wh: Warehouse, run_id: str) -> str:
    """Write the manifest as of run `run_id`; the path its commit names."""
    relative = f"{FOLDER}/{run_id}.json"
    fs, root = wh.filesystem()
    fs.create_dir(f"{root}/{FOLDER}", recursive=True)
    # Written under its own name, before the commit that names it: never half read.
    with fs.open_output_stream(f"{root}/{relative}") as stream:
        stream.write(manifest.to_json().encode())
    return relative


def runs(manifest: Manifest) -> list[str]:
    """The runs the manifest says committed."""
    return [str(run["run_id"]) for run in manifest.ingests]


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, as received (compressed or not)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Hashing(threading.Thread):
    """`file_hash` of a file, beside its reading: hashlib lets go of the GIL for each block,
    so the hash takes the time the readers leave, not a pass of its own before them."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="file-hash", daemon=True)
        self._path = path
        self._digest: str | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._digest = file_hash(self._path)
        except BaseException as exc:  # raised by `result`, in the ingest's thread
            self._error = exc

    def sha256(self) -> str:
        self.join()
        if self._digest is None:
            raise unreadable(self._path, self._error)
        return self._digest
