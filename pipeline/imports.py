"""Imports made as if some installed packages were not installed.

Libraries this project uses import optional packages it never needs, where they happen to be
installed: pandera loads pandas and its whole pandas API (and pandas-on-Spark's typing where
pyspark is, and hypothesis at its first validation), pyarrow loads pandas at its first
conversion of an array. In a data team's environment, where pandas is nearly always
installed (and the bench's, which installs it for its peers), that was 1-2 s of every
ingest, a sixth of a 1M-session one. Every one of these libraries supports an install
without them, and takes that path where the import fails as a missing module.

What a library learns while a package is hidden it may keep (pandera, imported with pandas
hidden, has no pandas API in that process): so a package is hidden only where nothing of
the process can need it afterwards.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType


class Missing(importlib.abc.MetaPathFinder):
    """Finds the packages `names` (and their modules) missing, as Python says it of a package
    that is not installed (the libraries tell that message from any other import failure,
    which they raise); to the thread `only`, where given, else to every thread."""

    def __init__(self, names: Iterable[str], only: int | None = None) -> None:
        self.names = frozenset(names)
        self.only = only

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.names and self.only in (None, threading.get_ident()):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@contextmanager
def hidden(names: Iterable[str], *, every_thread: bool = False) -> Iterator[None]:
    """Within: `names` cannot be imported by this thread (by every thread, with
    `every_thread`), where none has imported them yet (one already imported stays as it is).
    Afterwards they can be."""
    only = None if every_thread else threading.get_ident()
    missing = Missing((name for name in names if name not in sys.modules), only)
    sys.meta_path.insert(0, missing)
    try:
        yield
    finally:
        sys.meta_path.remove(missing)
