"""The commands do not load pyspark through pandera where pyspark is installed (the Spark
extra, which `make test` installs): pandera's import would load pyspark.pandas, 0.3 s to 1 s
on every command that validates."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None, reason="pyspark is not installed here"
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_the_ingest_loads_neither_pyspark_nor_its_pandas() -> None:
    result = _run(
        "import sys, pipeline.ingest, pipeline.validate, pandera\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyspark'))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert "FutureWarning" not in result.stderr  # pyspark.pandas' warning about pandas 3


def test_pyspark_stays_importable_after_pandera() -> None:
    result = _run(
        "import schemas, pipeline.validate\n"
        "import pyspark.sql, pyspark\n"
        "print(pyspark.sql.SparkSession.__name__)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SparkSession"
