"""One schema definition: the Arrow, polars and Pandera schemas and the docs agree with it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pandera.errors
import polars as pl
import pyarrow as pa
import pytest

from schemas import (
    FIELD_NAMES,
    SESSION_FIELDS,
    STORED_FIELDS,
    arrow_schema,
    docs_table,
    key_aliases,
    pandera_schema,
    polars_schema,
)

README = Path(__file__).parents[2] / "README.md"

API_FIELDS = [
    "timestamp",
    "session_id",
    "conversation_id",
    "channel_manager_service",
    "channel_manager_type",
    "channel_manager_sid",
    "agent_id",
    "agent_name",
    "agent_type",
    "agent_timezone",
    "prompt_id",
    "prompt_name",
    "prompt_version",
    "prompt_version_number",
    "experiment_id",
    "experiment_variant_id",
    "experiment_variant",
    "experiment_variant_is_control",
    "duration",
    "session_label_id",
    "source",
    "target",
    "is_legacy",
    "is_test",
    "is_outbound",
    "user_terminated",
    "transfer_voicemail_detected",
    "override_timestamp",
]


def test_the_schema_has_the_fields_the_api_has() -> None:
    assert list(FIELD_NAMES) == API_FIELDS
    assert [f.name for f in SESSION_FIELDS if not f.nullable] == ["timestamp"]


def test_derived_schemas_agree() -> None:
    arrow = arrow_schema()
    assert arrow.names == [f.name for f in STORED_FIELDS]
    assert pa.schema(polars_schema(STORED_FIELDS).to_arrow()).names == arrow.names
    for field in STORED_FIELDS:
        assert arrow.field(field.name).type == field.arrow_type
        assert pl.from_arrow(pa.array([], field.arrow_type)).dtype == field.polars_type
    columns = pandera_schema().columns
    assert list(columns) == list(FIELD_NAMES)
    for field in SESSION_FIELDS:
        assert columns[field.name].dtype.type == field.polars_type
        assert columns[field.name].nullable == field.nullable


def test_camel_case_aliases_match_the_typescript_sdk() -> None:
    aliases = key_aliases()
    for camel in ("sessionId", "channelManagerService", "agentTimezone", "isTest", "duration"):
        assert camel in aliases
    assert aliases["experimentVariantIsControl"] == "experiment_variant_is_control"
    assert aliases["promptVersionNumber"] == "prompt_version_number"


def test_readme_documents_every_column() -> None:
    assert docs_table() in README.read_text()


def frame(duration: float | None, timestamp: datetime | None = datetime(2026, 1, 1, tzinfo=UTC)):
    row = {name: None for name in FIELD_NAMES} | {"timestamp": timestamp, "duration": duration}
    return pl.DataFrame([row], schema=polars_schema())


@pytest.mark.parametrize(
    ("duration", "timestamp", "check"),
    [
        (-1.0, datetime(2026, 1, 1, tzinfo=UTC), "greater_than_or_equal_to(0)"),
        (math.nan, datetime(2026, 1, 1, tzinfo=UTC), "not_finite"),
        (math.inf, datetime(2026, 1, 1, tzinfo=UTC), "not_finite"),
        (1.0, None, "not_nullable"),
    ],
)
def test_the_pandera_schema_itself_rejects_bad_values(
    duration: float, timestamp: datetime | None, check: str
) -> None:
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        pandera_schema().validate(frame(duration, timestamp), lazy=True)
    assert caught.value.failure_cases["check"].to_list() == [check]


def test_a_good_row_passes_and_zero_or_null_duration_is_fine() -> None:
    for duration in (0.0, None, 12.5):
        pandera_schema().validate(frame(duration), lazy=True)


def test_a_lazyframe_is_checked_for_its_schema_only() -> None:
    # The trap that makes the ingest validate collected frames: values are not checked lazily.
    pandera_schema().validate(frame(-1.0).lazy(), lazy=True).collect()
