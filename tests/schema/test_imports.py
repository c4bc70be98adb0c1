"""No command loads pandas, and validation does not load hypothesis, where they are installed
(`pipeline.imports`): pyarrow and pandera imported them for conversions and data synthesis
this project never uses, 1-2 s of every command where pandas is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SESSIONS

SAMPLES = Path(__file__).parents[2] / "data" / "samples"


def _installed_pandas(folder: Path, marker: Path) -> dict[str, str]:
    """An environment where `import pandas` finds a package that leaves `marker` behind."""
    package = folder / "pandas"
    package.mkdir()
    (package / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\n__version__ = '3.0.0'\n"
    )
    return {**os.environ, "PYTHONPATH": str(folder)}


def test_an_ingest_and_a_report_never_import_pandas(tmp_path: Path) -> None:
    marker = tmp_path / "pandas-imported"
    (tmp_path / "site").mkdir()
    env = _installed_pandas(tmp_path / "site", marker)
    # The fake package is importable: the check below would see an import.
    probe = subprocess.run(
        [sys.executable, "-c", "import pandas"], env=env, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    assert marker.read_text() == "imported\n"
    marker.unlink()

    warehouse = tmp_path / "wh"
    for args in (
        ["ingest", *sorted(SAMPLES.iterdir()), "-w", warehouse, "-q"],
        ["stats", "--by", "agent", "-w", warehouse, "--format", "json"],
        ["report", "-w", warehouse, "--out", tmp_path / "report.html"],
    ):
        result = subprocess.run(
            [str(SESSIONS), *map(str, args)], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, (args[0], result.stderr)
        assert not marker.exists(), f"sessions {args[0]} imported pandas"


def test_validation_does_not_load_hypothesis(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pipeline.ingest import ingest\n"
        f"ingest([{str(SAMPLES / '01_sessions.ndjson')!r}], {str(tmp_path / 'wh')!r})\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'hypothesis'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    # hypothesis stays importable afterwards (the tests use it).
    assert subprocess.run([sys.executable, "-c", "import schemas, hypothesis"]).returncode == 0


def test_the_command_line_starts_without_the_data_libraries() -> None:
    # `sessions --help` and every command's help answer at once: the libraries load with the
    # command that needs them (hiding pandas must not load pandera to get at the hiding).
    code = (
        "import sys, pipeline.cli\n"
        "heavy = {'polars', 'pyarrow', 'duckdb', 'pandera', 'deltalake', 'schemas'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
