"""The `sessions` command line: options in, a library call, output out."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from pipeline import __version__, imports, stdout, stops
from pipeline.errors import InputError, PipelineError
from pipeline.memory import ENV as MEMORY_LIMIT_ENV
from pipeline.memory import MEMORY_LIMIT
from pipeline.scope import Scope

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WAREHOUSE = "data/warehouse"

warehouse_option = click.option(
    "--warehouse",
    "-w",
    default=lambda: os.environ.get("SESSIONS_WAREHOUSE", DEFAULT_WAREHOUSE),
    show_default=f"$SESSIONS_WAREHOUSE or {DEFAULT_WAREHOUSE}",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="The warehouse: a local folder, or an S3 prefix (credentials, region and endpoint "
    "from the usual AWS_* environment variables).",
)

as_of_option = click.option(
    "--as-of",
    metavar="VERSION|TIME",
    default=None,
    help="Read the warehouse as it was: a table version (see `sessions history`), or an ISO "
    "8601 time, UTC unless it has an offset (e.g. 2026-11-23 or 2026-11-23T09:00+01:00): the "
    "newest version committed by then. Exit 2 if it is neither; 3 if the warehouse has no such "
    "version (none yet then, or newer than its latest, or its files deleted by vacuum).",
)


class NumberRange(click.FloatRange):
    """A `FloatRange` that refuses NaN: it compares false with both bounds, and so passed
    click's own check (`--confidence nan` reached the statistics)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


# The options of an ingest, which `ingest` and `pull` (which ingests what it fetched) share.
json_report_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the report as one JSON object."
)

max_reject_rate_option = click.option(
    "--max-reject-rate",
    type=NumberRange(0, 1),
    default=None,
    metavar="RATE",
    help="Fail (exit 4, nothing committed) when more than this share of rows is rejected, "
    "e.g. 0.05.",
)

pii_option = click.option(
    "--pii",
    type=click.Choice(["pseudonymise", "keep", "drop"]),
    default="pseudonymise",
    show_default=True,
    help="What to store of caller identities (`source`): a keyed pseudonym, the raw value, or "
    "nothing. One warehouse takes one choice. The key is $SESSIONS_PII_KEY, or the file "
    "$SESSIONS_PII_KEY_FILE (default ~/.config/sessions-analytics/pii.key, created on first use).",
)

memory_limit_option = click.option(
    "--memory-limit",
    envvar=MEMORY_LIMIT_ENV,
    show_envvar=True,
    default=MEMORY_LIMIT,
    show_default=True,
    metavar="SIZE",
    help="Memory DuckDB may use before it spills to disk (in the warehouse's .staging folder), "
    "e.g. 512MB or 1GB. The whole ingest takes about twice this.",
)

quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="Print nothing but errors (no report, no progress)."
)

engine_option = click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="What runs the views: DuckDB (in this process), or Spark (the same views, transpiled; "
    "needs `make spark`). Same output. Exit 5 if Spark is not installed or does not start.",
)

spark_master_option = click.option(
    "--spark-master",
    metavar="URL",
    envvar="SPARK_MASTER",
    default=None,
    help="Spark's master with --engine spark: local[*] (the default), spark://HOST:7077, "
    "yarn, ... ($SPARK_MASTER). A Spark Connect server from $SPARK_REMOTE instead.",
)


def _as_of(text: str | None) -> Any:
    from pipeline.store.tables import parse_as_of

    return parse_as_of(text) if text is not None else None


