"""The exports `make bench` measures on, generated with `pipeline.generate` (deterministic).

Run as a script (`exports.py KIND PATH ROWS SEED OFFSET`) so that generating 5M sessions never
leaves its memory in the process that runs the benchmark. Kinds:

- ndjson, csv: the sessions as the API and the console export write them;
- pages: API list pages of 100 sessions, one page a line (NDJSON);
- pages_document: the same pages as one JSON document, an array of page objects;
- odd_ndjson, odd_csv: 1% bad rows and 1% re-deliveries (see `_odd`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.generate import as_text, pages, sessions

KINDS = ("ndjson", "csv", "pages", "pages_document", "odd_ndjson", "odd_csv")
PAGE_SIZE = 100
# One row in a hundred is bad, one session in a hundred is delivered again later in the file.
ODD_SHARE = 0.01


def write(kind: str, path: Path, rows: int, seed: int, offset: int = 0) -> None:
    data = as_text(sessions(rows, seed=seed))
    # Each export has its own keys, so that one ingested into another's warehouse adds to it.
    data = data.with_columns(session_id=pl.lit(f"b{offset}_") + data["session_id"])
    if kind == "ndjson":
        data.write_ndjson(path)
    elif kind == "csv":
        data.write_csv(path)
    elif kind == "pages":
        pages(data, PAGE_SIZE).write_ndjson(path)
    elif kind == "pages_document":
        pages(data, PAGE_SIZE).write_json(path)  # one array of page objects
    elif kind in ("odd_ndjson", "odd_csv"):
        _odd(data, path, csv=kind == "odd_csv", seed=seed)
    else:
        raise SystemExit(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def _odd(data: pl.DataFrame, path: Path, *, csv: bool, seed: int) -> None:
    """`data` with 1% re-deliveries (the same session_id again, later in the file, with a
    changed duration) and then 1% bad lines, one defect each, in turn:

    1. a negative duration (parses, fails Pandera's `ge(0)`);
    2. a duration that is not a number;
    3. a timestamp that does not parse;
    4. a line cut in half (not JSON; in CSV, too few fields);
    5. NDJSON: an unknown key (kept in `extra_fields`, not a reject);
       CSV: a boolean that is not one (a CSV has no per-line keys).
    The bad lines are never a session that is re-delivered, so that every re-delivery is a
    clean update of a clean first delivery.
    """
    rng = np.random.default_rng(seed + 100)
    count = len(data)
    again = np.sort(rng.choice(count, size=int(count * ODD_SHARE), replace=False))
    # Each re-delivery goes anywhere after its first delivery (x.5: after that line).
    later = again + rng.uniform(1, count - again + 1).astype(np.int64) - 0.5
    changed = (
        data[again]
        .with_columns(duration=(pl.col("duration").fill_null(60.0) * 1.5 + 1).round(3))
        .with_columns(_at=pl.Series(later, dtype=pl.Float64))
    )
    frame = (
        pl.concat([data.with_columns(_at=pl.int_range(count, dtype=pl.Int64).cast(pl.Float64)),
                   changed])
        .sort("_at")
        .drop("_at")
    )  # fmt: skip
    redelivered = set(data["session_id"][again].to_list())
    candidates = np.flatnonzero(~frame["session_id"].is_in(list(redelivered)).to_numpy())
    bad = np.sort(rng.choice(candidates, size=int(count * ODD_SHARE), replace=False))
    defect = np.zeros(len(frame), dtype=np.int8)
    defect[bad] = 1 + np.arange(len(bad)) % 5
    tmp = path.with_name(path.name + ".clean")
    if csv:
        frame.write_csv(tmp)
    else:
        frame.write_ndjson(tmp)
    columns = frame.columns
    with tmp.open() as clean, path.open("w") as out:
        if csv:
            out.write(clean.readline())  # the header
        for line, kind in zip(clean, defect, strict=True):
            out.write(_spoil(line, int(kind), csv, columns) if kind else line)
    tmp.unlink()


_DURATION = re.compile(r'"duration":[^,}]*')


def _spoil(line: str, kind: int, csv: bool, columns: list[str]) -> str:
    if kind == 4:
        return line[: len(line) // 2] + "\n"
    if csv:
        # The generated CSV quotes nothing (no value holds a comma or a quote).
        fields = line.rstrip("\n").split(",")
        name, value = {
            1: ("duration", "-12.5"),
            2: ("duration", "n/a"),
            3: ("timestamp", "yesterday 10:00"),
            5: ("is_test", "maybe"),
        }[kind]
        fields[columns.index(name)] = value
        return ",".join(fields) + "\n"
    if kind == 1:
        return _DURATION.sub('"duration":-12.5', line, count=1)
    if kind == 2:
        return _DURATION.sub('"duration":"n/a"', line, count=1)
    if kind == 3:
        return line.replace('"timestamp":"', '"timestamp":"yesterday ', 1)
    return line.rstrip("\n")[:-1] + ',"sentiment_score":0.82}\n'


if __name__ == "__main__":
    kind, path, rows, seed, offset = sys.argv[1:6]
    write(kind, Path(path), int(rows), int(seed), int(offset))
