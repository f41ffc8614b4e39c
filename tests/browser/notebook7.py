"""Drive Notebook 7 in headless Chromium: the same Jupyter server as the JupyterLab tests serves
``/notebooks/<path>`` once the ``notebook`` package is installed (its server extension loads
with JupyterLab's). Notebook 7 keeps its application out of ``window``, so cells run through
its menu, as a person would run them."""

from __future__ import annotations

import time
from pathlib import Path

from .harness import ANSI, LabServer, dismiss_popups, write_notebook

# Every code cell's prompt and output text, in order: "[3]:" once it ran, "[*]:" while it runs.
_CELLS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(cell => ({
  prompt: (cell.querySelector('.jp-InputPrompt')?.innerText ?? '').trim(),
  output: cell.querySelector('.jp-OutputArea')?.innerText ?? '',
  error: !!cell.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
         && (cell.querySelector('.jp-OutputArea')?.innerText ?? '').includes('Traceback'),
}))"""


RETRY_S = 20.0


def open_in_notebook7(page, server: LabServer, name: str, cells: list[str], *, timeout: float = 120.0) -> None:
    """Write a notebook of code cells into the server's root and open it in Notebook 7."""
    write_notebook(Path(server.root_dir) / f"{name}.ipynb", cells)
    response = page.goto(f"{server.url}/notebooks/{name}.ipynb")
    if response is None or not response.ok:
        status = response.status if response is not None else "no response"
        raise AssertionError(f"/notebooks/ is not served ({status}): is the notebook package (Notebook 7) installed?")
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(state="visible", timeout=timeout * 1000)
    if page.evaluate("() => document.body.dataset.notebook") != "notebooks":
        raise AssertionError(f"{page.url} is not Notebook 7's notebook page")
    dismiss_popups(page)


def run_all_in_notebook7(page, *, timeout: float = 120.0) -> list[str]:
    """Run > Run All Cells, wait until every code cell has run, and return their text outputs;
    a cell that raises fails with its traceback. On a loaded machine the menu can answer before
    the notebook's commands are ready, and the click runs nothing: while no cell has started
    (every prompt still "[ ]:"), the menu is clicked again every ``RETRY_S`` seconds, and every
    third time on a reloaded page."""
    deadline = time.monotonic() + timeout
    cells: list[dict] = []
    clicked, clicks = -float("inf"), 0
    while time.monotonic() < deadline:
        if time.monotonic() - clicked > RETRY_S and all(cell["prompt"] == "[ ]:" for cell in cells):
            if clicks and clicks % 3 == 0:
                page.reload()
                page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(state="visible", timeout=60_000)
                dismiss_popups(page)
            clicks += 1
            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
            clicked = time.monotonic()
        cells = page.evaluate(_CELLS)
        failed = [cell["output"] for cell in cells if cell["error"]]
        if failed:
            raise AssertionError("a cell failed in Notebook 7:\n" + ANSI.sub("", "\n".join(failed)))
        if cells and all(cell["prompt"][1:-2].isdigit() for cell in cells):  # "[12]:"
            return [cell["output"] for cell in cells]
        page.wait_for_timeout(200)
    raise TimeoutError(f"the cells did not finish within {timeout:.0f} s in Notebook 7: {cells}")