class Stopped(BaseException):
    """SIGTERM or SIGINT arrived: unwind, so that the ingest abandons its run."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        super().__init__(self.signal_name)


_received: list[int] = []


def _stop(number: int, _frame: object) -> None:
    # Remembered as well as raised: DuckDB turns an exception raised inside a running query
    # into its own "Query interrupted" error.
    _received.append(number)
    if stops.holding():  # the ingest is committing: the stop waits for the commit's end
        stops.defer(number)
        return
    raise Stopped(number)


def _hold_stops() -> None:
    """From here on the process finishes what it does: SIGINT and SIGTERM are ignored. (While
    the interpreter shuts down they would otherwise kill it outright, whatever it finished.
    Ignored, not blocked: a block holds for one thread, and DuckDB's threads would take them.)"""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)


def _exit_stopped(number: int) -> NoReturn:
    click.echo(
        f"error: stopped by {signal.Signals(number).name}; the warehouse is as it was", err=True
    )
    # The run is abandoned by now.
    _leave(128 + number)


def _leave(code: int) -> NoReturn:
    """Exit now, output flushed, without the interpreter's shutdown: a DuckDB or polars worker
    thread still finishing interrupted work would want the GIL then, and a thread refused it
    at shutdown aborts the process (exit -6 instead of `code`)."""
    # Output that cannot be written (a full disk) is lost either way: the code still stands.
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _internal_error(exc: BaseException) -> NoReturn:
    if os.environ.get("SESSIONS_DEBUG"):
        traceback.print_exception(exc)
    click.echo(
        f"internal error: {type(exc).__name__}: {exc} "
        "(a bug; SESSIONS_DEBUG=1 shows the traceback)",
        err=True,
    )
    sys.exit(70)


def _check_utf8(ctx: click.Context) -> None:
    """Refuse (exit 2) an option or argument that is not UTF-8 text (bytes that are not UTF-8
    in argv or the environment reach Python as lone surrogates): a warehouse's path, an agent
    or a URL is written into files, queries and requests as UTF-8. Input files are exempt:
    they are only opened, and a file's name may be any bytes."""
    for param in ctx.command.params:
        if param.name == "paths":
            continue
        value = ctx.params.get(param.name or "")
        for text in value if isinstance(value, tuple | list) else [value]:
            if isinstance(text, str | Path) and not _is_utf8(str(text)):
                name = (
                    param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
                )
                shown = os.fsencode(str(text))
                raise InputError(name, f"{shown!r} is not UTF-8 text")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _exit_if_stdout_failed(exc: BaseException) -> None:
    """Exit with one line if `exc` is stdout refusing the output: a full disk or a closed
    stdout is exit 3, like any file that cannot be written; a reader that stopped reading
    (`| head`) is a quiet exit 0. (A command that changes the warehouse prints after its
    commit: what it did is done either way.) Returns if `exc` is something else."""
    failed = stdout.failure(exc)
    if failed is None:
        return
    stdout.silence()
    if isinstance(failed, BrokenPipeError):
        sys.exit(0)
    click.echo(
        f"error: stdout: cannot write the output: {failed.strerror or failed} "
        "(the command ran; only its output is lost)",
        err=True,
    )
    sys.exit(3)


def _user_errors(func: F) -> F:
    """Turn every failure into one line on stderr and an exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            _check_utf8(click.get_current_context())
            result = func(*args, **kwargs)
        except (SystemExit, GeneratorExit):
            raise
        # BaseException: a panic in a Rust library (polars, deltalake) reaches Python as
        # pyo3's PanicException, which is not an Exception; it is a bug, and gets its line.
        except BaseException as exc:
            report = getattr(exc, "report", None)
            # After a signal, whatever unwound (DuckDB may wrap our exception in its own) is
            # the stop.
            if _received or isinstance(exc, Stopped | KeyboardInterrupt):
                number = _received[0] if _received else signal.SIGINT
                if report is None or not report.committed:
                    _exit_stopped(number)
                _hold_stops()
                _show_anyway(report, kwargs)
                name = signal.Signals(number).name
                click.echo(
                    f"note: {name} arrived after the commit; the ingest is complete", err=True
                )
                _leave(0)
            if not isinstance(exc, PipelineError):
                _exit_if_stdout_failed(exc)
                _internal_error(exc)
            if report is not None and (report.files or kwargs.get("as_json")):
                _show_anyway(report, kwargs)
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        _hold_stops()
        return result

    return wrapper  # type: ignore[return-value]


def _without_pandas(func: F) -> F:
    """Run the command as where pandas and hypothesis are not installed, on every thread of
    it (`pipeline.imports`): no command needs them, and pyarrow and pandera loaded them
    anyway where they are installed, about 1 s of every command (a sixth of an ingest of 1M
    sessions, a third of `sessions stats`). Not with `--engine spark`: the client of Spark
    Connect (`SPARK_REMOTE`) needs pandas."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("engine") == "spark":
            return func(*args, **kwargs)
        with imports.hidden(("pandas", "hypothesis"), every_thread=True):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _watched(quiet: bool, as_json: bool) -> bool:
    """Whether a person watches the command: progress only for a terminal (stderr may be
    closed), and not with --quiet or --json."""
    return sys.stderr is not None and sys.stderr.isatty() and not (quiet or as_json)


def _show_anyway(report: Any, options: dict[str, Any]) -> None:
    """`_show`, on the way out with another exit code: stdout that cannot take the report
    (a full disk) does not change that code, nor add a traceback at exit."""
    try:
        _show(report, options)
    except OSError:
        stdout.silence()


def _show(report: Any, options: dict[str, Any]) -> None:
    """An ingest's report as the command's options ask: JSON, text, or nothing (--quiet)."""
    if options.get("as_json"):
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif not options.get("quiet"):
        click.echo(report.to_text())


class _Sessions(click.Group):
    """The command group, whose stdout is `stdout.Stdout` from the start: what click itself
    prints (`--help`, `--version`, before any command runs) fails on a full disk or a closed
    stdout as a command's output does, one line and exit 3, not with a traceback."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        stdout.install()
        try:
            return super().main(*args, **kwargs)
        except OSError as exc:
            _exit_if_stdout_failed(exc)
            raise


@click.group(
    cls=_Sessions,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="sessions")
def main() -> None:
    """Duration analytics over Syllable session exports.

    Ingest raw exports into a validated Parquet warehouse, then ask it how long
    conversations take, per agent, channel and prompt version.

    \b
    Start with:
      sessions generate exports/          # synthetic exports to try things on
      sessions ingest exports/            # into data/warehouse/
    """
    # A stop request unwinds whatever runs, so that an ingest abandons its run cleanly.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _stop)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@warehouse_option
@json_report_option
@max_reject_rate_option
@click.option(
    "--naive-timezone",
    default="UTC",
    show_default=True,
    metavar="TZ",
    help="IANA timezone in which timestamps without an offset are read.",
)
@pii_option
@click.option(
    "--force", is_flag=True, help="Ingest files again even if their content was ingested before."
)
@memory_limit_option
@quiet_option
@_user_errors
@_without_pandas
def ingest(
    paths: tuple[str, ...],
    warehouse: str,
    as_json: bool,
    max_reject_rate: float | None,
    naive_timezone: str,
    pii: str,
    force: bool,
    memory_limit: str,
    quiet: bool,
) -> None:
    """Ingest session exports into the warehouse.

    PATHS are files, folders (every file below them) or globs, read in the order given;
    a later delivery of a session replaces an earlier one. Formats are recognised from the
    content: an API list page, a JSON array of sessions or of pages, NDJSON, or CSV with a
    header; any of them gzip-compressed. Keys may be snake_case or camelCase.

    Rows that fail validation go to <warehouse>/rejects/ with their reasons. The ingest is
    all or nothing: if a file cannot be read, or the job is stopped or killed, nothing is
    committed. A file whose exact content was ingested before is skipped (see --force).

    \b
    Exit codes:
      0  ingest committed (rejected rows or not)
      2  an input cannot be read (missing, truncated, not an export)
      3  the warehouse cannot be read or written, or DuckDB ran out of --memory-limit
      4  more rows rejected than --max-reject-rate allows (nothing committed)
      130/143  stopped by Ctrl-C / SIGTERM (nothing committed)
    """
    from pipeline.ingest import Options
    from pipeline.ingest import ingest as run_ingest
    from pipeline.pii import PiiMode
    from pipeline.progress import for_terminal

    options = Options(
        naive_timezone, max_reject_rate, force, PiiMode(pii), memory_limit=memory_limit
    )
    watched = _watched(quiet, as_json)
    with for_terminal(_sizes(paths, warehouse) if watched else [], not watched) as progress:
        report = run_ingest(
            paths,
            warehouse,
            options,
            progress=progress,
            # sys.stderr as it is at each note: while the bar shows, rich's stand-in, which
            # prints the note above the bar (written beside it, it would be overdrawn).
            notify=lambda m: click.echo(m, file=sys.stderr),
            on_commit=_hold_stops,
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif not quiet:
        click.echo(report.to_text())


def _sizes(paths: tuple[str, ...], warehouse: str) -> list[tuple[str, int]]:
    """The files an ingest of `paths` reads, with their sizes, for its progress. The ingest
    finds them again (a listing costs nothing) and says what is wrong with them, in its order
    of checks: here a path that names nothing is left to it."""
    from pipeline.ingest import find_exports
    from pipeline.store import location

    try:
        return [
            (str(f), f.stat().st_size) for f in find_exports(paths, location.of(warehouse).local)
        ]
    except (PipelineError, OSError):
        return []


@main.command()
@click.option(
    "--since",
    required=True,
    metavar="DATE|DATETIME|last",
    help="Sessions from this date (midnight UTC) or ISO 8601 time (UTC unless it has an "
    "offset); `last`: from the end of the last pull into this warehouse (same server and "
    "--agent), less --overlap.",
)
@click.option(
    "--until",
    metavar="DATE|DATETIME",
    help="Sessions before this date or time. Default: the moment the pull starts.",
)
@click.option("--agent", metavar="AGENT_ID", help="Only this agent's sessions.")
@warehouse_option
@click.option(
    "--raw",
    metavar="DIR",
    help="Where the pages are kept as received (gzip NDJSON, a file per pull). "
    "Default: <warehouse>/raw.",
)
@click.option(
    "--server-url",
    envvar="SYLLABLE_SERVER_URL",
    show_envvar=True,
    default="https://api.syllable.cloud",
    show_default=True,
    metavar="URL",
    help="The Syllable API.",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Sessions per page.",
)
@click.option(
    "--overlap",
    default="2d",
    show_default=True,
    metavar="DURATION",
    help="How far before the last pull's end `--since last` starts (30m, 36h, 2d), for "
    "sessions whose duration or label is filled in late.",
)
@click.option(
    "--retry-for",
    type=NumberRange(0, 86_400),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="How long to keep retrying a page after 429, 5xx, timeouts and lost connections "
    "(with backoff, honouring Retry-After).",
)
@click.option(
    "--max-time",
    type=NumberRange(1, 7 * 86_400),
    default=4 * 3600,
    show_default=True,
    metavar="SECONDS",
    help="The longest the pages may take, all retries included (exit 5 past it).",
)
@click.option(
    "--max-pages",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="The most pages one pull fetches (exit 5 past it): a server that never says it "
    "is done is not paged for ever.",
)
@json_report_option
@max_reject_rate_option
@pii_option
@memory_limit_option
@quiet_option
@_user_errors
@_without_pandas
def pull(
    since: str,
    until: str | None,
    agent: str | None,
    warehouse: str,
    raw: str | None,
    server_url: str,
    page_size: int,
    overlap: str,
    retry_for: float,
    max_time: float,
    max_pages: int,
    as_json: bool,
    max_reject_rate: float | None,
    pii: str,
    memory_limit: str,
    quiet: bool,
) -> None:
    """Pull sessions from the Syllable API into the warehouse.

    The API key is read from $SYLLABLE_API_KEY, and never printed or stored. Every page is
    kept as received under --raw, then ingested as `sessions ingest` would, in one commit:
    odd sessions are quarantined. A failure on the way commits nothing and says how far it
    got; the same pull again changes nothing.

    \b
    Exit codes:
      0  pulled and committed (rejected rows or not), or nothing new
      2  SYLLABLE_API_KEY missing or refused; a bad option; the API refused the request
      3  the warehouse cannot be read or written
      4  more rows rejected than --max-reject-rate allows (nothing committed)
      5  the API cannot be reached, kept failing after --retry-for, or paged past
         --max-time or --max-pages (nothing committed)
      130/143  stopped by Ctrl-C / SIGTERM (nothing committed)
    """
    from pipeline.ingest import Options
    from pipeline.pii import PiiMode
    from pipeline.progress import for_terminal
    from pipeline.pull.command import Request
    from pipeline.pull.command import pull as run_pull

    request = Request(
        since,
        until,
        agent,
        warehouse,
        raw,
        server_url,
        page_size,
        overlap,
        retry_for,
        max_time,
        max_pages,
    )
    watched = _watched(quiet, as_json)
    report = run_pull(
        request,
        Options(max_reject_rate=max_reject_rate, pii=PiiMode(pii), memory_limit=memory_limit),
        watched=watched,
        progress=lambda files: for_terminal(files if watched else [], not watched),
        notify=lambda m: click.echo(m, file=sys.stderr),
        on_commit=_hold_stops,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif not quiet:
        click.echo(report.to_text())


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--sessions",
    "count",
    type=click.IntRange(min=10),
    default=3000,
    show_default=True,
    help="Sessions to generate (10 or more).",
)
@click.option("--seed", default=7, show_default=True, help="Random seed; same seed, same files.")
@_user_errors
@_without_pandas
def generate(out_dir: Path, count: int, seed: int) -> None:
    """Write synthetic session exports in every format to OUT_DIR.

    Realistic and deterministic by seed: agents in several timezones, voice and chat
    channels, prompts with versions, log-normal durations, test sessions, null durations,
    and API pages that overlap.
    """
    from pipeline.generate import write_exports

    for path in write_exports(out_dir, count, seed):
        click.echo(f"wrote {path}")


# What the table format shows of a stats breakdown; csv and json give every column.
_STATS_COLUMNS = [
    "session_count",
    "duration_count",
    "duration_mean_s",
    "duration_p50_s",
    "duration_p90_s",
    "duration_p95_s",
    "duration_max_s",
    "user_terminated_share",
]
_STATS_KEYS = {
    "agent": ["agent_id", "agent_name"],
    "channel": ["channel_manager_service", "channel_manager_type"],
    "prompt-version": ["prompt_id", "prompt_name", "prompt_version_number", "prompt_version"],
    "day": ["agent_id", "agent_name", "local_date"],
}

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "markdown"]),
    default=None,
    help="Output format. Default: table on a terminal, csv when piped.",
)


def scope_options(func: F) -> F:
    """--since, --until, --agent, --channel and --include-tests, given to `func` as `scope`."""

    @wraps(func)
    def wrapper(
        *args: Any,
        since: datetime | None,
        until: datetime | None,
        agent: str | None,
        channel: str | None,
        include_tests: bool,
        **kwargs: Any,
    ) -> Any:
        if since and until and until < since:
            # An empty scope is what a swapped pair would otherwise give, without a word.
            raise click.BadParameter(
                f"{until:%Y-%m-%d} is before --since {since:%Y-%m-%d}", param_hint="'--until'"
            )
        scope = Scope(
            since=since.date() if since else None,
            until=until.date() if until else None,
            agent=agent,
            channel=channel,
            include_tests=include_tests,
        )
        return func(*args, scope=scope, **kwargs)

    options = [
        click.option(
            "--since", type=click.DateTime(["%Y-%m-%d"]), help="First local date, inclusive."
        ),
        click.option(
            "--until", type=click.DateTime(["%Y-%m-%d"]), help="Last local date, inclusive."
        ),
        click.option("--agent", metavar="AGENT_ID", help="Only this agent_id."),
        click.option("--channel", metavar="TYPE", help="Only this channel_manager_type."),
        click.option("--include-tests", is_flag=True, help="Count test sessions too."),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def _format(fmt: str | None) -> str:
    return fmt or ("table" if sys.stdout.isatty() else "csv")


@main.command()
@click.option(
    "--by",
    type=click.Choice(["agent", "channel", "prompt-version", "day"]),
    default="agent",
    show_default=True,
    help="The breakdown: one row per agent, per channel, per prompt version, or per agent "
    "and local day.",
)
@scope_options
@format_option
@click.option(
    "--all-columns", is_flag=True, help="Show every measure in the table and markdown formats."
)
@click.option("--explain", is_flag=True, help="Print what each measure means, and exit.")
@warehouse_option
@as_of_option
@engine_option
@spark_master_option
@_user_errors
@_without_pandas
def stats(
    by: str,
    scope: Scope,
    fmt: str | None,
    all_columns: bool,
    explain: bool,
    warehouse: str,
    as_of: str | None,
    engine: str,
    spark_master: str | None,
) -> None:
    """Duration statistics per agent, channel, prompt version or day.

    Test sessions are left out unless --include-tests. Dates are in each agent's timezone.
    The figures come from the warehouse's DuckDB views (see --explain for the definitions).

    \b
    Examples:
      sessions stats
      sessions stats --by prompt-version --since 2026-10-01 --format markdown
      sessions stats --by day --agent agent-101 --format csv > trend.csv
    """
    from pipeline import query, views

    if explain:
        click.echo(views.sql_text("metrics.md"), nl=False)
        return
    shown = None if all_columns else [*_STATS_KEYS[by], *_STATS_COLUMNS]
    output = _format(fmt)
    if engine == "spark":
        from pipeline.spark import run

        found = run.stats_rows(warehouse, by, scope, _as_of(as_of), spark_master)
    else:
        found = query.stats_rows(warehouse, by, scope, _as_of(as_of))
    with found as rows:
        count = _write(rows, output, shown)
    if output == "table" and shown is not None:
        hidden = len(rows.columns) - len(shown)
        click.echo(f"({count} rows; {hidden} more measures with --all-columns)", err=True)


# What the table and markdown formats show of a comparison; csv and json give every column.
_COMPARE_COMMON = [
    "group_id",
    "baseline",
    "candidate",
    "baseline_count",
    "candidate_count",
    "baseline_p50_s",
    "candidate_p50_s",
    "p50_diff_s",
    "p50_diff_low_s",
    "p50_diff_high_s",
    "p_value_adjusted",
]
_COMPARE_SHOWN = {
    "prompt-version": [*_COMPARE_COMMON, "verdict"],
    "experiment": [*_COMPARE_COMMON, "srm_p_value", "verdict", "note"],
}


def _shares(text: str | None) -> list[float] | None:
    if text is None:
        return None
    parts = text.split(",")
    number = re.compile(r"\s*(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*")
    shares = [float(p) for p in parts if number.fullmatch(p)] if len(parts) > 1 else []
    if len(shares) != len(parts) or not all(0 < s < float("inf") for s in shares):
        from pipeline.compare import CompareError

        raise CompareError(
            f"--expected-split {text!r}: give two or more positive shares, e.g. 50,50"
        )
    return shares


@main.command()
@click.option(
    "--by",
    type=click.Choice(["prompt-version", "experiment"]),
    default="prompt-version",
    show_default=True,
    help="Each prompt version against the previous one of its prompt, or each experiment "
    "variant against the experiment's control.",
)
@scope_options
@click.option(
    "--window-days",
    type=click.IntRange(min=1),
    help="Prompt versions: only the N days before and the N days from the switch (the new "
    "version's first session), to keep seasonal drift out.",
)
@click.option(
    "--expected-split",
    metavar="SHARES",
    help="Experiments: the planned split of sessions between the variants, control first, then "
    "by name (e.g. 50,50 or 20,40,40). Default: equal.",
)
@click.option(
    "--confidence",
    type=NumberRange(min=0.5, max=0.999),
    default=0.95,
    show_default=True,
    help="Confidence of the intervals; a change is called when p_value_adjusted < 1 - this.",
)
@click.option(
    "--min-sessions",
    type=click.IntRange(min=2),
    default=30,
    show_default=True,
    help="Fewer durations than this on a side: 'too few sessions'.",
)
@click.option(
    "--interval",
    type=click.Choice(["asymptotic", "bootstrap"]),
    default="asymptotic",
    show_default=True,
    help="How intervals are computed: asymptotic (fast at any size) or a percentile bootstrap "
    "(9,999 resamples, seeded by --seed; slow on large samples).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the bootstrap.",
)
@click.option(
    "--experiment",
    "experiment_id",
    metavar="EXPERIMENT_ID",
    help="Experiments: only this experiment_id (to give it its own --expected-split).",
)
@format_option
@click.option(
    "--all-columns", is_flag=True, help="Show every column in the table and markdown formats."
)
@warehouse_option
@as_of_option
@_user_errors
@_without_pandas
def compare(
    by: str,
    scope: Scope,
    window_days: int | None,
    expected_split: str | None,
    confidence: float,
    min_sessions: int,
    interval: str,
    seed: int,
    experiment_id: str | None,
    fmt: str | None,
    all_columns: bool,
    warehouse: str,
    as_of: str | None,
) -> None:
    """Did a prompt change or an experiment variant make sessions shorter, or is it noise?

    One row per comparison: medians, p90 and means of both sides, the differences with their
    intervals, the two-sided Mann-Whitney p-value (and Holm-adjusted over the rows), the
    sample-ratio check of experiments, and a verdict. Test sessions (unless
    --include-tests) and null durations are left out, as in the views. `sessions stats
    --explain` defines every column and the verdict rule. Prompt versions are a
    before/after comparison, not a randomised one.

    \b
    Examples:
      sessions compare --by prompt-version --window-days 14
      sessions compare --by experiment --expected-split 50,50 --format markdown
    """
    from pipeline import query
    from pipeline.compare import BEFORE_AFTER, CompareError, Settings
    from pipeline.compare import compare as run

    if window_days is not None and by == "experiment":
        raise CompareError("--window-days is for --by prompt-version")
    if expected_split is not None and by == "prompt-version":
        raise CompareError("--expected-split is for --by experiment")
    if experiment_id is not None and by == "prompt-version":
        raise CompareError("--experiment is for --by experiment")
    settings = Settings(
        confidence=confidence, min_sessions=min_sessions, interval=interval, seed=seed
    )
    result = run(
        warehouse,
        by,
        scope,
        settings,
        window_days=window_days,
        expected_split=_shares(expected_split),
        experiment_id=experiment_id,
        as_of=_as_of(as_of),
        warn=lambda message: click.echo(f"warning: {message}", err=True),
    )
    output = _format(fmt)
    shown = None if all_columns else _COMPARE_SHOWN[by]
    with query.arrow_rows(result) as rows:
        written = _write(rows, output, shown)
    if not written:
        # An empty answer is also what a typo gives (--experiment, --agent, the dates).
        what = (
            "no prompt with two versions"
            if by == "prompt-version"
            else f"no experiment {experiment_id!r} with a control and another variant"
            if experiment_id is not None
            else "no experiment with a control and another variant"
        )
        click.echo(f"note: nothing to compare: {what} in this scope", err=True)
    if by == "prompt-version" and output in ("table", "markdown"):
        click.echo(f"({BEFORE_AFTER}: other changes in the same days count too)", err=True)


@main.command(name="sql")
@click.argument("query_text", metavar="QUERY")
@format_option
@warehouse_option
@as_of_option
@engine_option
@spark_master_option
@_user_errors
@_without_pandas
def sql_command(
    query_text: str,
    fmt: str | None,
    warehouse: str,
    as_of: str | None,
    engine: str,
    spark_master: str | None,
) -> None:
    """Run one QUERY against the warehouse's views, read-only, and stream its rows.

    QUERY is one SELECT (or FROM, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, or EXPLAIN of
    one); anything else, several statements or an empty query is refused (exit 2). It can
    read the warehouse's files and nothing else. JSON writes null for NaN and infinities;
    table and markdown show control characters escaped.

    \b
    Views: sessions, rejects, agent_duration_stats, channel_duration_stats,
    prompt_version_duration_stats, agent_daily_duration_stats, prompt_version_changes; and
    the table macros <view>_for(since, until, agent, channel, include_tests) behind them.

    \b
    Example:
      sessions sql "SELECT local_hour, median(duration) FROM sessions GROUP BY 1 ORDER BY 1"

    With --engine spark, QUERY is Spark SQL (see `sessions views --dialect spark`); its
    result is collected before it is written.
    """
    from pipeline import query

    if engine == "spark":
        from pipeline.spark import run

        found = run.sql(warehouse, query_text, _as_of(as_of), spark_master)
    else:
        found = query.sql(warehouse, query_text, _as_of(as_of))
    with found as rows:
        _write(rows, _format(fmt))


def _write(rows: Any, fmt: str, shown: list[str] | None = None) -> int:
    """Stream `rows` (`query.Rows`) to stdout in `fmt`; the number of rows written."""
    from pipeline.output import write

    # A reader that stops reading (`| head`), or a full disk, is `_exit_if_stdout_failed`'s.
    count = write(rows.columns, rows.batches, fmt, sys.stdout, shown)
    sys.stdout.flush()
    return count


@main.command(name="views")
@click.option(
    "--dialect",
    type=click.Choice(["duckdb", "spark", "trino", "bigquery", "snowflake"]),
    default="duckdb",
    show_default=True,
    help="The SQL dialect to print the views in.",
)
@_user_errors
@_without_pandas
def views_command(dialect: str) -> None:
    """Print the views' definitions in another SQL dialect, to run them elsewhere.

    They are transpiled from the DuckDB view files (sqlglot, plus the rewrites listed in
    pipeline/views/dialects.py); the Spark output is what `--engine spark` runs. They read
    two relations you provide: `stored_sessions` (the sessions table's current version) and
    `stored_rejects` (its rejects table). Trino and BigQuery have no exact percentile
    aggregate: their percentiles are approximate.

    \b
    Example:
      sessions views --dialect spark > views.sql
    """
    from pipeline.views import dialects

    header = (
        f"-- The sessions views in {dialect} SQL, from `sessions views --dialect {dialect}`.\n"
        f"-- They read {dialects.STORED_SESSIONS} (the sessions table) and "
        f"{dialects.STORED_REJECTS} (the rejects table).\n\n"
    )
    click.echo(header + ";\n\n".join(dialects.statements(dialect)) + ";")


@main.command(name="check")
@warehouse_option
@_user_errors
@_without_pandas
def check_command(warehouse: str) -> None:
    """Verify a warehouse and say how to repair what is wrong.

    Reads every Parquet file whole, compares its columns with the session schema, looks for
    sessions stored twice or under the wrong date, checks the manifest against the files and
    the caller-identity mode, and opens the views. Exit 0 when all is well, 3 otherwise.
    """
    from pipeline.check import check
    from pipeline.errors import WarehouseError

    report = check(warehouse)
    if report.problems:
        click.echo(report.to_text(), err=True)
        raise WarehouseError(f"{len(report.problems)} problem(s) found in {warehouse}")
    click.echo(report.to_text())


@main.command(name="rebuild")
@warehouse_option
@_user_errors
@_without_pandas
def rebuild_command(warehouse: str) -> None:
    """Rebuild <warehouse>/sessions.duckdb over the latest version's files.

    Its views name the files by absolute path: after a warehouse is moved or copied, this
    makes its database read the files where they now are. Any sessions command does it when
    it finds the database out of date; this one does it whatever it finds.
    """
    from pipeline.store.maintain import rebuild

    click.echo(f"rebuilt {rebuild(warehouse)}")


@main.command(name="vacuum")
@warehouse_option
@click.option(
    "--retain",
    "retain_hours",
    type=click.IntRange(min=0, max=1_000_000),
    default=168,
    show_default=True,
    metavar="HOURS",
    help="Keep the files that versions of the last HOURS read (for readers of older versions "
    "and --as-of).",
)
@click.option(
    "--force", is_flag=True, help="Allow --retain under 168 hours (older versions lose files)."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as one JSON object.")
@_user_errors
@_without_pandas
def vacuum_command(warehouse: str, retain_hours: int, force: bool, as_json: bool) -> None:
    """Delete the files no recent version reads: files replaced by ingests or optimize more
    than --retain hours ago, and what ingests that were killed left behind.

    A plain `**/*.parquet` glob over the tables counts replaced files until they are
    vacuumed: read the tables through Delta (see the README). Exit 3 if the warehouse cannot
    be written, 2 for a --retain under 168 hours without --force.
    """
    from pipeline.store.maintain import vacuum

    done = vacuum(warehouse, retain_hours, force)
    if as_json:
        click.echo(json.dumps(done.to_dict(), indent=2))
    else:
        click.echo(f"vacuumed {warehouse}: {len(done.files_deleted)} file(s) deleted")


@main.command(name="optimize")
@warehouse_option
@click.option("--json", "as_json", is_flag=True, help="Print what was done as one JSON object.")
@_user_errors
@_without_pandas
def optimize_command(warehouse: str, as_json: bool) -> None:
    """Compact each day's small files into few large ones, in one commit.

    Readers see the same rows before and after; the replaced files stay until `sessions
    vacuum` (so that older versions and --as-of keep working).
    """
    from pipeline.store.maintain import optimize

    done = optimize(warehouse)
    if as_json:
        click.echo(json.dumps(done.to_dict(), indent=2))
    else:
        click.echo(
            f"optimized {warehouse}: {done.files_removed} file(s) compacted into "
            f"{done.files_added} (version {done.version})"
        )


@main.command(name="migrate")
@warehouse_option
@_user_errors
@_without_pandas
def migrate_command(warehouse: str) -> None:
    """Convert a warehouse of the layout before Delta Lake (`current` link, `.snapshots/`)
    into Delta tables, in place, keeping every session, reject and the manifest.

    An ingest into such a warehouse converts it first by itself. A conversion stopped at any
    point is finished by the next run. Exit 0 also when there is nothing to convert.
    """
    from pipeline.store.maintain import migrate

    click.echo(migrate(warehouse))


@main.command(name="history")
@warehouse_option
@format_option
@_user_errors
@_without_pandas
def history_command(warehouse: str, fmt: str | None) -> None:
    """The versions of the sessions table, newest first: what --as-of takes.

    One row per commit: version, time (UTC), operation, and the ingest run that made it.
    """
    from pipeline.store.maintain import history

    _write(history(warehouse), _format(fmt))


@main.command(name="report")
@warehouse_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML file to write; its folder is created if missing. Every row of its tables "
    "is written beside it as CSV: for report.html, report-agents.csv, report-channels.csv "
    "and report-prompt_versions.csv.",
)
@scope_options
@as_of_option
@_user_errors
@_without_pandas
def report_command(warehouse: str, out: str, scope: Scope, as_of: str | None) -> None:
    """Write a self-contained HTML report: headline figures, charts and tables.

    One file, charts embedded, nothing fetched from the network: open it on any laptop,
    attach it to an e-mail, or print it. It says which period and filters it covers. Its
    tables show the agents, channels and prompts with most sessions; every row is in the CSV
    files written beside it. The files are replaced whole or not at all.

    \b
    Exit codes:
      0  the report was written
      3  the warehouse cannot be read, or the report cannot be written (files there unchanged)
    """
    from pipeline import atomic, html_report
    from pipeline.analysis import analyse

    # Checked as given: a path would read "" as "." and drop a trailing slash.
    if not Path(out).name or out.endswith(os.sep):
        raise atomic.OutputError(f"--out {out!r} names no file: give a path like report.html")
    if out == "-":
        # Not stdout: a report is several files (the page and its tables' CSV files).
        raise atomic.OutputError(
            "--out - : a report is a page and CSV files beside it, not one stream: give a path "
            "like report.html"
        )
    written = html_report.files(analyse(warehouse, scope, _as_of(as_of)), Path(out))
    atomic.write_files(written)
    for path in written:
        click.echo(f"wrote {path}")
