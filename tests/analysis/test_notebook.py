"""The notebook runs top to bottom on the bundled sample, and is kept in git without outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pipeline.ingest import ingest

ROOT = Path(__file__).parents[2]
NOTEBOOK = ROOT / "notebooks" / "session_durations.ipynb"


def test_it_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_every_cell_has_an_id() -> None:
    # nbformat 4.5 asks for cell ids; nbformat warns of each missing one that it will become
    # an error, and JupyterLab adds them on the next save (a diff nobody asked for).
    raw = json.loads(NOTEBOOK.read_text())
    ids = [cell.get("id") for cell in raw["cells"]]
    assert (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5)
    assert None not in ids and len(set(ids)) == len(ids)


def test_it_runs_top_to_bottom_on_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest([str(ROOT / "data" / "samples")], tmp_path / "wh")
    monkeypatch.setenv("SESSIONS_WAREHOUSE", str(tmp_path / "wh"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Runs in notebooks/, as Jupyter would; a cell that raises fails the test.
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 6  # the six charts
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(tables) == 8  # headline, agents, channels, prompt changes, their verdicts,
    # experiments, rejects, hours
    text = "".join(o.get("text", "") for o in outputs)
    assert f"{tmp_path / 'wh'}: 2,917 sessions from 2026-09-19 to 2026-11-01" in text
    assert os.environ["SESSIONS_WAREHOUSE"] == str(tmp_path / "wh")
