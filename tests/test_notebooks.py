"""Every notebook in notebooks/ runs top to bottom with a real kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def check_notebook(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    if notebook.metadata.get("clip_widgets", {}).get("expects_widget"):
        # one of ours, not only the progress bars that long cells show
        state = notebook.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        ours = [m for m in state.get("state", {}).values() if m.get("state", {}).get("_esm") or
                m.get("model_name") == "AnyModel"]  # fmt: skip
        assert any(WIDGET_MIME in o.get("data", {}) for o in outputs) and ours, f"{path.name} shows no widget of ours"
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr" and "Traceback" in o.text]


if NOTEBOOKS:  # no notebooks, no test items (rather than a skipped empty parameter set)

    @pytest.mark.notebook
    @pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
    def test_notebook_executes(path):
        check_notebook(path)
