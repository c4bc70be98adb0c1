"""What the manifest keeps of each pull, and where `--since last` continues from: the end of
the last committed pull of the same scope (server and agent)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    ends = [
        moment("--until", entry[KEY]["until"])
        for entry in manifest.ingests
        if isinstance(entry.get(KEY), dict)
        and isinstance(entry[KEY].get("until"), str)
        and entry[KEY].get("server_url") == server
        and entry[KEY].get("agent") == agent
    ]
    return max(ends, default=None)


def last_pull(warehouse: str, server: str, agent: str | None) -> datetime | None:
    """`last_until` as of the warehouse's latest version; None before its first ingest."""
    version = tables.at(location.of(warehouse))
    return last_until(version.manifest, server, agent) if version is not None else None
