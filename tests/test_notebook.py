"""The demo notebook runs top to bottom."""

from __future__ import annotations

import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.conftest import ROOT


def test_demo_notebook_executes_and_shows_its_pictures(tmp_path):
    notebook = nbformat.read(ROOT / "notebooks" / "demo.ipynb", as_version=4)
    scratch = set(Path(tempfile.gettempdir()).glob("inpaint_demo_*"))
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors
    pictures = [o for cell in code for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2  # the mask families and the side-by-side comparison
    assert set(Path(tempfile.gettempdir()).glob("inpaint_demo_*")) <= scratch  # none left
