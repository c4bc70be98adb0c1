"""The commands load neither pandas nor hypothesis where they are installed
(`pipeline.imports`): pyarrow and pandera imported them for conversions and data synthesis no
command uses, about 1 s of every command where pandas is installed. Hidden only there: after
a command run in-process, in another thread, with `--engine spark` (Spark Connect needs
pandas) or for a caller of the library, they import as ever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SESSIONS

SAMPLES = Path(__file__).parents[2] / "data" / "samples"


@pytest.fixture
def fake_pandas(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment where `import pandas` finds a package that notes each import of it
    (a line in the file returned), whether pandas is installed here or not."""
    site, marker = tmp_path / "site", tmp_path / "pandas-imported"
    (site / "pandas").mkdir(parents=True)
    (site / "pandas" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('imported\\n')\n__version__ = '3.0.0'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run([sys.executable, "-c", "import pandas"], env=env)
    assert probe.returncode == 0 and marker.read_text() == "imported\n"  # it is found
    marker.unlink()
    return env, marker


def _python(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_no_command_imports_pandas(
    tmp_path: Path, fake_pandas: tuple[dict[str, str], Path]
) -> None:
    env, marker = fake_pandas
    warehouse = tmp_path / "wh"
    for args in (
        ["ingest", *sorted(SAMPLES.iterdir()), "-w", warehouse, "-q"],
        ["stats", "--by", "agent", "-w", warehouse, "--format", "json"],
        ["sql", "SELECT count(*) FROM sessions", "-w", warehouse, "--format", "csv"],
        ["report", "-w", warehouse, "--out", tmp_path / "report.html"],
    ):
        result = subprocess.run(
            [str(SESSIONS), *map(str, args)], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, (args[0], result.stderr)
        assert not marker.exists(), f"sessions {args[0]} imported pandas"


def test_a_command_on_spark_may_import_pandas(fake_pandas: tuple[dict[str, str], Path]) -> None:
    # The client of Spark Connect (SPARK_REMOTE) needs pandas: with `--engine spark` nothing
    # is hidden.
    env, _ = fake_pandas
    code = (
        "from pipeline.cli import _without_pandas\n"
        "def command(engine):\n"
        "    try:\n"
        "        return __import__('pandas').__version__\n"
        "    except ModuleNotFoundError:\n"
        "        return 'hidden'\n"
        "wrapped = _without_pandas(command)\n"
        "print(wrapped(engine='duckdb'), wrapped(engine='spark'))\n"
    )
    assert _python(code, env) == "hidden 3.0.0"


def test_an_ingest_does_not_load_hypothesis(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        f"main(['ingest', {str(SAMPLES / '01_sessions.ndjson')!r}, '-w', "
        f"{str(tmp_path / 'wh')!r}, '-q'], standalone_mode=False)\n"
        "print([m for m in sys.modules if m.split('.')[0] == 'hypothesis'])\n"
    )
    assert _python(code) == "[]"


def test_after_an_ingest_in_process_pandas_and_hypothesis_import(
    tmp_path: Path, fake_pandas: tuple[dict[str, str], Path]
) -> None:
    env, marker = fake_pandas
    code = (
        "from click.testing import CliRunner\n"
        "from pipeline.cli import main\n"
        f"result = CliRunner().invoke(main, ['ingest', {str(SAMPLES)!r}, '-w', "
        f"{str(tmp_path / 'wh')!r}, '-q'])\n"
        "assert result.exit_code == 0, result.output\n"
        "import pandas, hypothesis\n"
        "print(pandas.__version__)\n"
    )
    assert _python(code, env) == "3.0.0"
    assert marker.read_text() == "imported\n"


def test_a_hidden_package_is_hidden_from_its_thread_only(
    fake_pandas: tuple[dict[str, str], Path],
) -> None:
    env, _ = fake_pandas
    code = (
        "import threading\n"
        "from pipeline.imports import hidden\n"
        "found = []\n"
        "with hidden(('pandas',)):\n"
        "    try:\n"
        "        import pandas\n"
        "    except ModuleNotFoundError:\n"
        "        found.append('hidden here')\n"
        "    other = threading.Thread(target=lambda: found.append(__import__('pandas')))\n"
        "    other.start(); other.join()\n"
        "print(found[0], found[1].__version__)\n"
    )
    assert _python(code, env) == "hidden here 3.0.0"


def test_the_schemas_leave_pandera_whole_for_their_caller() -> None:
    # pandera, imported by the schemas, keeps its data synthesis (hypothesis) for the caller's
    # own use; only pyspark is hidden from its import.
    code = (
        "import schemas, pandera.strategies.base_strategies as strategies\n"
        "print(strategies.HAS_HYPOTHESIS)\n"
    )
    assert _python(code) == "True"


def test_the_command_line_starts_without_the_data_libraries() -> None:
    # `sessions --help` and every command's help answer at once: the libraries load with the
    # command that needs them.
    code = (
        "import sys, pipeline.cli\n"
        "heavy = {'polars', 'pyarrow', 'duckdb', 'pandera', 'deltalake', 'schemas'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    assert _python(code) == "[]"


def test_the_schemas_load_pandera_only_to_validate() -> None:
    # Commands that read the warehouse use the schema's fields, never pandera; the schema
    # itself is pandera's once asked for.
    code = (
        "import sys, schemas\n"
        "before = 'pandera' in sys.modules\n"
        "schema = schemas.pandera_schema()\n"
        "print(before, 'pandera' in sys.modules, len(schema.columns) == len(schemas.FIELD_NAMES))\n"
    )
    assert _python(code) == "False True True"
