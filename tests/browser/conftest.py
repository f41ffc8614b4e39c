"""Fixtures for widget tests in a real JupyterLab rendered by headless Chromium.

``jupyter_server`` (alias ``lab_server``) is one JupyterLab per test session; ``browser_page``
(alias ``page``) is a fresh browser context and page per test, with ``page.console_errors``
collecting console errors and uncaught page errors. When Chromium cannot start, browser tests
skip, unless ``CLIP_WIDGETS_REQUIRE_BROWSER=1`` (set by scripts/test.sh in CI): then they fail.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from .harness import CHROMIUM, CHROMIUM_ARGS, LabServer, start_lab

REQUIRE_BROWSER = os.environ.get("CLIP_WIDGETS_REQUIRE_BROWSER") == "1"


def _unavailable(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"browser tests are required here (CLIP_WIDGETS_REQUIRE_BROWSER=1) but cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory) -> LabServer:
    root = tmp_path_factory.mktemp("lab")
    log_path = tmp_path_factory.mktemp("lab-log") / "jupyterlab.log"
    server = start_lab(root, log_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lab_server(jupyter_server) -> LabServer:
    return jupyter_server


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


@contextlib.contextmanager
def console_page(chromium):
    """A fresh context and page whose ``console_errors`` collects console errors and uncaught
    page errors; the context is closed after."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("pageerror", lambda error: page.console_errors.append(f"pageerror: {error}"))
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def lone_page(chromium):
    """A page with no JupyterLab behind it (Voila, saved pages)."""
    with console_page(chromium) as page:
        yield page


@pytest.fixture
def browser_page(chromium, jupyter_server, request):
    with console_page(chromium) as page:
        yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"--- browser console errors ---\n{page.console_errors}")
        print(f"--- JupyterLab log ({jupyter_server.log_path}) ---\n{jupyter_server.log_tail()}")


@pytest.fixture
def page(browser_page):
    return browser_page


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
