"""Synthetic session exports, realistic and deterministic by seed, in every input format."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from schemas import SESSION_FIELDS

# (agent_id, names over time, timezone, agent_type, median duration in seconds)
_AGENTS = [
    ("agent-101", ("Billing Helper", "Billing Assistant"), "America/New_York", "voice", 150),
    ("agent-102", ("Appointments",), "America/Chicago", "voice", 210),
    ("agent-103", ("Pharmacy Refills",), "America/Los_Angeles", "voice", 120),
    ("agent-104", ("Web Concierge",), "Europe/London", "chat", 420),
    ("agent-105", ("After Hours",), "America/Denver", "voice", 95),
    ("agent-106", ("SMS Reminders",), "America/Phoenix", "sms", 600),
    ("agent-107", ("Claims Intake",), "Asia/Kolkata", "voice", 300),
    ("agent-108", ("Lab Results",), "Australia/Sydney", "voice", 180),
]
_CHANNELS = {
    "voice": [("twilio", "voice_twilio_v1", 0.6), ("hedy", "voice_sip_v1", 0.4)],
    "chat": [("webchat", "webchat_v1", 1.0)],
    "sms": [("twilio", "sms_twilio_v1", 1.0)],
}
_END = datetime(2026, 11, 1, tzinfo=UTC)
_DAYS = 42
# Fields that older exports (the console CSV here) do not have yet.
_NEWER_FIELDS = (
    "experiment_id",
    "experiment_variant_id",
    "experiment_variant",
    "experiment_variant_is_control",
    "is_outbound",
    "user_terminated",
    "transfer_voicemail_detected",
    "override_timestamp",
)


def sessions(count: int, seed: int) -> pl.DataFrame:
    """`count` sessions as the API would list them, with typed columns."""
    rng = np.random.default_rng(seed)
    agent = rng.integers(0, len(_AGENTS), count)
    offset_s = rng.uniform(0, _DAYS * 86400, count)
    timestamp = (
        np.datetime64(_END.replace(tzinfo=None), "us")
        - np.timedelta64(_DAYS, "D")
        + (offset_s * 1e6).astype("timedelta64[us]")
    )
    progress = offset_s / (_DAYS * 86400)  # 0 at the start of the period, 1 at its end
    # Each agent's prompt gets a new version every two weeks; later versions run shorter,
    # except After Hours' (agent-105), whose new versions change nothing: a prompt change
    # with no effect, for `sessions compare` to call "no clear change".
    version = 1 + np.minimum((progress * 3).astype(int), 2)
    effect = np.where(agent == _index("agent-105"), 0.0, 0.08)
    median = np.array([a[4] for a in _AGENTS])[agent] * (1.0 - effect * (version - 1))
    duration = np.round(rng.lognormal(np.log(median), 0.6), 3)
    duration[rng.random(count) < 0.02] = np.nan  # still running, or not measured
    # An agent renamed half-way through keeps its id.
    names = np.array([(a[1][0], a[1][-1]) for a in _AGENTS])
    name = names[agent, (progress > 0.5).astype(int)]
    kind = np.array([a[3] for a in _AGENTS])[agent]
    service, channel_type = _channels(rng, kind)
    is_voice = np.char.startswith(channel_type, "voice")
    phone = np.char.add("+1804555", np.char.zfill(rng.integers(0, 10_000, count).astype(str), 4))
    email = np.char.add(
        np.char.add("caller", rng.integers(0, 500, count).astype(str)), "@mail.test"
    )
    variant = rng.random(count) < 0.5
    # Two experiments, half the sessions in each variant: Appointments' shorter greeting does
    # nothing, Web Concierge's concise answers make chats a quarter shorter.
    in_experiment = np.isin(agent, [_index("agent-102"), _index("agent-104")])
    concise = (agent == _index("agent-104")) & variant
    duration = np.round(duration * np.where(concise, 0.75, 1.0), 3)
    greeting = agent == _index("agent-102")
    frame = pl.DataFrame(
        {
            # Milliseconds, as the API writes them.
            "timestamp": pl.Series(timestamp).dt.truncate("1ms").dt.replace_time_zone("UTC"),
            "session_id": np.char.add("ses_", (10_000_000 + np.arange(count)).astype(str)),
            "conversation_id": np.char.add("conv_", (20_000_000 + np.arange(count)).astype(str)),
            "channel_manager_service": service,
            "channel_manager_type": channel_type,
            "channel_manager_sid": np.char.add(
                "CA", rng.integers(10**9, 10**10, count).astype(str)
            ),
            "agent_id": np.array([a[0] for a in _AGENTS])[agent],
            "agent_name": name,
            "agent_type": kind,
            "agent_timezone": np.array([a[2] for a in _AGENTS])[agent],
            "prompt_id": np.char.add("prompt-", np.array([a[0][-3:] for a in _AGENTS])[agent]),
            "prompt_name": np.char.add(name, " prompt"),
            "prompt_version": np.char.add("2026-09-", np.char.zfill((version * 7).astype(str), 2)),
            "prompt_version_number": version,
            "experiment_id": np.where(greeting, "exp-shorter-greeting", "exp-concise-answers"),
            "experiment_variant_id": np.where(variant, "v-b", "v-a"),
            "experiment_variant": np.where(
                greeting,
                np.where(variant, "short", "long"),
                np.where(variant, "concise", "detailed"),
            ),
            "experiment_variant_is_control": ~variant,
            "duration": duration,
            "session_label_id": "label-needs-review",
            "source": np.where(is_voice, phone, email),
            "target": np.where(is_voice, "+18005550100", "web"),
            "is_legacy": rng.random(count) < 0.01,
            "is_test": rng.random(count) < 0.03,
            "is_outbound": is_voice & (rng.random(count) < 0.1),
            "user_terminated": rng.random(count) < 0.6,
            "transfer_voicemail_detected": is_voice & (rng.random(count) < 0.02),
            "override_timestamp": pl.Series([None] * count, dtype=pl.String),
        },
        strict=False,
    )
    experiment = [c for c in frame.columns if c.startswith("experiment")]
    return frame.with_columns(
        pl.when(pl.Series(in_experiment)).then(pl.col(experiment)),
        pl.when(pl.Series(rng.random(count) < 0.1)).then(pl.col("session_label_id")),
        pl.col("duration").fill_nan(None),
    ).sort("timestamp")


def _index(agent_id: str) -> int:
    return [a[0] for a in _AGENTS].index(agent_id)


def _channels(rng: np.random.Generator, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    service = np.empty(len(kind), dtype=object)
    channel_type = np.empty(len(kind), dtype=object)
    for k, options in _CHANNELS.items():
        rows = np.flatnonzero(kind == k)
        pick = rng.choice(len(options), size=len(rows), p=[o[2] for o in options])
        service[rows] = np.array([o[0] for o in options])[pick]
        channel_type[rows] = np.array([o[1] for o in options])[pick]
    return service.astype(str), channel_type.astype(str)


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Sessions as an export writes them: timestamps in ISO 8601 with `Z`."""
    return frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))


