"""Caller identities (`source`): kept, dropped, or replaced by a keyed pseudonym.

A pseudonym is HMAC-SHA256 of the normalised identity under a secret key, so the same caller
maps to the same pseudonym in every export and repeat-caller questions stay answerable, while
nobody without the key can tell who called. Phone numbers are normalised to E.164 (a 10-digit
number is taken as North American, +1), e-mail addresses lower-cased.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
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


def default_key_file() -> Path:
    if path := os.environ.get(KEY_FILE_ENV):
        return Path(path)
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "sessions-analytics" / "pii.key"


def load_key(say: Callable[[str], None]) -> bytes:
    """The pseudonymisation key: `$SESSIONS_PII_KEY`, or the key file, created on first use
    with owner-only permissions."""
    if text := os.environ.get(KEY_ENV):
        return text.encode()
    path = default_key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        say(
            f"created a pseudonymisation key at {path} (owner-only): keep it, and use the "
            "same key for every ingest into a warehouse"
        )
    try:
        key = path.read_text().strip().encode()
    except OSError as exc:
        raise InputError(path, f"cannot read the pseudonymisation key: {exc.strerror}") from None
    if not key:
        raise InputError(path, "the pseudonymisation key file is empty")
    return key


def fingerprint(key: bytes) -> str:
    """Tells keys apart without revealing them; the manifest records it."""
    return hmac.new(key, b"sessions-analytics key fingerprint", hashlib.sha256).hexdigest()[:16]


def normalised(identity: pl.Expr) -> pl.Expr:
    """An identity as the pseudonym is taken of: E.164 phone numbers, lower-case e-mail."""
    text = identity.str.strip_chars()
    digits = text.str.replace_all(r"[\s().\-]", "")
    phone = digits.str.contains(r"^\+?\d{7,15}$")
    e164 = (
        pl.when(digits.str.starts_with("+"))
        .then(digits)
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


# Anything in free text that looks like an e-mail address or a phone number.
_EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"
_PHONE = r"\+\d[\d\s().\-]{6,18}\d|\(?\b\d{3}\)?[\s.\-]?\d{3}[\s.\-]?\d{4}\b"


def redact(text: pl.Expr) -> pl.Expr:
    """Free text (a rejected record as received) with identities replaced by `[redacted]`."""
    return text.str.replace_all(_EMAIL, "[redacted]").str.replace_all(_PHONE, "[redacted]")
