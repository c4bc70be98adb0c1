"""The time window of a pull: --since, --until and --overlap read, `last` resolved."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipeline.errors import InputError

LAST = "last"
_OVERLAP = re.compile(r"([0-9]{1,6})\s*([dhm]?)")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "": "days"}


@dataclass(frozen=True)
class Window:
    since: datetime  # UTC, inclusive
    # UTC, fixed at the run's start unless given (and never later): pages cannot shift
    # mid-run, and a window's end is a moment whose sessions have all begun.
    until: datetime
    capped: datetime | None = None  # the --until given, if later than the run's start

    def api(self) -> tuple[str, str]:
        """The bounds as the API takes them."""
        return _text(self.since), _text(self.until)

    def to_dict(self) -> dict[str, str]:
        since, until = self.api()
        return {"since": since, "until": until}


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def moment(option: str, text: str) -> datetime:
    """A date (its midnight UTC) or an ISO 8601 time, UTC unless it has an offset."""
    try:
        found = datetime.fromisoformat(text.strip())
        # In UTC, a time near the year 9999's end (or year 1's start) may be past it.
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except OverflowError:
        side = "before the year 1" if text.strip().startswith("0001") else "past the year 9999"
        raise InputError(f"{option} {text!r}", f"is {side} in UTC") from None
    except ValueError:
        raise InputError(
            f"{option} {text!r}",
            "is not a date or an ISO 8601 time",
            "e.g. 2026-11-23 or 2026-11-23T09:00:00+01:00"
            + (f"; --since also takes {LAST!r}" if option == "--since" else ""),
        ) from None


def overlap(text: str) -> timedelta:
    """--overlap: `2d`, `36h`, `90m`, `0`."""
    match = _OVERLAP.fullmatch(text.strip())
    if match is None:
        raise InputError(f"--overlap {text!r}", "is not a duration", "e.g. 2d, 36h, 90m or 0")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def resolve(
    since: str, until: str | None, back: timedelta, now: datetime, last: datetime | None
) -> Window:
    """The window to pull. `last`: the end of the last pull of the same scope, for
    `--since last`, which starts `back` before it (sessions whose duration or label came
    late are fetched again)."""
    start_of_run = now.replace(microsecond=0)
    end = moment("--until", until) if until is not None else start_of_run
    # A later --until would be recorded as pulled, and `--since last` would then skip the
    # sessions that begin between this run and that moment.
    capped = end if end > start_of_run else None
    end = min(end, start_of_run)
    if since.strip().lower() == LAST:
        if last is None:
            raise InputError(
                "--since last",
                "this warehouse records no earlier pull of this scope (server and --agent)",
                "give the first pull a date, e.g. --since 2026-11-01",
            )
        try:
            start = last - back
        except OverflowError:
            raise InputError(
                "--overlap", f"reaches from {_text(last)} back past the year 1", "e.g. 2d"
            ) from None
    else:
        start = moment("--since", since)
    if start >= end:
        raise InputError(
            "--since", f"{_text(start)} is not before --until {_text(end)}", "nothing to pull"
        )
    return Window(start, end, capped)
