"""One measured case: a separate process, timed from outside, its peak RSS from wait4()."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    case: str
    rows: int
    input_bytes: int
    seconds: float
    peak_rss: int  # bytes
    cpu_seconds: float = 0.0  # user + system, all threads
    reference: str = ""  # the case this one's ratio is taken to
    target: str = ""  # the target for this case, as text
    met: bool | None = None  # None: no target, or not decided
    # The ratio shown is this case's time over its reference's (a slowdown), not a speed.
    time_ratio: bool = False
    runs: list[tuple[float, int, float]] = field(default_factory=list)  # measure()'s, each

    def again(self, more: Result) -> None:
        """Take `more` runs of the same case in: the median of them all from now on."""
        self.runs += more.runs
        self.seconds = statistics.median(r[0] for r in self.runs)
        self.peak_rss = max(r[1] for r in self.runs)
        self.cpu_seconds = statistics.median(r[2] for r in self.runs)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / 1e6 / self.seconds


class Failed(Exception):
    """A measured command exited with an error."""


def measure(command: list[str], *, cwd: Path | None = None) -> tuple[float, int, float]:
    """Wall time, peak RSS and CPU time of one run of `command`. wait4() reports the peak of
    the process and of the children it waited for (Spark's JVM, if pyspark reaps it)."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.monotonic() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise Failed(f"exit {os.waitstatus_to_exitcode(status)}: {' '.join(command)}")
    return elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def repeated(
    case: str,
    command: list[str],
    rows: int,
    size: int,
    repeat: int,
    reset: Path | None = None,
    reference: str = "",
    cwd: Path | None = None,
) -> Result:
    """The median of `repeat` runs (peak RSS: the largest); `reset` is removed before each."""
    runs = []
    for _ in range(repeat):
        if reset is not None:
            shutil.rmtree(reset, ignore_errors=True)
        runs.append(measure(command, cwd=cwd))
    seconds = statistics.median(r[0] for r in runs)
    peak = max(r[1] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    print(f"  {case}: {seconds:.2f} s, CPU {cpu:.2f} s, peak {peak / 2**20:,.0f} MiB", flush=True)
    return Result(case, rows, size, seconds, peak, cpu, reference=reference, runs=runs)


def python(code: str) -> list[str]:
    return [str(BIN / "python"), "-c", code]


def script(path: Path, *args: object) -> list[str]:
    return [str(BIN / "python"), str(path), *(str(a) for a in args)]
