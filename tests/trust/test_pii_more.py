"""Identities outside `source`: unknown fields, the person called, rejected rows, warnings;
and a key nobody else can guess, read or race for."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import stat
import subprocess
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pipeline import pii
from pipeline.errors import InputError
from pipeline.ingest import Options, ingest
from pipeline.pii import PiiMode
from tests.conftest import SESSIONS, manifest, ndjson, rejects, run_cli, session, stored
from tests.trust.test_pii import everything_stored
from tests.trust.test_readers_and_faults import without_root_overrides

Write = Callable[[str, bytes], Path]

# Separators a phone number is written with, besides none at all.
SEPARATORS = [" ", "-", ".", "\u00a0", "\u202f", "\u2007", "\u2010", "\u2013", "\u2212", "\t"]


def squeezed(text: str) -> str:
    """`text` as a reader would see it: JSON escapes decoded, full-width forms folded, and
    the separators inside numbers gone; where an identity would show if any of it is left."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)
    text = unicodedata.normalize("NFKC", text.replace("\\t", " "))
    return re.sub(r"[\s\-.()\u2010-\u2015\u2212]", "", text).lower()


# One distinctive 7-digit core per phone number, so that a survivor cannot be a coincidence.
PHONES = {
    "+1 (415) 555-0124": "4155550124",
    "14155550125": "4155550125",
    "4155550126": "4155550126",
    "415 555 0127": "4155550127",
    "(415) 555-0128": "4155550128",
    "0044 20 7946 0958": "2079460958",
    "415\u00a0555\u00a00129": "4155550129",
    "+44\u202f20\u20137946\u20130959": "2079460959",
    "\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff13\uff10": "4155550130",
    "06 12 34 56 78": "0612345678",
}
EMAILS = ["Zq.Caller@Example.COM", "zq.second@example.org", "zq+third@mail.example.net"]


def escaped_email(address: str) -> str:
    """The e-mail address as a JSON string literal's content, `@` and a letter escaped."""
    return address.replace("@", "\\u0040").replace("q", "\\u0071", 1)


def leaks(text: str) -> list[str]:
    found = squeezed(text)
    cores = [core for core in PHONES.values() if core in found]
    return cores + [e for e in EMAILS if squeezed(e.split("@")[0]) in found]


def exports(write: Write) -> Path:
    phones = list(PHONES)
    rows: list[dict[str, Any] | str] = [
        # Unknown fields holding identities, as text and as a number, nested too.
        session(1, caller_number=phones[0], caller_email=EMAILS[0], crm={"alt": phones[1]}),
        session(2, callback=int(PHONES[phones[2]]), note=f"call back on {phones[3]}"),
        # The person called, on outbound sessions; on an inbound one, the agent's own line.
        session(3, is_outbound=True, target=phones[4]),
        session(4, is_outbound=None, target=phones[5]),
        session(5, is_outbound=False, target="+18005550100"),
        # Rejected: the refused value is an identity, or the record holds one anywhere.
        session(6, duration=phones[6]),
        session(7, is_test=phones[7], note=EMAILS[1]),
        session(8, timestamp=EMAILS[2]),
        session(9, prompt_version_number=phones[8], duration=-1),
        # An e-mail address as a key, and a key given twice.
        session(10, **{EMAILS[1]: "x"}),
        # A warning quoting a value.
        session(11, agent_timezone=phones[9]),
    ]
    text = ndjson(rows).decode()
    # JSON escapes, as another writer may give them: the record is kept as text.
    written = json.dumps(EMAILS[2])[1:-1]
    text = text.replace(written, escaped_email(EMAILS[2]), 1)
    text += '{"timestamp": "2026-10-02T00:00:00Z", "alice": 1, "zq.dup@example.com": 1, '
    text += '"zq.dup@example.com": 2, "x": "\\u0034\\u0031\\u0035 555 0131"}\n'
    text += '{"timestamp": "2026-10-02T00:00:00Z", "duration": "+1 415 555 0132", broken\n'
    return write("calls.ndjson", text.encode())


PHONES.update({"\\u0034\\u0031\\u0035 555 0131": "4155550131", "+1 415 555 0132": "4155550132"})
EMAILS.append("zq.dup@example.com")


