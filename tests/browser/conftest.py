"""Fixtures for widget tests in a real JupyterLab rendered by headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .harness import CHROMIUM, CHROMIUM_ARGS, LabServer, start_lab

REQUIRE_BROWSER = os.environ.get("CLIP_WIDGETS_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"browser tests are required here but cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory) -> LabServer:
    root = tmp_path_factory.mktemp("lab")
    server = start_lab(root, root / "jupyterlab.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - playwright is a test dependency
        _unavailable(f"playwright is not installed ({exc})")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:  # noqa: BLE001 - any launch failure means no browser tests
            _unavailable(f"Chromium did not start: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, lab_server):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    yield page
    context.close()
