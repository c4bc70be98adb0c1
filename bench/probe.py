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
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
from measure import BIN
from peer_cases import PEERS

from pipeline.generate import as_text, sessions

# (what is wrong, how the line is spoiled); every line holds exactly one defect.
_DURATION = re.compile(r'"duration":[^,}]*')
DEFECTS: list[tuple[str, object]] = [
    ("negative duration", lambda s: _DURATION.sub('"duration":-12.5', s)),
    ("duration not a number", lambda s: _DURATION.sub('"duration":"n/a"', s)),
    ("duration as text", lambda s: _DURATION.sub('"duration":"12.5"', s)),
    ("duration 1e308", lambda s: _DURATION.sub('"duration":1e308', s)),
    ("timestamp does not parse", lambda s: s.replace('"timestamp":"', '"timestamp":"yesterday ')),
    (
        "timestamp 0001-01-01",
        lambda s: re.sub(r'"timestamp":"[^"]*"', '"timestamp":"0001-01-01T00:00:00.000Z"', s),
    ),
    ("timestamp missing", lambda s: re.sub(r'"timestamp":"[^"]*"', '"timestamp":null', s)),
    ("boolean not a boolean", lambda s: s.replace('"is_test":false', '"is_test":"maybe"')),
    (
        "integer 2.5",
        lambda s: re.sub(r'"prompt_version_number":\d+', '"prompt_version_number":2.5', s),
    ),
    ("unknown key", lambda s: s[:-1] + ',"sentiment_score":0.82}'),
    ("key twice", lambda s: s[:-1] + ',"duration":99.0}'),
    ("both spellings of a key", lambda s: s[:-1] + ',"agentId":"agent-999"}'),
    ("line cut in half", lambda s: s[: len(s) // 2]),
    ("not an object", lambda s: "[1, 2, 3]"),
    ("re-delivery, duration changed", None),  # of the "unknown key" line's session
    ("re-delivery, same content", None),  # the line above again
]
REDELIVERED = 9  # the index of the line whose session comes again


@dataclass
class Probed:
    name: str
    finished: bool
    error: str = ""
    stored: int | None = None
    rejects: int = 0
    plain_callers: bool | None = None  # a stored `source` equal to an input identity
    latest: str = ""  # which delivery of the re-delivered session it kept

    @property
    def accounted(self) -> int | None:
        # The two re-deliveries are accounted for by the one session they update.
        if self.stored is None:
            return None
        merged = 0
        if self.latest in ("latest", "first") or self.latest.startswith("other"):
            merged = 2
        elif self.latest.startswith("all "):
            merged = 3 - int(self.latest.split()[1])
        return self.stored + self.rejects + merged


def write(path: Path) -> tuple[str, list[str], float, float]:
    """The probe file; returns the re-delivered session_id, the plain callers, and its first
    and latest durations."""
    data = as_text(sessions(64, seed=11)).filter(
        pl.col("duration").is_not_null() & ~pl.col("is_test") & pl.col("experiment_id").is_null()
    )
    data = data.head(16).with_columns(session_id=pl.lit("probe_") + pl.col("session_id"))
    good = data.write_ndjson().splitlines()
    lines = []
    for (_, spoil), line in zip(DEFECTS, good, strict=True):
        if callable(spoil):
            lines.append(spoil(line))
    first = data["duration"][REDELIVERED]
    latest = round(first + 100.0, 3)
    again = _DURATION.sub(f'"duration":{latest}', good[REDELIVERED])
    lines += [again, again]
    path.write_text("\n".join(lines) + "\n")
    return data["session_id"][REDELIVERED], data["source"].to_list(), first, latest


def run(work: Path) -> list[Probed]:
    work.mkdir(parents=True, exist_ok=True)
    path = work / "probe.ndjson"
    key, callers, first, latest = write(path)
    results: list[Probed] = []
    for peer in PEERS:
        if (why := peer.missing()) is not None:
            print(f"  probe: {peer.name} not run ({why})", flush=True)
            continue
        out = work / f"probe_{peer.script.removesuffix('.py')}"
        shutil.rmtree(out, ignore_errors=True)
        command = [str(BIN / "python"), str(peer.path), str(path), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=work, timeout=600)
        probed = Probed(peer.name, done.returncode == 0, _error(done.stderr))
        if probed.finished:
            con = duckdb.connect()
            _read_back(probed, peer.relation(con, out), key, callers, first, latest)
        results.append(probed)
    results.append(_ingest(work, path, key, callers, first, latest))
    for r in results:
        outcome = "finished" if r.finished else "aborted: " + r.error
        print(f"  probe: {r.name}: {outcome}, stored {r.stored}, rejects {r.rejects}", flush=True)
    return results


def _ingest(
    work: Path, path: Path, key: str, callers: list[str], first: float, latest: float
) -> Probed:
    warehouse = work / "probe_wh"
    shutil.rmtree(warehouse, ignore_errors=True)
    command = [str(BIN / "sessions"), "ingest", str(path), "-w", str(warehouse), "-q"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    probed = Probed("sessions ingest", done.returncode == 0, _error(done.stderr))
    if probed.finished:
        con = duckdb.connect(str(warehouse / "sessions.duckdb"), read_only=True)
        _read_back(probed, con.sql("SELECT * FROM sessions"), key, callers, first, latest)
        rejects = con.execute("SELECT count(*) FROM rejects WHERE reason IS NOT NULL").fetchone()
        probed.rejects = rejects[0] if rejects else 0
    return probed


def _read_back(
    probed: Probed,
    stored: duckdb.DuckDBPyRelation,
    key: str,
    callers: list[str],
    first: float,
    latest: float,
) -> None:
    frame = stored.pl()
    probed.stored = len(frame)
    probed.plain_callers = bool(frame["source"].cast(pl.String).is_in(callers).any())
    kept = frame.filter(pl.col("session_id") == key)["duration"].cast(pl.Float64).to_list()
    if not kept:
        probed.latest = "none"
    elif len(kept) > 1:
        probed.latest = f"all {len(kept)}"
    elif kept[0] == latest:
        probed.latest = "latest"
    elif kept[0] == first:
        probed.latest = "first"
    else:
        probed.latest = f"other ({kept[0]})"


def _error(stderr: str) -> str:
    """The last line of an error that says something (a traceback's is the exception)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # dlt wraps the reader's error in a sentence about its pipe: keep the reader's.
    last = lines[-1].split("caused an exception: ")[-1] if lines else ""
    return last[:160]


def checks_column(probed: Probed) -> str:
    """The "what it checks" of the results table, from the probe."""
    if not probed.finished:
        return f"aborts the whole 16-line probe ({probed.error[:90]})"
    parts = [
        f"stores {probed.stored} of 16 lines",
        f"{probed.rejects} kept as rejects with a reason",
        f"{16 - (probed.accounted or 0)} unaccounted",
        "plain callers stored" if probed.plain_callers else "callers pseudonymised",
        f"re-delivery: {probed.latest}",
    ]
    return ", ".join(parts)
