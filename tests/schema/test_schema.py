"""One schema definition: the Arrow, polars and Pandera schemas and the docs agree with it."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandera.errors
import polars as pl
import pyarrow as pa
import pytest

from schemas import (
    FIELD_NAMES,
    MAX_DURATION_S,
    SESSION_FIELDS,
    STORED_FIELDS,
    TIMESTAMP_WINDOW,
    arrow_schema,
    docs_table,
    in_window,
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
        (2_592_000.001, datetime(2026, 1, 1, tzinfo=UTC), "implausible"),
        (1e308, datetime(2026, 1, 1, tzinfo=UTC), "implausible"),
        (sys.float_info.max, datetime(2026, 1, 1, tzinfo=UTC), "implausible"),
        (1.0, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "out_of_range"),
        (1.0, datetime(1, 1, 1, tzinfo=UTC), "out_of_range"),
        (1.0, datetime(2100, 1, 1, tzinfo=UTC), "out_of_range"),
        (1.0, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "out_of_range"),
    ],
)
def test_the_pandera_schema_itself_rejects_bad_values(
    duration: float, timestamp: datetime | None, check: str
) -> None:
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        pandera_schema().validate(frame(duration, timestamp), lazy=True)
    assert caught.value.failure_cases["check"].to_list() == [check]


def test_a_good_row_passes_and_zero_or_null_duration_is_fine() -> None:
    for duration in (0.0, None, 12.5, 5e-324, float(MAX_DURATION_S)):
        pandera_schema().validate(frame(duration), lazy=True)


def test_the_plausible_window_and_maximum() -> None:
    # The README states them; a change here is a change of the documented contract.
    assert (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)) == TIMESTAMP_WINDOW
    assert MAX_DURATION_S == 30 * 24 * 3600 == 2_592_000
    first, last = TIMESTAMP_WINDOW[0], datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    for timestamp in (first, last):
        pandera_schema().validate(frame(1.0, timestamp), lazy=True)


def test_in_window_is_the_rule_pandera_applies() -> None:
    # The transform applies `in_window` before pandera sees a timestamp (see there): both
    # must say the same of every value, the edges included.
    micro = timedelta(microseconds=1)
    start, end = TIMESTAMP_WINDOW
    values = [start - micro, start, start + micro, end - micro, end, end + micro]
    frames = [frame(1.0, v) for v in values]
    by_expr = [f.select(in_window(pl.col("timestamp"))).item() for f in frames]
    by_pandera = []
    for f in frames:
        try:
            pandera_schema().validate(f, lazy=True)
            by_pandera.append(True)
        except pandera.errors.SchemaErrors:
            by_pandera.append(False)
    assert by_expr == by_pandera == [False, True, True, True, False, False]


def test_only_a_finite_duration_is_implausible() -> None:
    # NaN and the infinities are `not_finite` (and -inf negative), never also implausible.
    cases = {
        math.nan: ["not_finite"],
        math.inf: ["not_finite"],
        -math.inf: ["greater_than_or_equal_to(0)", "not_finite"],
    }
    for duration, checks in cases.items():
        with pytest.raises(pandera.errors.SchemaErrors) as caught:
            pandera_schema().validate(frame(duration), lazy=True)
        assert sorted(caught.value.failure_cases["check"].to_list()) == checks
