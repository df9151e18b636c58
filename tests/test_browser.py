"""A learner's session in a real browser: JupyterLab serves the self-paced notebook, headless
Chromium runs its cells, and the self-check's verdict appears on the page."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from graders.jupyter import lab_command, lab_url
from graders.lab import reset
from graders.release import SELF_CHECK_PASSED
from graders.samples import SampleMaker

pytestmark = [pytest.mark.docker, pytest.mark.slow]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "logs" / "browser-self-check.png"
NOTEBOOK = "02-containers"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _first_exercise_solved(folder: Path) -> None:
    """The self-paced notebook with its first exercise answered, as a learner would."""
    source = nbformat.read(str(ROOT / "source" / NOTEBOOK / f"{NOTEBOOK}.ipynb"), 4)
    release = nbformat.read(str(ROOT / "release" / NOTEBOOK / f"{NOTEBOOK}.ipynb"), 4)
    maker = SampleMaker(source, release)
    first = maker.items[0]
    path = folder / f"{NOTEBOOK}.ipynb"
    nb = nbformat.read(str(path), 4)
    for cell in nb.cells:
        if cell.id == f"{first}-solution":
            cell.source = maker.answers[f"{first}-solution"]
    nbformat.write(nb, str(path))


@pytest.fixture
def lab_server(tmp_path, client):
    folder = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder)
    _first_exercise_solved(folder)
    port, token = _free_port(), "course-browser-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings")}
    # No news pop-up over the page on a first start.
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Every cell in the page, not only those in view, so the test can find any output.
    notebook_settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    notebook_settings.mkdir(parents=True)
    (notebook_settings / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    server = subprocess.Popen(lab_command(folder, port, token), env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}",
                                       timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("JupyterLab did not start")
                time.sleep(0.5)
        yield port, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        reset(client, "learner")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_a_learner_runs_the_notebook_and_sees_the_self_check(lab_server):
    from playwright.sync_api import sync_playwright

    port, token = lab_server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(lab_url(port, token, f"{NOTEBOOK}.ipynb"), timeout=60_000)
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=60_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            verdict = page.locator(".jp-OutputArea-output",
                                   has_text=f"{SELF_CHECK_PASSED} create").first
            SCREENSHOT.parent.mkdir(exist_ok=True)
            try:
                verdict.wait_for(state="attached", timeout=120_000)
            finally:
                page.screenshot(path=str(SCREENSHOT))
            verdict.scroll_into_view_if_needed()
            verdict.wait_for(state="visible", timeout=10_000)
            page.screenshot(path=str(SCREENSHOT))
            assert verdict.is_visible()
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
