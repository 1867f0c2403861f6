"""Opening pages as a person would, in headless Chromium with the network off, and listing what is
wrong with them: console errors, resources that failed to load, charts left empty, images that did
not decode, links to files that do not exist.

Chromium and its driver come from the system's packages (Debian: `apt-get install -y chromium
chromium-driver`; .ci/run installs them when missing), never from a download at test time;
selenium drives them. Each page opened is kept as a screenshot in `SCREENSHOTS` (a CI artefact).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import unquote, urlsplit

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import PROJECT_ROOT

SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS", PROJECT_ROOT / "test-artifacts" / "browser"))
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)

# every chart's container: vega-embed adds the class; DVC's plot divs hold a script calling vegaEmbed
EMPTY_CHARTS = """
const charts = new Set(document.querySelectorAll('.vega-embed'));
for (const script of document.querySelectorAll('script')) {
  if (script.textContent.includes('vegaEmbed(') && script.parentElement.tagName === 'DIV') {
    charts.add(script.parentElement);
  }
}
return [...charts].filter(c => !c.querySelector('svg, canvas')).map(c => c.id || c.className || 'chart');
"""
BROKEN_IMAGES = """
return [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
  .map(i => (i.getAttribute('src') || '').slice(0, 80));
"""
LINKS = "return [...document.querySelectorAll('a[href]')].map(a => a.href);"
CHARTS_DRAWN = """
const pending = [...document.querySelectorAll('script')]
  .filter(s => s.textContent.includes('vegaEmbed(') && s.parentElement.tagName === 'DIV')
  .filter(s => !s.parentElement.querySelector('svg, canvas'));
return document.readyState === 'complete' && pending.length === 0;
"""


def executable(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def chromium_available() -> bool:
    return executable(CHROMIUM_NAMES) is not None and executable(DRIVER_NAMES) is not None


@contextmanager
def headless_chromium() -> Iterator[WebDriver]:
    """A selenium driver of the system's Chromium: headless, a fresh profile, no network (every
    host resolves to nothing, every request goes to a closed proxy), browser console logged."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(executable(CHROMIUM_NAMES))
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # the network is off
        "--proxy-server=127.0.0.1:9",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=executable(DRIVER_NAMES)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def local_target(href: str) -> Path | None:
    """The file a `file:` link points to (without its #fragment), or None for other links."""
    parts = urlsplit(href)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def page_problems(driver: WebDriver, page: Path, screenshot: str, *, timeout: float = 20) -> list[str]:
    """Open `page` (a file), wait up to `timeout` seconds for its charts, keep a screenshot, and
    list what is wrong with it."""
    driver.get(page.resolve().as_uri())
    with suppress(TimeoutException):  # the empty charts are listed below
        WebDriverWait(driver, timeout).until(lambda d: d.execute_script(CHARTS_DRAWN))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{screenshot}.png"))
    problems = [
        f"console {entry['level']}: {entry['message'][:300]}"
        for entry in driver.get_log("browser")
        if entry["level"] in ("SEVERE", "ERROR")
    ]
    problems += [f"empty chart: {chart}" for chart in driver.execute_script(EMPTY_CHARTS)]
    problems += [f"image not shown: {src}" for src in driver.execute_script(BROKEN_IMAGES)]
    for href in driver.execute_script(LINKS):
        target = local_target(href)
        if target is not None and not target.is_file():
            problems.append(f"broken link: {href}" + (" (a folder)" if target.is_dir() else ""))
    return [f"{page.name}: {problem}" for problem in problems]
