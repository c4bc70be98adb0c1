"""The session schema: one definition, from which the Arrow, polars and Pandera schemas derive."""

from schemas.session import (
    FIELD_NAMES,
    LINEAGE_FIELDS,
    MAX_DURATION_S,
    PARTITION_COLUMN,
    SESSION_FIELDS,
    STORED_FIELDS,
    TIMESTAMP_WINDOW,
    Field,
    Kind,
    arrow_schema,
    docs_table,
    in_window,
    key_aliases,
    pandera_schema,
    polars_schema,
    repeated_fields,
)

__all__ = [
    "FIELD_NAMES",
    "LINEAGE_FIELDS",
    "MAX_DURATION_S",
    "PARTITION_COLUMN",
    "SESSION_FIELDS",
    "STORED_FIELDS",
    "TIMESTAMP_WINDOW",
    "Field",
    "Kind",
    "arrow_schema",
    "docs_table",
    "in_window",
    "key_aliases",
    "pandera_schema",
    "polars_schema",
    "repeated_fields",
]