@pytest.mark.parametrize("mode", ["pseudonymise", "drop"])
def test_no_identity_outside_source_is_stored_or_shown(write: Write, wh: Path, mode: str) -> None:
    path = exports(write)
    assert leaks(path.read_text())  # the check can see them where they are
    result = run_cli("ingest", path, "-w", wh, "--json", "--pii", mode)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows_read"] == 13 and report["rows_rejected"] == 6
    # The warning's value stays where the export put it, a known column (agent_timezone):
    # only unknown fields, `source` and `target` are taken for identities in stored sessions.
    assert leaks(everything_stored(wh)) == [PHONES["06 12 34 56 78"]]
    assert leaks(result.stdout + result.stderr) == []
    assert PHONES["06 12 34 56 78"] in squeezed(
        stored(wh, "session_id = 's11'")[0]["agent_timezone"]
    )
    text = run_cli("ingest", path, "-w", wh.parent / "text", "--pii", mode)
    assert leaks(text.stdout + text.stderr) == []
    assert "[redacted]" in report["warnings"][0] and "[redacted]" in report["unknown_fields"]
    by_id = {r["session_id"]: r for r in stored(wh)}
    assert by_id["s5"]["target"] == "+18005550100"  # the agent's own line, inbound
    for n in (3, 4):
        target = by_id[f"s{n}"]["target"]
        assert target is None if mode == "drop" else target.startswith("pii:")
    # Unknown fields keep what is not an identity, and stay JSON; so do JSON records.
    assert json.loads(by_id["s1"]["extra_fields"])["caller_number"] == "[redacted]"
    assert json.loads(by_id["s2"]["extra_fields"])["callback"] == "[redacted]"  # was a number
    assert all(json.loads(r["extra_fields"]) for r in by_id.values() if r["extra_fields"])
    assert all(json.loads(r["record"]) for r in rejects(wh) if "broken" not in r["record"])
    reasons = [r["reason"] for r in rejects(wh)]
    assert "duration: not_a_number ([redacted])" in reasons


def test_keep_mode_keeps_them(write: Write, wh: Path) -> None:
    """The same checks can fail: --pii keep stores what the other modes must not."""
    ingest([str(exports(write))], wh, Options(pii=PiiMode.KEEP))
    assert len(leaks(everything_stored(wh))) >= 10


def test_pseudonymised_targets_match_the_callers_pseudonyms(write: Write, wh: Path) -> None:
    """The person called is pseudonymised as a caller is: the same person, the same pseudonym."""
    rows = [
        session(1, source="+1 (415) 555-0140"),
        session(2, is_outbound=True, target="4155550140"),
        session(3, is_outbound=True, target="415-555-0140"),
    ]
    ingest([str(write("a.ndjson", ndjson(rows)))], wh)
    by_id = {r["session_id"]: r for r in stored(wh)}
    assert by_id["s1"]["source"] == by_id["s2"]["target"] == by_id["s3"]["target"]


# Generated identities, written every way an export may write them.
digits = st.text("0123456789", min_size=6, max_size=6)


