"""The manifest: what each committed ingest read, when, with which counts, and how the
warehouse treats caller identities. It lives in the snapshot, so it commits with the data."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import WarehouseError

NAME = "manifest.json"
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

    def to_json(self) -> str:
        body = {
            "version": VERSION,
            "pii_mode": self.pii_mode,
            "key_fingerprint": self.key_fingerprint,
            "ingests": self.ingests,
        }
        return json.dumps(body, indent=1) + "\n"


def read(snapshot: Path | None) -> Manifest:
    """The manifest of `snapshot`; an empty one for a new warehouse."""
    if snapshot is None:
        return Manifest()
    path = snapshot / NAME
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return Manifest()
    except (OSError, ValueError) as exc:
        raise WarehouseError(f"cannot read the manifest {path}: {exc}") from None
    return Manifest(body.get("pii_mode"), body.get("key_fingerprint"), body.get("ingests", []))


def write(manifest: Manifest, snapshot: Path) -> None:
    (snapshot / NAME).write_text(manifest.to_json())


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, as received (compressed or not)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
