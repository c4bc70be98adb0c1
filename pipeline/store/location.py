"""Where a warehouse is (a local folder or an S3 prefix), and whether a folder is one."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from pipeline.errors import WarehouseError

# The file that marks a folder as a warehouse, and what it says. Version 1 was the snapshot
# layout before Delta (`current` link, `.snapshots/`); `sessions migrate` converts it.
MARKER = ".sessions-warehouse"
FORMAT, FORMAT_VERSION = "sessions-warehouse", 2
SNAPSHOT_LAYOUT = 1

# Characters a warehouse path may not hold: DuckDB reads `?` as the start of a database path's
# query string and `\` as a folder separator; deltalake reads `#` as a URL's fragment (it
# finds no history there) and decodes `%20` into a space.
_UNUSABLE = ("?", "\\", "#", "%")
# The longest name of one folder, and of a whole path, most file systems take (in bytes).
_NAME_MAX, _PATH_MAX = 255, 4000


@dataclass(frozen=True)
class Warehouse:
    """A warehouse's place: `local` for a folder, else an `s3://` URI (`uri`)."""

    given: str
    uri: str
    local: Path | None

    def __str__(self) -> str:
        return self.given

    @property
    def remote(self) -> bool:
        return self.local is None

    def table(self, name: str) -> str:
        """The URI (or absolute path) of one table, as deltalake takes it."""
        return f"{self.uri}/{name}"

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and the warehouse's path in it (credentials, region and
        endpoint from the usual AWS_* environment variables)."""
        if self.local is not None:
            return pafs.LocalFileSystem(), str(self.local.absolute())
        try:
            fs, path = pafs.FileSystem.from_uri(self.uri)
        except Exception as exc:  # pyarrow reports a bad URI or setting with its own types
            raise WarehouseError(f"cannot reach {self.uri}: {describe(exc)}") from None
        return fs, str(path)


def of(where: Path | str | Warehouse) -> Warehouse:
    """The warehouse that `--warehouse` names: `s3://bucket/prefix`, else a local folder."""
    if isinstance(where, Warehouse):
        return where
    text = str(where)
    if text.startswith("s3://") or text.startswith("s3a://"):
        uri = "s3://" + text.split("://", 1)[1].strip("/")
        bucket = uri[len("s3://") :].split("/", 1)[0]
        if "@" in bucket:
            # `s3://KEY:SECRET@bucket/...` (which pyarrow would take) would be printed by every
            # message that names the warehouse: refused, and not echoed.
            shown = "s3://" + uri[len("s3://") :].split("@", 1)[1]
            raise WarehouseError(
                f"{shown}: give credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE), not in the warehouse URI"
            )
        if not bucket:
            raise WarehouseError(f"{text}: name a bucket, as in s3://bucket/prefix")
        if "//" in uri[len("s3://") :] or any(c in uri for c in ("#", "?", "%", "\\")):
            raise WarehouseError(
                f"{text}: an S3 warehouse path may not hold an empty folder name (//), "
                "#, ?, % or \\: choose another prefix"
            )
        return Warehouse(text, uri, None)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise WarehouseError(
            f"{text}: {scheme}:// warehouses are not supported; give a local folder or s3://"
        )
    if not text:
        raise WarehouseError("--warehouse is empty: name a folder, or s3://bucket/prefix")
    # `..` taken as written, as DuckDB and deltalake take it (`a/link/../b` is `a/b`), rather
    # than through the link as the file system would.
    path = Path(os.path.abspath(text))
    found = [c for c in _UNUSABLE if c in str(path)]
    found += ["a control character"] if any(ord(c) < 32 or ord(c) == 127 for c in text) else []
    if found:
        raise WarehouseError(
            f"{text!r}: a warehouse path may not hold {' or '.join(map(repr, found))} "
            "(DuckDB or deltalake misread them in file paths): choose another folder"
        )
    if len(str(path).encode()) > _PATH_MAX or any(
        len(part.encode()) > _NAME_MAX for part in path.parts
    ):
        raise WarehouseError(f"{text[:80]}…: the warehouse path is too long: choose another folder")
    return Warehouse(text, str(path), path)


def marker_version(wh: Warehouse) -> int | None:
    """The format version the warehouse's marker states; None where there is no marker. An
    error if the marker is another format's or newer than this version of sessions reads."""
    fs, root = wh.filesystem()
    path = f"{root}/{MARKER}"
    try:
        with fs.open_input_stream(path) as stream:
            text = stream.read().decode("utf-8", "replace")
    except FileNotFoundError:
        _absent(wh)
        return None
    except (NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            _absent(wh)
            return None
        raise WarehouseError(f"cannot read the warehouse {wh}: {describe(exc)}") from None
    if not text:  # being written by an ingest that claims the folder this very moment
        return FORMAT_VERSION
    try:
        body = json.loads(text)
        kind, version = body["format"], body["version"]
    except (ValueError, TypeError, KeyError):
        kind, version = None, None
    if kind != FORMAT or not isinstance(version, int):
        raise WarehouseError(f"{path} does not say this is a sessions warehouse: {text[:80]!r}")
    if version > FORMAT_VERSION:
        raise WarehouseError(
            f"{wh} is a warehouse of format version {version}, newer than this version "
            f"of sessions reads ({FORMAT_VERSION}): upgrade sessions"
        )
    return version


def _absent(wh: Warehouse) -> None:
    # On S3 a missing bucket, or no credentials (pyarrow then reads, and would write the
    # marker, unsigned), also looks like a missing marker: said as such, before any write,
    # rather than "no warehouse yet".
    probe(wh)


def write_marker(wh: Warehouse, version: int = FORMAT_VERSION, *, exclusive: bool) -> None:
    """Write the marker; `exclusive`: only where there is none (of two ingests claiming one
    new folder, one writes it). Replaced whole, never half written."""
    body = (json.dumps({"format": FORMAT, "version": version}) + "\n").encode()
    if wh.local is not None:
        target = wh.local / MARKER
        if exclusive:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as marker:
                marker.write(body)
            return
        temporary = wh.local / f".{MARKER}.{os.getpid()}"
        temporary.write_bytes(body)
        os.replace(temporary, target)
        return
    fs, root = wh.filesystem()
    with fs.open_output_stream(f"{root}/{MARKER}") as stream:
        stream.write(body)


def is_empty(wh: Warehouse) -> bool:
    """Whether the warehouse's place holds nothing (or does not exist)."""
    if wh.local is not None:
        return not wh.local.exists() or not any(wh.local.iterdir())
    fs, root = wh.filesystem()
    try:
        found = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=False))
    except OSError as exc:
        raise WarehouseError(f"cannot reach {wh}: {describe(exc)}") from None
    return not found


