"""`pandera.polars`, imported without loading pyspark.

Wherever pyspark is installed (the Spark extra, which `make test` installs), `import pandera`
loads pyspark.pandas and pandas-on-Spark's typing, for types this project never uses: 0.3 s
to 1 s on every command that validates (measured: the bench's `sessions ingest`). pyspark is
hidden for that one import, on the importing thread (`imports.hidden`), and stays importable
for the Spark engine. (The commands hide pandas and hypothesis as well: `cli`.)
Import pandera from here, never directly, so that the first import is this one.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from pipeline.imports import hidden


def _imported() -> ModuleType:
    with hidden(("pyspark",)):
        import pandera.polars

        return pandera.polars


if TYPE_CHECKING:
    import pandera.polars as pa
else:
    pa = _imported()

__all__ = ["pa"]
