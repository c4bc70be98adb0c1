"""Imports made as if some installed packages were not installed.

Libraries this project uses import optional packages it never needs, where they happen to be
installed: pandera loads pandas and its whole pandas API (and pandas-on-Spark's typing where
pyspark is, and hypothesis at its first validation), pyarrow loads pandas at its first
conversion of an array. In a data team's environment, where pandas is nearly always
installed (and the bench's, which installs it for its peers), that was 1-2 s of every
command, a sixth of a 1M-session ingest. Every one of these libraries supports an install
without them, and takes that path where the import fails as a missing module.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType


class Missing(importlib.abc.MetaPathFinder):
    """Finds the packages `names` (and their modules) missing, as Python says it of a package
    that is not installed: the libraries tell that message from any other import failure,
    which they raise."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@contextmanager
def hidden(names: Iterable[str]) -> Iterator[None]:
    """Within: `names` cannot be imported, where none has imported them yet (one already
    imported stays as it is). Afterwards they can, and what was imported within keeps what
    it learnt (pyarrow, that pandas is missing)."""
    missing = Missing(name for name in names if name not in sys.modules)
    sys.meta_path.insert(0, missing)
    try:
        yield
    finally:
        sys.meta_path.remove(missing)


def hide(names: Iterable[str]) -> None:
    """`names` cannot be imported, from now on in this process (once, however often called),
    where none has imported them yet."""
    wanted = {name for name in names if name not in sys.modules}
    for finder in sys.meta_path:
        if isinstance(finder, Missing):
            wanted -= finder.names
    if wanted:
        sys.meta_path.insert(0, Missing(wanted))
