"""End to end in headless Chromium: a really processed asset, every media element loads, and
regenerate from the page produces a new version. Driven by Selenium through Debian's
chromium-driver, offline (the driver's path is given and SE_OFFLINE is set, so Selenium Manager
never looks for a driver to download). Screenshots land in test-artifacts/."""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("selenium")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import JavascriptException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.flows.conftest import make_library, stepfoley  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TOKEN = "browser-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return r
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.2)


class Page:
    """The few calls the test makes, on a Selenium Chrome driver."""

    def __init__(self, profile: Path) -> None:
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                    f"--user-data-dir={profile}", "--window-size=1280,1600"):
            opts.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)

    def js(self, expr: str) -> Any:
        return self.driver.execute_script(f"return ({expr});")

    def wait_for(self, expr: str, timeout: float = 30) -> Any:
        # Mid-navigation the document is being replaced: a failing script just means "not yet".
        return WebDriverWait(self.driver, timeout, poll_frequency=0.25,
                             ignored_exceptions=(JavascriptException, WebDriverException)).until(
            lambda _d: self.js(expr))

    def goto(self, url: str) -> None:
        self.driver.get(url)  # returns once the page has loaded
        self.wait_for(f"location.href.startsWith({json.dumps(url)}) && document.readyState === 'complete'")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot",
                                           {"format": "png", "captureBeyondViewport": True})
        out = ARTIFACTS / name
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    def close(self) -> None:
        self.driver.quit()  # ends chromedriver and the browser it started


@pytest.mark.browser
def test_dashboard_in_chromium(tmp_path: Path, tiny_bundle: Path, demo_footage: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists():
        pytest.skip("Debian chromium / chromium-driver not installed (apt-get install chromium chromium-driver)")
    monkeypatch.setenv("SE_OFFLINE", "true")
    data = tmp_path / "data"
    lib = make_library(demo_footage, tmp_path / "lib", ["three-shots.mp4"],
                       {"three-shots.mp4": ["a dog barks", "rain falls"]})
    proc = stepfoley(["--data-dir", str(data), "run", str(lib), "--bundle", str(tiny_bundle),
                      "--steps", "3", "--tracks", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]

    port = _free_port()
    env = {**os.environ, "STEPFOLEY_DASHBOARD_TOKEN": TOKEN, "STEPFOLEY_BUNDLE": str(tiny_bundle),
           "STEPFOLEY_STEPS": "3"}
    server = subprocess.Popen([sys.executable, "-m", "flows", "--data-dir", str(data), "dashboard",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "dashboard.log", "w"))
    base = f"http://127.0.0.1:{port}"
    page: Page | None = None
    try:
        page = Page(tmp_path / "chrome")
        # With a token the dashboard imports the whole pipeline before it serves (~30 s measured
        # on a busy 2-core machine).
        _wait_http(f"{base}/api/overview", 120)

        page.goto(base + "/")
        assert page.js("document.querySelector('h1').textContent") == "Overview"
        assert page.js("document.querySelectorAll('svg.chart rect').length") >= 1
        page.screenshot("dashboard-overview.png")

        asset_id = httpx.get(f"{base}/api/assets").json()["assets"][0]["id"]
        page.goto(f"{base}/assets/{asset_id}")
        n_media = page.js("document.querySelectorAll('audio, video').length")
        assert n_media >= 3  # output video, mix, at least one stem
        # Every player actually loaded its source (metadata decoded), not merely got a 200.
        page.wait_for("Array.from(document.querySelectorAll('audio, video'))"
                      ".every(m => m.readyState >= 1 && !m.error)", timeout=30)
        page.wait_for("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
                      timeout=30)  # spectrograms: rendered on first request, then cached
        page.screenshot("dashboard-asset.png")

        form = "document.querySelector('form[action$=\"/regenerate\"]')"
        track_id = int(page.js(f"{form}.closest('[data-track-id]').dataset.trackId"))
        order = int(page.js(f"{form}.closest('.track').dataset.order"))
        # Typed and clicked as a user would (Selenium scrolls the form into view).
        element = page.driver.find_element(By.CSS_SELECTOR, 'form[action$="/regenerate"]')
        element.find_element(By.NAME, "token").send_keys(TOKEN)
        element.find_element(By.NAME, "seed").send_keys("4242")
        element.find_element(By.TAG_NAME, "button").click()
        # The page polls the job and reloads when it is done: the new version shows up.
        page.wait_for(f"document.querySelector('.track[data-order=\"{order}\"] "
                      f"[data-version=\"2\"]') !== null && document.querySelector('.job-done') !== null",
                      timeout=120)
        assert page.js(f"document.querySelector('[data-track-id=\"{track_id}\"]')"
                       ".classList.contains('st-superseded')")
        page.wait_for("Array.from(document.querySelectorAll('audio, video'))"
                      ".every(m => m.readyState >= 1 && !m.error)", timeout=30)
        page.screenshot("dashboard-after-regenerate.png")

        # The same action from the CLI: shot 1, track 2 gets a version 2 the page then lists.
        sha = httpx.get(f"{base}/api/assets/{asset_id}").json()["sha256"]
        cli = stepfoley(["--data-dir", str(data), "regenerate", sha[:12], "1", "2", "--seed", "9"],
                        env={"STEPFOLEY_BUNDLE": str(tiny_bundle), "STEPFOLEY_STEPS": "3"})
        assert cli.returncode == 0, cli.stderr[-3000:]
        assert json.loads(cli.stdout)
        d = httpx.get(f"{base}/api/assets/{asset_id}").json()
        v2 = [t for w in d["windows"] if w["shot_index"] == 1 for t in w["tracks"]
              if t["order"] == 2 and t["version"] == 2]
        assert v2 and all(t["status"] == "current" and t["seed"] == 9 for t in v2)
    finally:
        helpers = _children(server.pid)  # the dashboard's Prefect API server among them
        if page is not None:
            page.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    # However the dashboard ended (SIGTERM, or SIGKILL after 10 s), nothing it started is left.
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert helpers and not [pid for pid in helpers if _alive(pid)]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
