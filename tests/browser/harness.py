"""Drive a real JupyterLab in headless Chromium: start a server, open a notebook, run its cells.

The widgets are rendered by JupyterLab's own widget manager and the lab extensions of anywidget
and ipywidgets, exactly as a user sees them; tests read the DOM and canvas pixels of the outputs.

JupyterLab runs with ``--LabApp.expose_app_in_browser=True``, so the page has
``window.jupyterapp`` and cells run through JupyterLab's own commands
(``notebook:run-all-cells``, ``notebook:run-cell``) rather than through keyboard shortcuts or
menus, which depend on focus and layout. User settings live in a private folder: no news or
update checks, no extension manager, and every cell attached to the DOM (windowing off).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat

CHROMIUM = os.environ.get("CLIP_WIDGETS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# JupyterLab user settings for tests: nothing asks, nothing phones home, all cells in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A server started as its own process group (so stopping it also stops its kernels),
    logging to ``log_path``."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server and its kernels (they share its process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):  # kernels that outlived the server
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class LabServer(ServerProcess):
    root_dir: Path


def start_lab(root_dir: Path, log_path: Path, timeout: float = 90.0) -> LabServer:
    """Start JupyterLab on a free loopback port with no token, no update or news checks."""
    root_dir = Path(root_dir)
    state = root_dir / ".lab-state"  # hidden from the file browser
    for name, values in LAB_SETTINGS.items():
        path = state / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    (state / "workspaces").mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root_dir}",
        "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
        "--ServerApp.allow_root=True",
    ]  # fmt: skip
    env = {
        **os.environ,
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(state / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
    }
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", process, Path(log_path), root_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/api/status", timeout=2) as response:
                json.load(response)
                return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def write_notebook(path: Path, cells: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


# -- in the page -------------------------------------------------------------------------------

_NOTEBOOK_READY = """path => {
  const w = window.jupyterapp?.shell?.currentWidget;
  return !!(w?.context?.path === path && w.content?.widgets?.length > 0
            && w.sessionContext?.session?.kernel?.status === 'idle');
}"""

# The state of the current notebook's code cells: finished (no "[*]" prompt, kernel idle,
# every cell has run) or failed (an error output), with the error text.
_CELL_STATE = """from => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets.slice(from).filter(c => c.model.type === 'code');
  const errors = [];
  for (const cell of cells) {
    for (const out of cell.model.outputs.toJSON()) {
      if (out.output_type === 'error') errors.push((out.traceback ?? []).join('\\n') || `${out.ename}: ${out.evalue}`);
    }
  }
  const busy = cells.some(c => (c.node.querySelector('.jp-InputPrompt')?.innerText ?? '').includes('*'));
  const ran = cells.every(c => c.model.executionCount !== null);
  const idle = w.sessionContext.session?.kernel?.status === 'idle';
  return {done: idle && !busy && (ran || errors.length > 0), ran, errors};
}"""


def dismiss_popups(page) -> None:
    """Close toasts and dialogs (news, kernel choice) that would cover the outputs."""
    page.evaluate(
        """() => {
          for (const b of document.querySelectorAll('.jp-Notification-Toast-Close, .Toastify__close-button')) b.click();
          const accept = document.querySelector('.jp-Dialog .jp-mod-accept');
          if (accept) accept.click();
        }"""
    )


def open_notebook(page, server: LabServer, name: str, cells: list[str], *, timeout: float = 120.0) -> None:
    """Write a notebook of code cells into the server's root, open it, and wait for its kernel."""
    write_notebook(Path(server.root_dir) / f"{name}.ipynb", cells)
    # ?reset: start from an empty workspace, so only this notebook is open and current.
    page.goto(f"{server.url}/lab/tree/{name}.ipynb?reset")
    page.wait_for_function(_NOTEBOOK_READY, arg=f"{name}.ipynb", timeout=timeout * 1000)
    dismiss_popups(page)


