"""What the manifest keeps of each pull, and where `--since last` continues from: the end of
the last committed pull of the same scope (server and agent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline.errors import InputError, WarehouseError
from pipeline.manifest import Manifest
from pipeline.pull.window import Window, moment
from pipeline.store import location, tables

KEY = "pull"  # the key of a pull's record in its ingest's manifest entry


def record(
    server: str, agent: str | None, window: Window, pages: int, sessions: int
) -> dict[str, Any]:
    """The record of a pull, kept in its ingest's manifest entry."""
    return {
        KEY: {
            "server_url": server,
            "agent": agent,
            **window.to_dict(),
            "pages": pages,
            "sessions": sessions,
        }
    }


def last_until(manifest: Manifest, server: str, agent: str | None) -> datetime | None:
    """The latest end of a committed pull of this scope, if any."""
    ends = []
    for entry in manifest.ingests:
        pull = entry.get(KEY)
        if not isinstance(pull, dict) or pull.get("server_url") != server:
            continue
        if pull.get("agent") != agent:
            continue
        try:
            ends.append(moment("until", str(pull.get("until"))))
        except InputError:
            # Not an option the user gave: the warehouse's own record is damaged.
            raise WarehouseError(
                f"the manifest's record of pull {entry.get('run_id')} has an until that is not "
                f"a time ({pull.get('until')!r}): give --since a date instead of 'last'"
            ) from None
    return max(ends, default=None)


def last_pull(warehouse: str, server: str, agent: str | None) -> datetime | None:
    """`last_until` as of the warehouse's latest version; None before its first ingest."""
    version = tables.at(location.of(warehouse))
    return last_until(version.manifest, server, agent) if version is not None else None
