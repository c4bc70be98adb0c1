"""`pandera.polars`, imported without loading pandas, pyspark or hypothesis.

Where they are installed, `import pandera` loads pandas and pandera's whole pandas API, and
pandas-on-Spark's typing where pyspark is (the Spark extra, which `make test` installs); its
first validation loads hypothesis (for data synthesis): types and tools this project never
uses, 0.9-2 s of every command that validates, 0.3 s with them hidden. Pandera supports a
polars-only install. So they are hidden for pandera's import (`imports.hidden`), and stay
importable afterwards (the Spark engine, the tests).
Import pandera from here, never directly, so that the first import is this one.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from pipeline.imports import hidden


def _imported() -> ModuleType:
    with hidden(("pandas", "pyspark", "hypothesis")):
        # Imported at the first validation otherwise, with nothing hidden.
        import pandera.backends.polars.builtin_checks
        import pandera.polars

        return pandera.polars


if TYPE_CHECKING:
    import pandera.polars as pa
else:
    pa = _imported()

__all__ = ["pa"]
