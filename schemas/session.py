"""The one definition of a stored session: its fields, and everything derived from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow

if TYPE_CHECKING:
    from schemas.pandera_import import pa


class Kind(Enum):
    """The logical type of a field; each maps to one Arrow and one polars type."""

    TIMESTAMP = "timestamp"
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATE = "date"


_ARROW: dict[Kind, pyarrow.DataType] = {
    Kind.TIMESTAMP: pyarrow.timestamp("us", tz="UTC"),
    Kind.STRING: pyarrow.string(),
    Kind.INT: pyarrow.int64(),
    Kind.FLOAT: pyarrow.float64(),
    Kind.BOOL: pyarrow.bool_(),
    Kind.DATE: pyarrow.date32(),
}

_POLARS: dict[Kind, pl.DataType] = {
    Kind.TIMESTAMP: pl.Datetime("us", "UTC"),
    Kind.STRING: pl.String(),
    Kind.INT: pl.Int64(),
    Kind.FLOAT: pl.Float64(),
    Kind.BOOL: pl.Boolean(),
    Kind.DATE: pl.Date(),
}


_DUCKDB: dict[Kind, str] = {
    Kind.TIMESTAMP: "TIMESTAMPTZ",
    Kind.STRING: "VARCHAR",
    Kind.INT: "BIGINT",
    Kind.FLOAT: "DOUBLE",
    Kind.BOOL: "BOOLEAN",
    Kind.DATE: "DATE",
}


@dataclass(frozen=True)
class Field:
    """One column of the sessions dataset."""

    name: str
    kind: Kind
    description: str
    nullable: bool = True

    @property
    def camel(self) -> str:
        """The key as the TypeScript SDK spells it (`session_id` -> `sessionId`)."""
        head, *rest = self.name.split("_")
        return head + "".join(part.capitalize() for part in rest)

    @property
    def arrow_type(self) -> pyarrow.DataType:
        return _ARROW[self.kind]

    @property
    def polars_type(self) -> pl.DataType:
        return _POLARS[self.kind]

    @property
    def duckdb_type(self) -> str:
        return _DUCKDB[self.kind]


def _f(name: str, kind: Kind, description: str, *, nullable: bool = True) -> Field:
    return Field(name, kind, description, nullable)


S, INT, F, B = Kind.STRING, Kind.INT, Kind.FLOAT, Kind.BOOL

# The fields of the Syllable API's Session model, in the API's order.
SESSION_FIELDS: tuple[Field, ...] = (
    _f("timestamp", Kind.TIMESTAMP, "When the session started, in UTC", nullable=False),
    _f("session_id", S, "Internal ID of the session; the key of the dataset"),
    _f("conversation_id", S, "ID of the conversation the session is part of"),
    _f("channel_manager_service", S, "Service that carried the session (e.g. hedy, console)"),
    _f("channel_manager_type", S, "Type of that service (e.g. voice_twilio_v1, voice_sip_v1)"),
    _f("channel_manager_sid", S, "The channel manager's own ID of the session"),
    _f("agent_id", S, "ID of the agent"),
    _f("agent_name", S, "Name of the agent at the time of the session"),
    _f("agent_type", S, "Type of the agent"),
    _f("agent_timezone", S, "IANA timezone of the agent (e.g. America/Chicago)"),
    _f("prompt_id", S, "ID of the agent's prompt"),
    _f("prompt_name", S, "Name of the agent's prompt"),
    _f("prompt_version", S, "Legacy prompt version (a timestamp, kept as text)"),
    _f("prompt_version_number", INT, "Version number of the prompt"),
    _f("experiment_id", S, "ID of the experiment the session took part in"),
    _f("experiment_variant_id", S, "ID of the experiment variant"),
    _f("experiment_variant", S, "Name of the experiment variant"),
    _f("experiment_variant_is_control", B, "Whether the variant is the control"),
    _f("duration", F, "Duration of the session in seconds"),
    _f("session_label_id", S, "ID of the quality label of the session"),
    _f("source", S, "Caller identity: phone number, username or e-mail"),
    _f("target", S, "Channel target of the agent at the time of the session"),
    _f("is_legacy", B, "Whether the session ran on the legacy system"),
    _f("is_test", B, "Whether the session is a test session"),
    _f("is_outbound", B, "Whether the agent placed the call"),
    _f("user_terminated", B, "Whether the user ended the session"),
    _f("transfer_voicemail_detected", B, "Whether a transfer reached a voicemail"),
    _f("override_timestamp", S, "Override of the timestamp, as the API gives it (text)"),
)

# Columns the warehouse adds to every stored session.
LINEAGE_FIELDS: tuple[Field, ...] = (
    _f("extra_fields", S, "Fields the schema does not know, as a JSON object (null when none)"),
    _f("session_key", S, "session_id, or 'content:' + a hash of the record", nullable=False),
    _f(
        "content_hash",
        S,
        "MD5 of the stored content; tells an update from a repeat",
        nullable=False,
    ),
    _f("source_file", S, "The export file this version of the session came from", nullable=False),
    _f("ingested_at", Kind.TIMESTAMP, "When that ingest ran, UTC", nullable=False),
    # Derived once at ingest, so that no query converts every timestamp to local time.
    _f(
        "local_date",
        Kind.DATE,
        "Date the session started in agent_timezone (UTC where that is missing, not IANA, or "
        "not known to both DuckDB and Spark)",
        nullable=False,
    ),
)

STORED_FIELDS: tuple[Field, ...] = SESSION_FIELDS + LINEAGE_FIELDS

# The Hive partition column: the UTC date of `timestamp`, as the folder `date=YYYY-MM-DD`.
PARTITION_COLUMN = "date"

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in SESSION_FIELDS)


def key_aliases() -> dict[str, str]:
    """Every accepted spelling of a key (snake_case and camelCase) -> the column name."""
    aliases: dict[str, str] = {}
    for field in SESSION_FIELDS:
        aliases[field.name] = field.name
        aliases[field.camel] = field.name
    return aliases


def repeated_fields(keys: Iterable[str]) -> list[str]:
    """The fields `keys` give more than once (one key twice, or both spellings of a field), as
    column names, in the order found; a key the schema does not know stands for itself."""
    aliases = key_aliases()
    seen: set[str] = set()
    repeated: list[str] = []
    for key in keys:
        field = aliases.get(key, key)
        if field in seen and field not in repeated:
            repeated.append(field)
        seen.add(field)
    return repeated


def arrow_schema() -> pyarrow.Schema:
    """The Arrow schema of the Parquet files under `<warehouse>/sessions/`."""
    return pyarrow.schema(
        [pyarrow.field(f.name, f.arrow_type, nullable=f.nullable) for f in STORED_FIELDS]
    )


def polars_schema(fields: tuple[Field, ...] = SESSION_FIELDS) -> pl.Schema:
    return pl.Schema({f.name: f.polars_type for f in fields})


# Plausible data, beyond what parses: a session starts from the Unix epoch (inclusive) up to
# 2100 (exclusive), in UTC, and lasts at most 30 days. Outside them a value is a sentinel
# (Go's zero time 0001-01-01, year 0) or garbage (`1e308`), never a session; kept, it would
# break every reader (Python's dates stop at years 1 and 9999) or make sums infinite. With
# durations bounded, a sum over 10M sessions (2.6e13 s) and its squares stay finite.
TIMESTAMP_WINDOW: tuple[datetime, datetime] = (
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2100, 1, 1, tzinfo=UTC),
)
MAX_DURATION_S = 30 * 24 * 3600


def in_window(timestamp: pl.Expr) -> pl.Expr:
    """Whether `timestamp` is inside TIMESTAMP_WINDOW; null stays null."""
    start, end = TIMESTAMP_WINDOW
    return (timestamp >= pl.lit(start)) & (timestamp < pl.lit(end))


def _finite(data: Any) -> pl.LazyFrame:
    column = pl.col(data.key)
    frame: pl.LazyFrame = data.lazyframe
    return frame.select(column.is_null() | column.is_finite())


def _in_window(data: Any) -> pl.LazyFrame:
    column = pl.col(data.key)
    frame: pl.LazyFrame = data.lazyframe
    return frame.select(column.is_null() | in_window(column))


def _plausible(data: Any) -> pl.LazyFrame:
    # Only a finite number can be implausible: NaN and the infinities are `not_finite`.
    column = pl.col(data.key)
    frame: pl.LazyFrame = data.lazyframe
    return frame.select(column.is_null() | ~column.is_finite() | (column <= MAX_DURATION_S))


def _checks() -> dict[str, list[pa.Check]]:
    """Value rules beyond type and nullability, each named by the rule a rejected row gives.
    They live in the schema so that pandera itself rejects a bad value; the transform parses
    text into types and, for the timestamp window, applies `in_window` itself (see there)."""
    from schemas.pandera_import import pa

    return {
        "timestamp": [
            pa.Check(_in_window, name="out_of_range"),
        ],
        "duration": [
            pa.Check.ge(0),
            pa.Check(_finite, name="not_finite"),
            pa.Check(_plausible, name="implausible"),
        ],
    }


def pandera_schema() -> pa.DataFrameSchema:
    """The Pandera schema every batch of parsed sessions is validated against. (pandera is
    imported here, by the commands that validate: the others use the schema's fields only,
    and its import was a third of a short command such as `sessions stats`.)"""
    from schemas.pandera_import import pa

    checks = _checks()
    return pa.DataFrameSchema(
        {
            f.name: pa.Column(
                f.polars_type,
                nullable=f.nullable,
                checks=checks.get(f.name, []),
                description=f.description,
            )
            for f in SESSION_FIELDS
        },
        strict=True,
        ordered=True,
        coerce=False,
        name="session",
    )


def docs_table() -> str:
    """The Markdown table of the stored columns, as the README shows it."""
    rows = ["| column | type | null | camelCase key | description |", "|---|---|---|---|---|"]
    for f in STORED_FIELDS:
        camel = f"`{f.camel}`" if f in SESSION_FIELDS else ""
        null = "yes" if f.nullable else "no"
        rows.append(f"| `{f.name}` | {f.kind.value} | {null} | {camel} | {f.description} |")
    return "\n".join(rows)