def _wait_cells(page, start: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        state = page.evaluate(_CELL_STATE, start)
        if state["errors"]:
            raise AssertionError(f"{what} failed:\n" + ANSI.sub("", "\n".join(state["errors"])))
        if state["done"]:
            return
        page.wait_for_timeout(200)
    raise TimeoutError(f"{what} did not finish within {timeout:.0f} s: {state}")


def run_notebook_in_lab(
    page, server: LabServer, cells: list[str], *, timeout: float = 120.0, name: str | None = None
) -> None:
    """Open a new notebook of ``cells`` in JupyterLab and run all of them.

    Runs JupyterLab's ``notebook:run-all-cells`` command and returns once every cell has run and
    the kernel is idle; a cell that raises fails with its traceback as JupyterLab shows it.
    """
    name = name or f"nb_{time.monotonic_ns()}"
    open_notebook(page, server, name, cells, timeout=timeout)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    _wait_cells(page, 0, timeout, f"notebook {name}.ipynb")
    dismiss_popups(page)


def run_cell_in_lab(page, source: str, *, timeout: float = 120.0) -> str:
    """Append a code cell to the open notebook, run it, and return its text output."""
    index = page.evaluate(
        """async source => {
          const app = window.jupyterapp, panel = app.shell.currentWidget, nb = panel.content;
          nb.activeCellIndex = nb.widgets.length - 1;
          await app.commands.execute('notebook:insert-cell-below');
          nb.activeCell.model.sharedModel.setSource(source);
          app.commands.execute('notebook:run-cell');
          return nb.activeCellIndex;
        }""",
        source,
    )
    _wait_cells(page, index, timeout, f"cell {index}")
    return page.evaluate(
        "i => window.jupyterapp.shell.currentWidget.content.widgets[i].node"
        ".querySelector('.jp-OutputArea')?.innerText ?? ''",
        index,
    )


def widget_locator(page, css: str, *, timeout: float = 60.0):
    """Locator of the first rendered element matching ``css`` in the notebook's output areas."""
    locator = page.locator(f".jp-Notebook .jp-OutputArea-output {css}").first
    locator.wait_for(state="visible", timeout=timeout * 1000)
    return locator


class LabNotebook:
    """A notebook opened in JupyterLab whose cells a test runs one at a time."""

    def __init__(self, page, server: LabServer, name: str, cells: list[str], timeout: float = 120.0):
        self.page = page
        self.timeout_ms = timeout * 1000
        open_notebook(page, server, name, cells, timeout=timeout)
        page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
        self.next_cell = 0

    def run_next(self) -> str:
        """Run the active cell, wait until it finished, and return its text output."""
        return self.wait(self.start_next())

    def start_next(self) -> int:
        """Start running the next cell and return its index at once, while the kernel is busy
        with it; :meth:`wait` waits for it."""
        index = self.next_cell
        self.page.evaluate(
            "index => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = index;"
            " return window.jupyterapp.commands.execute('notebook:run-cell'); }",
            index,
        )
        self.next_cell += 1
        return index

    def wait(self, index: int) -> str:
        """Wait until cell ``index`` finished and return its text output."""
        self.page.wait_for_function(
            "index => { const w = window.jupyterapp.shell.currentWidget;"
            " const cell = w.content.widgets[index];"
            " return cell.model.executionCount !== null && w.sessionContext.session.kernel.status === 'idle'; }",
            arg=index,
            timeout=self.timeout_ms,
        )
        text = self.page.evaluate(
            "index => window.jupyterapp.shell.currentWidget.content.widgets[index].node"
            ".querySelector('.jp-OutputArea')?.innerText ?? ''",
            index,
        )
        if "Traceback" in text or "Error" in text.splitlines()[0:1]:
            raise AssertionError(f"cell {index} failed:\n{text}")
        return text

    def run_all(self) -> list[str]:
        cells = self.page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length")
        return [self.run_next() for _ in range(self.next_cell, cells)]

    def output(self, index: int):
        """Locator of cell ``index``'s output area."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")
