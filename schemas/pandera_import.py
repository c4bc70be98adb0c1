"""`pandera.polars`, imported without loading pyspark.

Wherever pyspark is installed (the Spark extra), `import pandera` loads pyspark.pandas and
pandas-on-Spark's typing, for types this project never uses: 0.3 s to 1 s on every command
that validates (measured: the bench's `sessions ingest`). pyspark is hidden for that one
import, where no one has imported it yet, and stays importable for the Spark engine.
Import pandera from here, never directly, so that the first import is this one.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING


def _imported() -> ModuleType:
    hidden = "pyspark" not in sys.modules
    if hidden:
        sys.modules["pyspark"] = None  # type: ignore[assignment]  # an import of it fails
    try:
        import pandera.polars

        return pandera.polars
    finally:
        if hidden:
            del sys.modules["pyspark"]


if TYPE_CHECKING:
    import pandera.polars as pa
else:
    pa = _imported()

__all__ = ["pa"]