def camel_case(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.rename({f.name: f.camel for f in SESSION_FIELDS if f.name in frame.columns})


def pages(frame: pl.DataFrame, page_size: int) -> pl.DataFrame:
    """API list pages (`items`, `page`, `page_size`, `total_pages`, `total_count`)."""
    total = len(frame)
    return (
        frame.with_row_index("_i")
        .group_by((pl.col("_i") // page_size).alias("page"), maintain_order=True)
        .agg(pl.struct(pl.exclude("_i")).alias("items"))
        .with_columns(
            pl.lit(page_size).alias("page_size"),
            pl.lit(-(-total // page_size)).alias("total_pages"),
            pl.lit(total).alias("total_count"),
        )
        .select("items", "page", "page_size", "total_pages", "total_count")
    )


def write_exports(out_dir: Path, count: int, seed: int) -> list[Path]:
    """Write the exports a team receives over a period, one file per format.

    The share of each format, the overlap of the API pages (a page fetched twice while new
    sessions arrived) and the late re-delivery of sessions whose duration was filled in later
    are what a real export directory holds.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    data = sessions(count, seed)
    cut = [int(count * share) for share in (0.35, 0.5, 0.65, 0.85)]
    ndjson, camel, array, paged, csv = (
        data[a:b] for a, b in zip([0, *cut], [*cut, count], strict=True)
    )
    written: list[Path] = []

    path = out_dir / "01_sessions.ndjson"
    as_text(ndjson).write_ndjson(path)
    written.append(path)

    path = out_dir / "02_sessions_typescript_sdk.ndjson.gz"
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(camel_case(as_text(camel)).write_ndjson().encode())
    written.append(path)

    path = out_dir / "03_sessions.json"
    as_text(array).write_json(path)
    written.append(path)

    # The API pages overlap: the first items of each page repeat the end of the previous one.
    overlap = pl.concat([paged[max(i - 5, 0) : i + 20] for i in range(0, len(paged), 20)])
    path = out_dir / "04_api_pages.json"
    pages(as_text(overlap), 25).write_json(path)
    written.append(path)

    path = out_dir / "05_console_export.csv"
    as_text(csv.drop(_NEWER_FIELDS)).write_csv(path)
    written.append(path)

    # Sessions first delivered without a duration, delivered again once it is known.
    rng = np.random.default_rng(seed + 1)
    late = data.filter(pl.col("duration").is_null()).with_columns(
        pl.Series(
            "duration", np.round(rng.lognormal(np.log(180), 0.5, data["duration"].null_count()), 3)
        )
    )
    path = out_dir / "06_redelivered_durations.ndjson"
    as_text(late).write_ndjson(path)
    written.append(path)

    path = out_dir / "07_with_problems.ndjson"
    plain = data.filter(pl.col("duration").is_not_null() & ~pl.col("is_test"))
    path.write_text(_with_problems(as_text(plain.tail(8))))
    written.append(path)
    return written


def _with_problems(good: pl.DataFrame) -> str:
    """A few lines with the defects real exports have, each of which ingest must handle."""
    found = good.write_ndjson().splitlines()
    if not found:  # a handful of sessions, none of them plain: nothing to spoil
        return ""
    # Fewer than eight (`--sessions 5`): the same sessions spoiled in more than one way.
    lines = [found[i % len(found)] for i in range(8)]
    return (
        "\n".join(
            [
                lines[0],
                lines[1].replace('"duration":', '"duration":-', 1),  # negative duration
                lines[2].replace('"is_test":false', '"is_test":"maybe"'),  # not a boolean
                lines[3].replace('"timestamp":"', '"timestamp":"yesterday ', 1),  # unparseable
                lines[4][: len(lines[4]) // 2],  # cut off mid-line
                lines[5].replace('"agent_timezone":"', '"agent_timezone":"Mars/', 1),  # kept
                lines[6][:-1] + ',"sentiment_score":0.82}',  # a field the schema does not know yet
                "",
                lines[7],
            ]
        )
        + "\n"
    )
