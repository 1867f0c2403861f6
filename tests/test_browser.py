"""What a person opens works offline, as files, in a real browser: the documentation site, the page
`dvc plots show` writes, and metrics/report.html, each opened in headless Chromium with the network
off (tests/browser.py). A console error, a resource that failed to load, an empty chart, an image
not shown or a link to a missing file fails the test; screenshots of every page are kept in
test-artifacts/browser/ (CI keeps them as artefacts).

Chromium comes from the system's packages (.ci/run installs it): without it these tests are
skipped, except under CI (`CI` set), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from breakhis.evaluation.html_report import write_report_html
from commands.plots_page import TEMPLATE, write_plots_template
from tests.browser import chromium_available, headless_chromium, page_problems
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow  # a browser and DVC: seconds each, a minute in all

BUNDLE = re.compile(r"<script>\s*\(function \(\) \{.*?\}\)\(\);\s*</script>", re.DOTALL)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not chromium_available():
        message = "Chromium and chromedriver are not installed (apt-get install -y chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with headless_chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def plots_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`dvc plots show` of the committed plot data, with the project's own config (.dvc/config
    names the offline template, which run.py writes; written here when missing)."""
    if not (PROJECT_ROOT / TEMPLATE).is_file():
        write_plots_template(PROJECT_ROOT / TEMPLATE)
    out = tmp_path_factory.mktemp("dvc_plots")
    subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "-o", str(out)],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    return out / "index.html"


def test_dvc_plots_show_renders_every_chart_offline(browser: WebDriver, plots_page: Path) -> None:
    page = plots_page.read_text()
    assert "cdn.jsdelivr.net" not in page  # the libraries are inline, not fetched
    assert page.count("vegaEmbed(") >= 10  # the interactive charts of dvc.yaml
    assert page_problems(browser, plots_page, "dvc_plots") == []


def test_a_chart_page_without_its_script_fails_the_check(
    browser: WebDriver, plots_page: Path, tmp_path: Path
) -> None:
    """The check can fail: the same page with the inline Vega bundle removed shows empty charts
    and a console error."""
    broken = tmp_path / "no_script.html"
    text, removed = BUNDLE.subn("", plots_page.read_text(), count=1)
    assert removed == 1
    broken.write_text(text)
    problems = page_problems(browser, broken, "dvc_plots_without_script", timeout=3)
    assert any("empty chart" in problem for problem in problems), problems
    assert any("vegaEmbed is not defined" in problem for problem in problems), problems


def test_the_report_opens_as_one_file(browser: WebDriver, tmp_path: Path) -> None:
    """metrics/report.html as evaluate wrote it; before a run has written it, as evaluate would
    from the committed report.md (beside a copy of the model card it links to)."""
    report = PROJECT_ROOT / "metrics" / "report.html"
    if not report.is_file():
        (tmp_path / "metrics").mkdir()
        for name in ("report.md", "model_card.md"):
            shutil.copy(PROJECT_ROOT / "metrics" / name, tmp_path / "metrics" / name)
        shutil.copytree(PROJECT_ROOT / "plots", tmp_path / "plots")
        report = tmp_path / "metrics" / "report.html"
        write_report_html(tmp_path / "metrics" / "report.md", report)
    assert "<img" in report.read_text() and 'src="../plots' not in report.read_text()  # figures inline
    assert page_problems(browser, report, "report") == []


def test_the_documentation_site_works_as_files(browser: WebDriver, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    pages = sorted(path for path in site.rglob("*.html") if path.name != "404.html")
    assert len(pages) >= 20
    problems = []
    for page in pages:
        problems += page_problems(
            browser, page, "docs_" + "_".join(page.relative_to(site).with_suffix("").parts)
        )
    assert problems == []
