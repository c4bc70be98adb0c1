"""Identities: kept, dropped, or replaced by a keyed pseudonym; and redacted from free text.

The caller (`source`), and the person called (`target` on a session not known to be inbound),
are identities. A pseudonym is HMAC-SHA256 of the normalised identity under a secret key, so
the same person maps to the same pseudonym in every export and repeat-caller questions stay
answerable, while nobody without the key can tell who called. Phone numbers are normalised to
E.164 (a 10-digit number is taken as North American, +1), e-mail addresses lower-cased.

Text that may hold an identity anywhere (unknown fields, rejected records and the values they
were refused for, report lines) has whatever looks like a phone number or an e-mail address
replaced by `[redacted]`: a pseudonym needs to know where an identity starts and ends."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
import unicodedata
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import duckdb
import polars as pl

from pipeline.errors import InputError

KEY_ENV = "SESSIONS_PII_KEY"
KEY_FILE_ENV = "SESSIONS_PII_KEY_FILE"
PREFIX = "pii:"


class PiiMode(Enum):
    KEEP = "keep"
    PSEUDONYMISE = "pseudonymise"
    DROP = "drop"


def load_key(say: Callable[[str], None]) -> bytes:
    """The pseudonymisation key: `$SESSIONS_PII_KEY`, or the key file, created on first use
    with owner-only permissions.

    A key anyone may guess or read undoes the pseudonyms (anyone can hash every phone number
    and compare), so a short key, or a key file others may read, is refused, not used.
    """
    if text := os.environ.get(KEY_ENV):
        return _long_enough(text.encode(), f"${KEY_ENV}")
    path = default_key_file()
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    if _create_key(path):
        say(
            f"created a pseudonymisation key at {path} (owner-only): keep it, and use the "
            "same key for every ingest into a warehouse"
        )
    # Ours, or the one another ingest created at the same moment.
    return _read_key(path)


def key_source() -> str:
    """Where the key comes from, for messages."""
    if os.environ.get(KEY_ENV):
        return f"${KEY_ENV}"
    try:
        return str(default_key_file())
    except InputError:
        return f"${KEY_FILE_ENV}"


def default_key_file() -> Path:
    if path := os.environ.get(KEY_FILE_ENV):
        return Path(path)
    # The XDG rule: a relative $XDG_CONFIG_HOME is ignored. A home that cannot be told, or
    # is not absolute, would put the key somewhere unplanned (the working folder).
    if (config := os.environ.get("XDG_CONFIG_HOME", "")).startswith("/"):
        return Path(config) / "sessions-analytics" / "pii.key"
    try:
        home = Path.home()
    except RuntimeError:
        home = Path()
    if not home.is_absolute():
        raise InputError(
            f"${KEY_FILE_ENV}",
            "not set, and there is no home folder to keep the pseudonymisation key in",
            _KEY_FIX,
        )
    return home / ".config" / "sessions-analytics" / "pii.key"


MIN_KEY_BYTES = 32
_NEW_KEY = "python3 -c 'import secrets; print(secrets.token_hex(32))'"
_KEY_FIX = (
    f"set ${KEY_FILE_ENV} to a file you may write, or ${KEY_ENV} to a key "
    f"(e.g. {_NEW_KEY}), or use --pii keep or --pii drop"
)
# A key file is a line of text; anything much longer is not one (or is /dev/zero).
_MAX_KEY_FILE_BYTES = 4096


def _long_enough(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise InputError(
            where,
            f"the pseudonymisation key is {len(key)} byte(s); it must be at least "
            f"{MIN_KEY_BYTES}, or its pseudonyms can be undone by guessing it",
            f"make one with {_NEW_KEY}",
        )
    return key


def _read_key(path: Path) -> bytes:
    """The key in `path`, refused if others may read or change it, or if it is too short.
    FileNotFoundError if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except NotADirectoryError:
        # A file where a folder of the path should be: no key there (creating one says why).
        raise FileNotFoundError(path) from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _key_error(path, "cannot read", exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(path, "the pseudonymisation key is not a regular file")
        if st.st_mode & 0o077:
            raise InputError(
                path,
                f"the pseudonymisation key file may be read or changed by others (mode "
                f"{stat.S_IMODE(st.st_mode):03o}); whoever reads it can undo the pseudonyms",
                f"chmod 600 {path}",
            )
        data = os.read(fd, _MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise _key_error(path, "cannot read", exc) from None
    finally:
        os.close(fd)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise InputError(path, "is too long to be a pseudonymisation key (one line of text)")
    return _long_enough(data.strip(), str(path))


def _create_key(path: Path) -> bool:
    """Write a new random key to `path` unless one is there; whether this call wrote it.

    Two ingests starting at once (into two warehouses) may both find no key: each writes its
    own to a temporary file and links it to `path`, which only one link can win; the other
    then reads the winner's. Nobody ever reads a half-written key.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise _key_error(path, "cannot create", exc, _KEY_FIX) from None
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise _key_error(path, "cannot create", exc, _KEY_FIX) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _key_error(path: Path, doing: str, exc: OSError, hint: str = "") -> InputError:
    reason = exc.strerror or type(exc).__name__
    return InputError(path, f"{doing} the pseudonymisation key: {reason}", hint)


def fingerprint(key: bytes) -> str:
    """Tells keys apart without revealing them; the manifest records it."""
    return hmac.new(key, b"sessions-analytics key fingerprint", hashlib.sha256).hexdigest()[:16]


# Full-width digits and plus sign, as East Asian input methods write them.
_WIDE = {chr(0xFF10 + d): str(d) for d in range(10)} | {"\uff0b": "+"}


def normalised(identity: pl.Expr) -> pl.Expr:
    """An identity as the pseudonym is taken of: E.164 phone numbers, lower-case e-mail."""
    text = identity.str.strip_chars()
    # However the number is written: any space or dash between digits, full-width forms.
    digits = text.str.replace_many(_WIDE).str.replace_all(r"[\s().\-\p{Pd}\u2212]", "")
    phone = digits.str.contains(r"^(?:\+|00)?\d{7,15}$")
    e164 = (
        pl.when(digits.str.starts_with("+"))
        .then(digits)
        .when(digits.str.starts_with("00"))  # the international prefix of most countries
        .then(pl.lit("+") + digits.str.slice(2))
        .when(digits.str.len_chars() == 10)
        .then(pl.lit("+1") + digits)
        .otherwise(pl.lit("+") + digits)
    )
    return (
        pl.when(text.str.contains("@"))
        .then(text.str.to_lowercase())
        .when(phone)
        .then(e164)
        .otherwise(text)
    )


class Pseudonyms:
    """HMAC-SHA256 of normalised identities under one key, in DuckDB (no Python per row).

    Callers call again, within an export and across its batches, and a hash costs more than
    a lookup: each distinct identity, as given, is normalised and hashed once and remembered,
    up to `remember` identities (then the memory starts again, so that it stays bounded).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, key: bytes, remember: int = 1_000_000):
        padded = key if len(key) <= 64 else hashlib.sha256(key).digest()
        padded = padded.ljust(64, b"\0")
        self._pads = {
            "ipad": bytes(b ^ 0x36 for b in padded),
            "opad": bytes(b ^ 0x5C for b in padded),
        }
        self._con = con
        self._remember = remember
        self._known = pl.DataFrame(schema={"identity": pl.String, "p": pl.String})

    def __call__(self, identities: pl.Series) -> pl.Series:
        """The pseudonym of each identity (null stays null), named as `identities`."""
        # Remembered as given, so that only an identity not seen before is normalised.
        given = pl.DataFrame({"identity": identities}, schema={"identity": pl.String})
        distinct = given.unique().drop_nulls()
        new = distinct.join(self._known, on="identity", how="anti")
        if len(new):
            known = self._known
            if len(known) + len(new) > self._remember:
                # Start again from what this batch needs.
                known = known.join(distinct, on="identity", how="semi")
            self._known = pl.concat([known, self._hashed(new)])
        pseudonyms = given.join(self._known, on="identity", how="left", maintain_order="left")
        return pseudonyms["p"].alias(identities.name)

    def _hashed(self, identities: pl.DataFrame) -> pl.DataFrame:
        """`identities` as given, and the pseudonym of each once normalised."""
        normal = identities.with_columns(normalised(pl.col("identity")).alias("normal"))
        self._con.register("identities", normal.to_arrow())
        try:
            result = self._con.sql(
                f"""SELECT identity, '{PREFIX}' || left(
                        sha256($opad || unhex(sha256($ipad || encode(normal)))), 32) AS p
                    FROM identities""",
                params=self._pads,
            ).to_arrow_table()
        finally:
            self._con.unregister("identities")
        hashed = pl.from_arrow(result)
        assert isinstance(hashed, pl.DataFrame)
        return hashed


REDACTED = "[redacted]"


def _escapes() -> dict[str, str]:
    r"""JSON `\uXXXX` escapes of the characters an identity is written with, and those
    characters: a rejected record is JSON text as received, where `alice\u0040example.com`
    is an e-mail address as much as `alice@example.com` is. Quotes, backslashes and control
    characters stay escaped, so that a record that was JSON still is."""
    wanted = [chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\']
    wanted += [
        chr(c)
        for c in range(0x80, 0x10000)
        if unicodedata.category(chr(c)) in ("Nd", "Zs", "Pd") or chr(c) in "\u2212\uff0b\uff20"
    ]
    return {f"\\u{ord(c):04x}": c for c in wanted}


_ESCAPES = _escapes()
# Rust regular expressions, Unicode-aware: `\d` is any decimal digit (full-width too), `\s`
# any space (no-break and narrow spaces too), `\w` any letter or digit.
_AT = r"(?:[@\uff20\ufe6b]|%40|&#0*64;|&#[xX]0*40;)"
# A letter written as a JSON escape (`j\u00fcrgen`): part of the address, not its end.
_LETTER_ESCAPE = r"\\u[0-9a-fA-F]{4}"
# The escape just before an address (`"\nalice@example.com"`) is kept whole, so that the
# text stays JSON: `\n[redacted]`, not `\[redacted]`.
_EMAIL = (
    rf"(\\(?:u00[01][0-9a-fA-F]|[^u]))?(?:[\w.%+\-]|{_LETTER_ESCAPE})+{_AT}"
    rf"(?:[\w\-]|{_LETTER_ESCAPE})+(?:\.(?:[\w\-]|{_LETTER_ESCAPE})+)*"
)
# What separates the digits of a phone number: spaces, dashes of any kind, dots, and the
# escapes of a tab or a line end in JSON text.
_SPACE_ESCAPE = r"\\(?:[tnr]|u000[9aAdD])"
# Zero-width characters and underscores separate too (`415\u200b555\u200b0126`, `415_555_0111`).
_ZERO_WIDTH = r"\u200b-\u200d\u2060\ufeff"
_SEP = (
    rf"(?:[\s\p{{Pd}}\u2212._{_ZERO_WIDTH}]|{_SPACE_ESCAPE}"
    r"|\\u(?:200[bBcCdD]|2060|[fF][eE][fF][fF]))"
)
# At one place the first of these that matches wins, so the ones that take a whole number
# in its groups come before the ones that would take only a part of it.
_PHONE = "|".join(
    [
        # International: + or 00, then at least 7 digits, separated or not.
        rf"(?:[+\uff0b\ufe62]|\b[0\uff10]{{2}}){_SEP}*\(?\d(?:(?:{_SEP}|[()]){{0,3}}\d){{6,}}",
        # National formats in groups: (415) 555-0124, 020 7946 0958, 1-800-555-0100. The last
        # group has 3 digits or more, so that dates (2026-10-01) stay.
        rf"\(?\d{{2,5}}\)?(?:{_SEP}{{1,3}}\d{{2,5}})+{_SEP}{{1,3}}\d{{3,8}}",
        # Pairs: 06 12 34 56 78.
        rf"\d{{2}}(?:{_SEP}{{1,3}}\d{{2}}){{4,}}",
        # Two groups, 7 digits or more: 555-0124, 07700 900123, 030 1234567.
        rf"\d{{3,5}}(?:[\s\p{{Pd}}\u2212]|{_SPACE_ESCAPE}){{1,3}}\d{{4,8}}",
        # Ten digits or more, one separator between each: 4 1 5 5 5 5 0 1 2 4.
        rf"\d(?:{_SEP}\d){{9,}}",
        # Any run of 7 digits or more, and the groups after it (a little over-redaction of
        # long numbers, by design).
        rf"\d{{7,}}(?:{_SEP}{{1,3}}\d+)*",
    ]
)


# A JSON string (skipped whole), or a number of 7 digits or more outside any string.
_STRING_OR_LONG_NUMBER = r'("[^"\\]*(?:\\.[^"\\]*)*")|-?[\d.]*\d{7}[\d.]*(?:[eE][+\-]?\d+)?'
# Where such a number may be: after a JSON colon, comma or bracket. Finding the strings costs
# four times the rest of the redaction, so texts without such a number skip it.
_MAY_HAVE_LONG_NUMBER = r"[:\[,]\s*-?[\d.]*\d{7}"
# Marks where such a number was: a noncharacter, which no text should hold.
_MARK = "\ufdd0"


def redact(text: pl.Expr) -> pl.Expr:
    """Free text (a rejected record as received, unknown fields as JSON) with anything that
    looks like an e-mail address or a phone number replaced by `[redacted]`.

    JSON text stays JSON: an identity inside a string becomes `[redacted]` there, and a long
    number outside any string (`"callback": 4155550124`) becomes the string `"[redacted]"`.
    """
    return _identities(_long_numbers(_decoded(text)))


def redact_column(texts: pl.Series) -> pl.Series:
    """`redact` of each text of a column, the costly step only for texts that may need it."""
    frame = texts.to_frame("t")
    may = frame.select(pl.col("t").str.contains(_MAY_HAVE_LONG_NUMBER).fill_null(False))["t"]
    if not may.any():
        return frame.select(_identities(_decoded(pl.col("t"))))["t"].alias(texts.name)
    if may.all():
        return frame.select(redact(pl.col("t")))["t"].alias(texts.name)
    redacted = frame.select(_identities(_decoded(pl.col("t"))))["t"]
    redacted.scatter(may.arg_true(), frame.filter(may).select(redact(pl.col("t")))["t"])
    return redacted.alias(texts.name)


def _decoded(text: pl.Expr) -> pl.Expr:
    return text.str.replace_many(_ESCAPES, ascii_case_insensitive=True)


def _long_numbers(text: pl.Expr) -> pl.Expr:
    """Long numbers outside strings, as the string "[redacted]". Without conditional
    replacements, in three steps: every string gets a mark after it and every such number
    becomes one; the marks after strings go; the others become "[redacted]"."""
    return (
        text.str.replace_all(_STRING_OR_LONG_NUMBER, "${1}" + _MARK)
        .str.replace_all('"' + _MARK, '"', literal=True)
        .str.replace_all(_MARK, f'"{REDACTED}"', literal=True)
    )


def _identities(text: pl.Expr) -> pl.Expr:
    return text.str.replace_all(_EMAIL, "${1}" + REDACTED).str.replace_all(_PHONE, REDACTED)


def redact_texts(texts: list[str]) -> list[str]:
    """`redact`, for texts in Python (report lines): the same rule, one place."""
    if not texts:
        return []
    series = pl.Series("text", texts, dtype=pl.String)
    return series.to_frame().select(redact(pl.col("text")))["text"].to_list()
