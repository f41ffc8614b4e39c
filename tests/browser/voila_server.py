"""Serve one notebook with Voila, the way a dashboard visitor meets it: ``voila <notebook>`` on a
free loopback port, started as its own process group so that stopping it also stops its kernels.

The page runs the notebook when it is requested; what a test reads is what Voila's own front end
(its widget manager and the anywidget and ipywidgets extensions) draws from the outputs.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .harness import ServerProcess, free_port

# A Voila page's widget outputs, as its lab template lays them out.
VOILA_OUTPUT = ".jp-OutputArea-output"

# Whether a canvas inside ``css`` has any pixel drawn (not fully transparent), checked in the page.
CANVAS_DRAWN = """css => [...document.querySelectorAll(`${css} canvas`)].some(c => {
  if (!c.width || !c.height) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
  return false;
})"""


@dataclass
class VoilaServer(ServerProcess):
    notebook: Path


def _answers(port: int) -> bool:
    """Whether the server answers HTTP at all (any status: the page itself would start a kernel)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/api/status")
        return connection.getresponse().status < 500
    except OSError:
        return False
    finally:
        connection.close()


def start_voila(
    notebook: Path,
    log_path: Path,
    *,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> VoilaServer:
    """Start ``voila notebook`` on a free loopback port and wait until it answers; the notebook
    runs when its page is first requested. ``env`` adds to (or overrides) the environment,
    ``args`` go to Voila's command line."""
    port = free_port()
    command = [
        sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
        "--show_tracebacks=True", *args,
    ]  # fmt: skip
    environment = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True, cwd=notebook.parent
    )
    server = VoilaServer(f"http://127.0.0.1:{port}/", process, Path(log_path), Path(notebook))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Voila exited with {process.returncode}:\n{server.log_tail()}")
        if _answers(port):
            return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"Voila did not answer within {timeout:.0f} s:\n{server.log_tail()}")


@contextlib.contextmanager
def voila(notebook: Path, log_path: Path, **kw):
    """``start_voila`` as a context manager that always stops the server."""
    server = start_voila(notebook, log_path, **kw)
    try:
        yield server
    finally:
        server.stop()


def seconds_to_first_drawn_canvas(
    page, server: VoilaServer, css: str = VOILA_OUTPUT, *, timeout: float = 600.0
) -> float:
    """Open the Voila page and return the seconds from the request to the first canvas under
    ``css`` with pixels drawn on it."""
    start = time.monotonic()
    page.goto(server.url, wait_until="commit", timeout=timeout * 1000)
    page.wait_for_function(CANVAS_DRAWN, arg=css, timeout=timeout * 1000, polling=100)
    return time.monotonic() - start
