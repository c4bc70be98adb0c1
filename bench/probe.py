"""What each peer checks, measured: a 16-line NDJSON file with one defect a line, given to
every peer and to `sessions ingest`; then what each one stored is read back.

Per peer: did it finish or abort the whole file (and with what first line of error); how many
sessions it stored; how many lines it kept as rejects with a reason; how many lines are
accounted for (stored, rejected, or a re-delivery merged into its session); whether any
stored caller (`source`) is the caller's plain identity; which delivery of a re-delivered
session it kept.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
from measure import BIN
from peer_cases import PEERS, Peer

from pipeline.generate import as_text, sessions

# (what is wrong, the field it spoils, how the line is spoiled); one defect a line.
_DURATION = re.compile(r'"duration":[^,}]*')
_TIMESTAMP = re.compile(r'"timestamp":"[^"]*"')
Spoil = Callable[[str], str]
DEFECTS: list[tuple[str, str, Spoil | None]] = [
    ("negative duration", "duration", lambda s: _DURATION.sub('"duration":-12.5', s)),
    ("duration not a number", "duration", lambda s: _DURATION.sub('"duration":"n/a"', s)),
    ("duration as text", "duration", lambda s: _DURATION.sub('"duration":"12.5"', s)),
    ("duration 1e308", "duration", lambda s: _DURATION.sub('"duration":1e308', s)),
    (
        "timestamp does not parse",
        "timestamp",
        lambda s: s.replace('"timestamp":"', '"timestamp":"yesterday '),
    ),
    (
        "timestamp 0001-01-01",
        "timestamp",
        lambda s: _TIMESTAMP.sub('"timestamp":"0001-01-01T00:00:00.000Z"', s),
    ),
    ("timestamp missing", "timestamp", lambda s: _TIMESTAMP.sub('"timestamp":null', s)),
    ("not a boolean", "is_test", lambda s: s.replace('"is_test":false', '"is_test":"maybe"')),
    (
        "integer 2.5",
        "prompt_version_number",
        lambda s: re.sub(r'"prompt_version_number":\d+', '"prompt_version_number":2.5', s),
    ),
    ("unknown key", "", lambda s: s[:-1] + ',"sentiment_score":0.82}'),
    ("key twice", "duration", lambda s: s[:-1] + ',"duration":99.0}'),
    ("both spellings of a key", "agent_id", lambda s: s[:-1] + ',"agentId":"agent-999"}'),
    ("line cut in half", "", lambda s: s[: len(s) // 2]),
    ("not an object", "", lambda s: "[1, 2, 3]"),
    ("re-delivery, duration changed", "", None),  # of the "unknown key" line's session
    ("re-delivery, same content", "", None),  # the line above again
]
REDELIVERED = 9  # the index of the line whose session comes again
NOT_JSON = ("line cut in half", "not an object")


@dataclass(frozen=True)
class Probe:
    """The probe file and what is known of its lines."""

    path: Path
    lines: int
    key: str  # the re-delivered session
    first: float  # its first duration
    latest: float  # its duration in the later deliveries
    callers: list[str]  # every `source` of the file, in plain text
    spoiled: dict[str, str]  # session_id -> the field its line holds a bad value in


@dataclass
class Probed:
    name: str
    finished: bool
    error: str = ""
    stored: int | None = None
    rejects: int = 0
    plain_callers: bool | None = None  # a stored `source` equal to an input identity
    latest: str = ""  # which delivery of the re-delivered session it kept
    nulled: int = 0  # rows stored with the spoiled field null: a bad value silently dropped
    lines: int = 16

    @property
    def unaccounted(self) -> int | None:
        """Lines neither stored, nor kept as rejects, nor merged into a session they update."""
        if self.stored is None:
            return None
        merged = 0
        if self.latest in ("latest", "first") or self.latest.startswith("other"):
            merged = 2
        elif self.latest.startswith("all "):
            merged = 3 - int(self.latest.split()[1])
        return self.lines - self.stored - self.rejects - merged


def write(path: Path, *, json_only: bool = False, clean: bool = False) -> Probe:
    """The probe file. `json_only`: without the lines that are not a JSON object (for a peer
    whose lenient reader still aborts on those); `clean`: every line as generated but the two
    re-deliveries (what a peer that aborts on any defect does with a re-delivered session)."""
    data = as_text(sessions(64, seed=11)).filter(
        pl.col("duration").is_not_null() & ~pl.col("is_test") & pl.col("experiment_id").is_null()
    )
    data = data.head(len(DEFECTS)).with_columns(session_id=pl.lit("probe_") + pl.col("session_id"))
    good = data.write_ndjson().splitlines()
    ids = data["session_id"].to_list()
    lines, spoiled = [], {}
    for (name, field, spoil), line, key in zip(DEFECTS, good, ids, strict=True):
        if spoil is None or (json_only and name in NOT_JSON):
            continue
        if clean:
            lines.append(line)
            continue
        lines.append(spoil(line))
        if field:
            spoiled[key] = field
    first = data["duration"][REDELIVERED]
    latest = round(first + 100.0, 3)
    again = _DURATION.sub(f'"duration":{latest}', good[REDELIVERED])
    lines += [again, again]
    path.write_text("\n".join(lines) + "\n")
    callers = data["source"].to_list()
    return Probe(path, len(lines), ids[REDELIVERED], first, latest, callers, spoiled)


def run(work: Path) -> list[Probed]:
    work.mkdir(parents=True, exist_ok=True)
    probe = write(work / "probe.ndjson")
    json_only = write(work / "probe_json_lines.ndjson", json_only=True)
    clean = write(work / "probe_clean.ndjson", clean=True)
    results: list[Probed] = []
    for peer in PEERS:
        if (why := peer.missing()) is not None:
            print(f"  probe: {peer.name} not run ({why})", flush=True)
            continue
        strict = _peer(peer, probe, work, peer.name)
        results.append(strict)
        if peer.lenient:
            lenient = _peer(peer, probe, work, f"{peer.name}, lenient", lenient=True)
            if not lenient.finished:
                results.append(lenient)
                name = f"{peer.name}, lenient, the JSON lines only"
                lenient = _peer(peer, json_only, work, name, lenient=True)
            results.append(lenient)
        if not strict.finished:
            name = f"{peer.name}, no defect but the re-delivery"
            results.append(_peer(peer, clean, work, name))
    results.append(_ingest(work, probe))
    for r in results:
        outcome = "finished" if r.finished else "aborted: " + r.error
        print(f"  probe: {r.name}: {outcome}, stored {r.stored}, rejects {r.rejects}", flush=True)
    return results


def _peer(peer: Peer, probe: Probe, work: Path, name: str, *, lenient: bool = False) -> Probed:
    out = work / f"probe_{peer.script.removesuffix('.py')}"
    shutil.rmtree(out, ignore_errors=True)
    command = peer.command(probe.path, out, lenient=lenient)
    done = subprocess.run(command, capture_output=True, text=True, cwd=work, timeout=600)
    probed = Probed(name, done.returncode == 0, _error(done.stderr))
    probed.lines = probe.lines
    if probed.finished:
        con = duckdb.connect()
        _read_back(probed, peer.relation(con, out), probe)
    return probed


def _ingest(work: Path, probe: Probe) -> Probed:
    warehouse = work / "probe_wh"
    shutil.rmtree(warehouse, ignore_errors=True)
    command = [str(BIN / "sessions"), "ingest", str(probe.path), "-w", str(warehouse), "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    probed = Probed("sessions ingest", done.returncode == 0, _error(done.stderr))
    if probed.finished:
        con = duckdb.connect(str(warehouse / "sessions.duckdb"), read_only=True)
        _read_back(probed, con.sql("SELECT * FROM sessions"), probe)
        rejects = con.execute("SELECT count(*) FROM rejects WHERE reason IS NOT NULL").fetchone()
        probed.rejects = rejects[0] if rejects else 0
    return probed


def _read_back(probed: Probed, stored: duckdb.DuckDBPyRelation, probe: Probe) -> None:
    frame = stored.pl()
    probed.stored = len(frame)
    probed.plain_callers = bool(frame["source"].cast(pl.String).is_in(probe.callers).any())
    for key, field in probe.spoiled.items():
        row = frame.filter(pl.col("session_id") == key)
        if len(row) and field in row.columns and row[field].is_null().any():
            probed.nulled += 1
    kept = frame.filter(pl.col("session_id") == probe.key)["duration"].cast(pl.Float64)
    if len(kept) == 0:
        probed.latest = "none"
    elif len(kept) > 1:
        probed.latest = f"all {len(kept)}"
    elif kept[0] == probe.latest:
        probed.latest = "latest"
    elif kept[0] == probe.first:
        probed.latest = "first"
    else:
        probed.latest = f"other ({kept[0]})"


def _error(stderr: str) -> str:
    """The last line of an error that says something (a traceback's is the exception)."""
    # Spark names its errors by a class in brackets inside Py4J's message; the last is the
    # cause (the first says only that a file could not be read).
    if spark := [m[0] for m in re.finditer(r"\[[A-Z_]+(\.[A-Z_]+)*\][^\n]*", stderr)]:
        return spark[-1][:160]
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # The last line naming an exception: a Python traceback ends with it, but one that carries
    # a Java stack trace (Spark's) ends with "... 1 more".
    named = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b", line)]
    last = (named or lines or [""])[-1]
    # dlt wraps the reader's error in a sentence about its pipe: keep the reader's.
    return last.split("caused an exception: ")[-1][:160]


def checks_column(probed: Probed) -> str:
    """The "what it checks" of the results table, from the probe."""
    if not probed.finished:
        return f"aborts the whole file ({probed.error[:90]})"
    parts = [
        f"stores {probed.stored} of {probed.lines} lines",
        f"{probed.rejects} kept as rejects with a reason",
        f"{probed.unaccounted} lost without a trace",
        f"{probed.nulled} bad values stored as null",
        "plain callers stored" if probed.plain_callers else "callers pseudonymised",
        f"re-delivery: {probed.latest} kept",
    ]
    return ", ".join(parts)
