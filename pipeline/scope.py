"""Which sessions a statistic covers: the filters every stats command and the report take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Scope:
    """A None field does not filter; test sessions are left out unless `include_tests`."""

    since: date | None = None
    until: date | None = None
    agent: str | None = None
    channel: str | None = None
    include_tests: bool = False
