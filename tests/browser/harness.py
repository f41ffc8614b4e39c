"""Drive a real JupyterLab in headless Chromium: start a server, open a notebook, run its cells.

The widgets are rendered by JupyterLab's own widget manager and anywidget's lab extension,
exactly as a user sees them; tests read the DOM and canvas pixels of the outputs.
"""

from __future__ import annotations

import json
import os
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
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    url: str
    root_dir: Path
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def start_lab(root_dir: Path, log_path: Path, timeout: float = 90.0) -> LabServer:
    """Start JupyterLab on a free loopback port with no token, no update or news checks."""
    port = free_port()
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root_dir}",
        "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True", "--ServerApp.allow_root=True",
    ]  # fmt: skip
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", root_dir, process, log_path)
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


class LabNotebook:
    """A notebook opened in JupyterLab whose cells a test runs one at a time."""

    def __init__(self, page, server: LabServer, name: str, cells: list[str], timeout: float = 120.0):
        self.page = page
        self.timeout_ms = timeout * 1000
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, server.root_dir / f"{name}.ipynb")
        page.goto(f"{server.url}/lab/tree/{name}.ipynb")
        page.wait_for_function(
            "() => { const w = window.jupyterapp?.shell?.currentWidget;"
            " return w?.content?.widgets?.length > 0 && w.sessionContext?.session?.kernel?.status === 'idle'; }",
            timeout=self.timeout_ms,
        )
        page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
        self.next_cell = 0

    def run_next(self) -> str:
        """Run the active cell, wait until it finished, and return its text output."""
        index = self.next_cell
        self.page.evaluate(
            "index => { const nb = window.jupyterapp.shell.currentWidget.content; nb.activeCellIndex = index;"
            " return window.jupyterapp.commands.execute('notebook:run-cell'); }",
            index,
        )
        self.page.wait_for_function(
            "index => { const w = window.jupyterapp.shell.currentWidget;"
            " const cell = w.content.widgets[index];"
            " return cell.model.executionCount !== null && w.sessionContext.session.kernel.status === 'idle'; }",
            arg=index,
            timeout=self.timeout_ms,
        )
        self.next_cell += 1
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
