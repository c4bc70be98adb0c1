"""Text from the data (agent, prompt and channel names, reasons) made fit to show as a label."""

from __future__ import annotations

import re
import unicodedata

BLANK = "(blank)"
_WHITESPACE = re.compile(r"\s+")


def plain(value: object, limit: int | None = None) -> str:
    """`value` as one line of text: control characters (NUL, escapes, line breaks) made visible
    or spaces, runs of white space made one, a blank name named as such, and at most `limit`
    characters (the cut marked with an ellipsis). Any text from an export is accepted."""
    text = "".join(_visible(char) for char in str(value))
    text = _WHITESPACE.sub(" ", text).strip()
    if not text:
        return BLANK
    if limit is not None and len(text) > limit:
        return text[: max(limit - 1, 1)].rstrip() + "…"
    return text


def _visible(char: str) -> str:
    if char.isspace():
        return " "
    # Cc: C0/C1 controls such as NUL or ESC; Cs: lone surrogates. Neither can be drawn or
    # belongs in an HTML page; the replacement character shows that something was there.
    if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS:
        return "\ufffd"
    return char


# The bidirectional embeddings, overrides and isolates: each reorders the text after it, up to
# the end of its paragraph (a name with U+202E drew its own "(n=3)" as "(3=n)", and could turn
# the words after it on a page around). The marks (U+200E, U+200F, U+061C) reorder nothing.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def for_chart(value: object, limit: int = 40) -> str:
    """`plain`, and safe as matplotlib text: every `$` escaped, so that no name is read as
    mathtext (`$x_{$` would fail to parse, `$\\alpha$` would be drawn as a Greek letter).
    With every dollar escaped, matplotlib sees no math and draws the text as given."""
    return plain(value, limit).replace("$", r"\$")
