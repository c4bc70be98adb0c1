"""The memory budget of an ingest's DuckDB work: the setting, and what running out of it says."""

from __future__ import annotations

import re

ENV = "SESSIONS_MEMORY_LIMIT"
# DuckDB spills past this; with Python, polars and Arrow around it, an ingest stays under
# 1 GiB and about flat: peak RSS 627 MiB for 1M sessions, 658 MiB for 5M (bench/results.md).
# At 512 MB the 5M peak was 964 MiB (20% above 1M's), for 3% less time; at 1 GB, 1.37 GB.
MEMORY_LIMIT = "320MB"

# DuckDB's own spelling of a size: a number and a unit of 1000^i or 1024^i bytes.
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)
_BYTES = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_BYTES |= {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
# Below this DuckDB cannot run a query at all.
MINIMUM_BYTES = 1 << 20


def parse(text: str) -> str:
    """`text` as DuckDB's `memory_limit` takes it (`512MB`, `1GiB`); `ValueError` if it is
    not a size or is too small to run anything."""
    if bytes_of(text) < MINIMUM_BYTES:
        raise ValueError("is too small: DuckDB needs at least 1MiB")
    number, unit = _parts(text)
    # Rebuilt from the match, so that nothing else ever reaches the SQL it is set with.
    return f"{number}{unit}"


def bytes_of(text: str) -> int:
    """The bytes of a size as `parse` takes it or DuckDB shows it (`305.1 MiB`); `ValueError`
    if it is not a size."""
    number, unit = _parts(text)
    return int(float(number) * _BYTES[unit.lower()])


def _parts(text: str) -> tuple[str, str]:
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError("is not a size of memory")
    number, unit = match.groups()
    return number, unit


def out_of_memory(limit: str, detail: str) -> str:
    """What to say when DuckDB ran out of memory under `limit`."""
    message = f"DuckDB ran out of memory under --memory-limit {limit}; raise it "
    message += f"(--memory-limit or ${ENV})"
    if "temp" in detail.lower():
        # It spills past the limit; the spill itself failed, for want of disk.
        message += ", or free disk space under the warehouse's .staging folder"
    return message