# deltalake's object-store errors colour their causes for a terminal, and quote S3's XML.
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
_S3_ERROR = re.compile(r"<Error>.*?<Code>(.*?)</Code>\s*<Message>(.*?)</Message>.*?</Error>", re.S)
_XML_DECLARATION = re.compile(r"<\?xml[^>]*\?>")
# How a missing credential shows: the SDKs fall back to the instance metadata service.
_NO_CREDENTIALS = ("169.254.169.254", "no credentials", "credentials not found")


def fs_path(uri: str) -> str:
    """A file's place as a pyarrow filesystem takes it: `bucket/key` without the scheme."""
    return uri.split("://", 1)[1] if "://" in uri else uri


def describe(exc: BaseException) -> str:
    """An error as one line: no terminal colours, S3's XML error as `Code: Message`, and a
    missing credential said as such."""
    text = _XML_DECLARATION.sub("", _COLOUR.sub("", str(exc)))
    # A Rust backtrace (deltalake's kernel errors carry one), or the quoted lines of a query.
    for cut in ("Stack backtrace", "stack backtrace", "\n   0: ", "\n  0: ", "\nLINE "):
        text = text.split(cut, 1)[0]
    text = _S3_ERROR.sub(lambda m: f"{m.group(1)}: {m.group(2)}", text)
    text = " ".join(text.replace("↳", " ").split())
    if any(sign in text.lower() for sign in _NO_CREDENTIALS):
        return (
            "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            f"or AWS_PROFILE): {text}"
        )
    return text if len(text) <= 500 else text[:500] + "…"


def probe(wh: Warehouse) -> None:
    """Check that deltalake reaches an S3 warehouse, credentials and all, before anything
    is written there: pyarrow, which writes the marker, would go on unsigned where it finds
    no credentials (and a permissive server would take the write)."""
    if wh.local is not None:
        return
    from deltalake import DeltaTable  # not needed by local warehouses' reading commands

    try:
        DeltaTable.is_deltatable(wh.table("sessions"))
    except Exception as exc:  # deltalake reports a store's failure as OSError or DeltaError
        raise WarehouseError(f"cannot reach {wh}: {describe(exc)}") from None


def claim(wh: Warehouse, old_layout: bool) -> int:
    """Make sure `wh` is a warehouse an ingest may write, and give its format version: a new
    or empty place is marked as one; a folder of the snapshot layout (`old_layout`, told by
    `migrate`) is version 1; any other folder is refused before anything in it is touched."""
    try:
        version = marker_version(wh)  # where there is none, `probe`d first: nothing written
        if version is not None:
            return version
        if old_layout:
            return SNAPSHOT_LAYOUT
        if not (is_empty(wh) or _only_lock(wh)):
            # On S3 (no lock) another ingest may have claimed the place and begun to fill it
            # since the marker was read: it writes the marker first, so it is there now.
            version = marker_version(wh)
            if version is not None:
                return version
            raise WarehouseError(
                f"{wh} is not empty and is not a warehouse (it has no {MARKER}): "
                "give --warehouse a new or empty folder; nothing in it was touched"
            )
        if wh.local is not None:
            wh.local.mkdir(parents=True, exist_ok=True)
        write_marker(wh, exclusive=True)
        return FORMAT_VERSION
    except FileExistsError:
        # Another ingest marked it first: its marker is checked as any.
        return marker_version(wh) or FORMAT_VERSION
    except NotADirectoryError:
        raise WarehouseError(f"{wh} is a file, not a warehouse folder") from None
    except OSError as exc:
        raise WarehouseError(
            f"cannot open the warehouse {wh}: {exc.strerror or describe(exc)}"
        ) from None


def _only_lock(wh: Warehouse) -> bool:
    # A lock file alone: an ingest that opened the lock and died before it marked the folder.
    return wh.local is not None and {p.name for p in wh.local.iterdir()} <= {".lock"}