@st.composite
def phone_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(as written, the 7-digit core that must not survive)."""
    national = draw(st.sampled_from("23456789")) + draw(
        st.text("0123456789", min_size=9, max_size=9)
    )
    country = draw(st.sampled_from(["", "+1", "1", "001", "+44", "0044", "+33", "0033"]))
    sep = draw(st.sampled_from(["", *SEPARATORS]))
    groups = draw(st.sampled_from([[3, 3, 4], [2, 4, 4], [3, 7], [2, 2, 2, 2, 2], [10]]))
    parts, at = [], 0
    for size in groups:
        parts.append(national[at : at + size])
        at += size
    if draw(st.booleans()) and groups[0] == 3:
        parts[0] = f"({parts[0]})"
    written = sep.join(parts)
    if country:
        written = country + draw(st.sampled_from([sep, " ", ""])) + written
    if draw(st.booleans()):  # full-width digits
        written = written.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    return written, national[-7:]


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, str]:
    local = draw(st.from_regex(r"zq[a-z0-9]{3,8}([._+\-][a-z0-9]{1,6})?", fullmatch=True))
    domain = draw(st.from_regex(r"[a-z][a-z0-9\-]{1,10}\.(com|org|co\.uk|info)", fullmatch=True))
    written = draw(st.sampled_from([str.lower, str.upper, str.title]))(f"{local}@{domain}")
    return written, local


def json_string(text: str, escape: list[bool]) -> str:
    """`text` as the content of a JSON string literal, some characters as \\uXXXX escapes."""
    out = []
    for char, esc in zip(text, escape + [False] * len(text), strict=False):
        out.append(f"\\u{ord(char):04x}" if esc else json.dumps(char, ensure_ascii=False)[1:-1])
    return "".join(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    identity=st.one_of(phone_numbers(), emails()),
    escape=st.lists(st.booleans(), max_size=40),
    ascii_only=st.booleans(),
    around=st.sampled_from(["{}", "call {} now", "tel:{}", "mailto:{}", "<{}>"]),
    where=st.sampled_from(["duration", "note", "caller_number", "a key", "a number"]),
)
def test_redaction_leaves_no_identity_in_json_text(
    identity: tuple[str, str], escape: list[bool], ascii_only: bool, around: str, where: str
) -> None:
    written, core = identity
    value = json_string(around.format(written), escape)
    if ascii_only:  # as json.dumps writes by default: every non-ASCII character escaped
        value = json.dumps(json.loads(f'"{value}"'))[1:-1]
    pair = f'"{value}": 1' if where == "a key" else f'"{where}": "{value}"'
    if where == "a number":  # a phone number written as a JSON number, if it can be one
        digits = "".join(c for c in written if c.isdigit())
        assume(digits.isascii() and digits == written.lstrip("+") and not digits.startswith("0"))
        pair = f'"callback": {written.lstrip("+")}, "list": [1, {digits}, {digits}]'
    record = '{"timestamp": "2026-10-01T12:34:56+02:00", ' + pair + ', "duration": 12.5}'
    assert squeezed(core) in squeezed(record)
    (redacted,) = pii.redact_texts([record])
    assert squeezed(core) not in squeezed(redacted), redacted
    json.loads(redacted)  # JSON text stays JSON
    # Timestamps and durations are not taken for phone numbers.
    assert redacted.startswith('{"timestamp": "2026-10-01T12:34:56+02:00", ')
    assert redacted.endswith(', "duration": 12.5}')


@pytest.mark.parametrize(
    "kept",
    [
        "2026-10-01T12:34:56.123456+05:30",
        "2026-10-01 12:34:56",
        "12.5",
        "1234.5",
        "-3.25e2",
        "s42",
        "agent-101",
        "voice_twilio_v1",
        "America/Argentina/Buenos_Aires",
        "550e8400-e29b-41d4",
    ],
)
def test_redaction_keeps_timestamps_durations_and_ids(kept: str) -> None:
    assert pii.redact_texts([kept]) == [kept]


@pytest.mark.parametrize(
    ("value", "ascii_only"),
    [
        # Non-ASCII addresses, written with JSON escapes (Python's default) or as they are.
        ("jürgen.müller@beispiel.de", True),
        ("François.Dupont@exemple.fr", True),
        ("björn108@exämple.de", False),
        # Digits apart by zero-width spaces, underscores, or one space each.
        ("415\u200b555\u200b0126", True),
        ("415\u200b555\u200b0126", False),
        ("415_555_0111", True),
        ("4 1 5 5 5 5 0 1 1 3", True),
        # An HTML entity for the @.
        ("bob125&#64;example.com", True),
    ],
)
def test_identities_written_oddly_leave_nothing_of_themselves(value: str, ascii_only: bool) -> None:
    text = json.dumps({"note": value, "duration": value}, ensure_ascii=ascii_only)
    (redacted,) = pii.redact_texts([text])
    assert json.loads(redacted) == {"note": "[redacted]", "duration": "[redacted]"}


# The key. Each class of key is tried in this process (`load_key`), and one of each through
# the CLI, for the exit code and the one line.


def ingest_with_env(
    wh: Path, export: Path, env: dict[str, str | None]
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in env}
    full.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run(
        [str(SESSIONS), "ingest", str(export), "-w", str(wh)],
        capture_output=True, text=True, env=full, preexec_fn=without_root_overrides, check=False,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    return result.stderr


def refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The one line `load_key` refuses the key with, under `env`."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InputError) as refusal:
        pii.load_key(lambda message: None)
    assert "\n" not in str(refusal.value)
    return str(refusal.value)


@pytest.mark.parametrize("key", ["k", "x" * 31, "é" * 15, "a key of 31 bytes, one too few."])
def test_a_short_key_is_refused(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    line = refused(monkeypatch, SESSIONS_PII_KEY=key)
    assert "$SESSIONS_PII_KEY" in line and "at least 32" in line and "token_hex" in line
    assert len(key) == 1 or key not in line  # the key is not shown
    monkeypatch.setenv("SESSIONS_PII_KEY", "k" * 32)
    assert pii.load_key(lambda message: None) == b"k" * 32


@pytest.mark.parametrize("content", [b"", b"\n", b"short\n", b"x" * 31 + b"\n"])
def test_a_short_key_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    key_file = tmp_path / "pii.key"
    key_file.write_bytes(content)
    key_file.chmod(0o600)
    line = refused(monkeypatch, SESSIONS_PII_KEY_FILE=str(key_file))
    assert str(key_file) in line and "at least 32" in line


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o606, 0o660, 0o700])
def test_a_key_file_others_may_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    key_file = tmp_path / "pii.key"
    key_file.write_text("k" * 64 + "\n")
    key_file.chmod(mode)
    if mode & 0o077 == 0:  # only the owner may: accepted
        monkeypatch.setenv("SESSIONS_PII_KEY_FILE", str(key_file))
        assert pii.load_key(lambda message: None) == b"k" * 64
        return
    line = refused(monkeypatch, SESSIONS_PII_KEY_FILE=str(key_file))
    assert f"chmod 600 {key_file}" in line and f"{mode:03o}" in line
    assert stat.S_IMODE(key_file.stat().st_mode) == mode  # the user's to fix, not ours


def test_refused_keys_through_the_cli(write: Write, tmp_path: Path) -> None:
    export = write("a.ndjson", ndjson([session(1)]))
    line = one_line(ingest_with_env(tmp_path / "wh", export, {"SESSIONS_PII_KEY": "short"}), 2)
    assert "at least 32" in line
    key_file = tmp_path / "pii.key"
    key_file.write_text("k" * 64 + "\n")
    key_file.chmod(0o644)
    env = {"SESSIONS_PII_KEY_FILE": str(key_file)}
    assert f"chmod 600 {key_file}" in one_line(ingest_with_env(tmp_path / "wh", export, env), 2)
    assert not (tmp_path / "wh" / "sessions").exists()
    key_file.chmod(0o600)
    assert ingest_with_env(tmp_path / "wh", export, env).returncode == 0


def test_a_key_that_is_not_a_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)
    for key_file in (tmp_path, fifo, Path("/dev/zero")):
        line = refused(monkeypatch, SESSIONS_PII_KEY_FILE=str(key_file))
        assert str(key_file) in line and "not a regular file" in line


def test_no_place_for_the_key_is_one_line(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    monkeypatch.delenv("SESSIONS_PII_KEY_FILE")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for home in (a_file, a_file / "below"):  # a file where a folder should be
        line = refused(monkeypatch, HOME=str(home))
        assert str(home) in line and "SESSIONS_PII_KEY_FILE" in line and "--pii" in line
    # A folder the user may not write: root's permission overrides dropped, in the CLI.
    export = write("a.ndjson", ndjson([session(1)]))
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    for env in ({"HOME": str(read_only)}, {"SESSIONS_PII_KEY_FILE": str(read_only / "pii.key")}):
        line = one_line(ingest_with_env(tmp_path / "wh", export, env), 2)
        assert str(read_only) in line and "cannot create" in line and "--pii" in line
    assert not (tmp_path / "wh" / "sessions").exists()
    assert list(read_only.iterdir()) == []


def load_keys(base: Path, rounds: int, start: Any, out: Any) -> None:
    """One of several processes that each want the key of a fresh path, at the same moment."""
    for n in range(rounds):
        os.environ["SESSIONS_PII_KEY_FILE"] = str(base / str(n) / "pii.key")
        start.wait(timeout=30)
        try:
            out.put((n, pii.fingerprint(pii.load_key(lambda message: None))))
        except Exception as exc:  # the failure is the test's finding
            out.put((n, f"{type(exc).__name__}: {exc}"))


def test_first_uses_at_the_same_moment_agree_on_one_key(tmp_path: Path) -> None:
    workers, rounds = 4, 60
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(target=load_keys, args=(tmp_path, rounds, start, out))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    found: dict[int, set[str]] = {}
    for _ in range(workers * rounds):
        n, fingerprint = out.get(timeout=60)
        found.setdefault(n, set()).add(fingerprint)
    for process in processes:
        process.join(timeout=60)
    assert all(len(prints) == 1 for prints in found.values()), found
    assert all(len(p) == 16 for prints in found.values() for p in prints), found
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "pii.key"]
    assert leftovers == []


def test_first_ingests_at_the_same_moment_share_one_key(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "fresh" / "pii.key"
    monkeypatch.setenv("SESSIONS_PII_KEY_FILE", str(key_file))
    export = write("a.ndjson", ndjson([session(1, source="+14155550150")]))
    runs = [
        subprocess.Popen(
            [str(SESSIONS), "ingest", str(export), "-w", str(tmp_path / f"wh{n}"), "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    results = [(run.wait(timeout=120), run.communicate()[1]) for run in runs]
    assert all(code == 0 for code, _ in results), results
    assert sum("created a pseudonymisation key" in err for _, err in results) == 1
    prints = {manifest(tmp_path / f"wh{n}")["key_fingerprint"] for n in range(3)}
    assert len(prints) == 1
    assert len({stored(tmp_path / f"wh{n}")[0]["source"] for n in range(3)}) == 1


def as_format(rows: list[dict[str, Any]], fmt: str) -> tuple[str, bytes]:
    if fmt == "csv":
        header = sorted({k for r in rows for k in r})
        lines = [",".join(header)]
        for r in rows:
            cells = ["" if r.get(k) is None else str(r[k]) for k in header]
            lines.append(",".join(f'"{c}"' for c in cells))
        return "calls.csv", ("\r\n".join(lines) + "\r\n").encode()
    if fmt == "pages":
        page = {"items": rows, "page": 0, "page_size": 25, "total_pages": 1}
        return "pages.ndjson.gz", ndjson([page])
    return "calls.json", json.dumps(rows, indent=1).encode()


@pytest.mark.parametrize("fmt", ["csv", "pages", "json"])
def test_every_format_is_protected_alike(write: Write, wh: Path, fmt: str) -> None:
    rows = [
        session(1, caller_number="415 555 0124", is_outbound=True, target="(415) 555-0125"),
        session(2, caller_number="zq.caller@example.com", is_outbound=False, target="+18005550100"),
        session(3, caller_number="x", duration="0044 20 7946 0958"),
    ]
    name, content = as_format(rows, fmt)
    report = ingest([str(write(name, content))], wh)
    assert (report.rows_accepted, report.rows_rejected) == (2, 1)
    found = squeezed(everything_stored(wh) + json.dumps(report.to_dict()))
    assert [
        core for core in ("4155550124", "4155550125", "2079460958", "zqcaller") if core in found
    ] == []
    assert "+18005550100" in found  # the agent's own line, inbound


@pytest.mark.parametrize(
    "record",
    [
        '{"note": "line one\\nzq.caller@example.com"}',
        '{"note": "\\tzq.caller@example.com\\t+1 415 555 0124"}',
        '{"note": "\\u00e9zq@example.com"}',
        '{"n": 4155550124, "m": -4155550124.5, "l": [4155550124,4155550125], "k": 1e7}',
        '{"note": "quoted \\"4155550124\\" and :4155550125,"}',
        "[4155550124]",
    ],
)
def test_json_stays_json(record: str) -> None:
    (redacted,) = pii.redact_texts([record])
    (column,) = pii.redact_column(pl.Series([record])).to_list()
    assert redacted == column
    assert "[redacted]" in redacted and "41555501" not in redacted and "zq" not in redacted
    json.loads(redacted)
