"""report.html opened in a real headless Chromium (Debian's, driven by Playwright: no browser
download): its rows and sorting, its pictures, no request leaving the file, and a snapshot
named like markup shown as text."""

import json
import shutil
from pathlib import Path

import pytest
from helpers import REPO

from depth_eval import cli
from depth_eval.report import html

CHROMIUM = Path("/usr/bin/chromium")
# Chromium as root in a container: no sandbox, nothing it would fetch on its own.
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EXAMPLES = REPO / "examples"
LATE, EARLY = "demo_refine_iter_3200", "demo_refine_iter_200"
HOSTILE = "<img src=x onerror=alert(1)>"

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="Playwright's Python package is not installed "
                                            "(pip install '.[test]')")
pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium); "
                                       ".ci/run installs it")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A run over the examples and a copy of the late snapshot named HOSTILE, with a baseline."""
    root = tmp_path_factory.mktemp("browser")
    snapshots = root / "snapshots"
    shutil.copytree(EXAMPLES / "snapshots", snapshots)
    for suffix in (".prototxt", ".caffemodel"):
        shutil.copy(snapshots / f"{LATE}{suffix}", snapshots / f"{HOSTILE}{suffix}")
    args = [str(EXAMPLES / "colors"), str(EXAMPLES / "depths")]
    assert cli.main([*args, str(root / "base"), str(snapshots), "--quiet"]) == 0
    status = cli.main([*args, str(root / "out"), str(snapshots), "--quiet", "--baseline",
                       str(root / "base" / "results.json"), "--fail-if", "RMSE>+2%",
                       "--significant"])
    assert status == 0
    return root / "out" / html.REPORT_HTML


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, report):
    """The report opened with every request recorded, and answered only from files."""
    page = browser.new_page(viewport={"width": 1600, "height": 12000})
    page.requests, page.dialogs, page.errors = [], [], []

    def route(request_route):
        url = request_route.request.url
        page.requests.append(url)
        if url.startswith("file://"):
            request_route.continue_()
        else:
            request_route.abort()

    page.route("**/*", route)
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    yield page
    page.close()


def _column(page, title):
    headers = page.locator("#rankings thead th").all_inner_texts()
    index = [h.strip() for h in headers].index(title)
    return [float(cell.get_attribute("data-value"))
            for cell in page.locator(f"#rankings tbody tr td:nth-child({index + 1})").all()]


def test_rows_and_sorting(page, report):
    results = json.loads((report.parent / "results.json").read_text())
    names = page.locator("#rankings tbody tr td:first-child").all_inner_texts()
    assert sorted(names) == sorted(results["snapshots"])
    rmse = {name: e["metrics"]["RMSE"] for name, e in results["snapshots"].items()}
    page.locator("#rankings thead th", has_text="RMSE").first.click()
    ascending = _column(page, "RMSE")
    assert ascending == sorted(rmse.values())
    page.locator("#rankings thead th", has_text="RMSE").first.click()
    assert _column(page, "RMSE") == sorted(rmse.values(), reverse=True)
    low, high = results["snapshots"][EARLY]["metrics_ci"]["RMSE"]
    row = page.locator("#rankings tbody tr", has_text=EARLY).first.inner_text()
    assert f"[{low:.4f}, {high:.4f}]" in row
    gate = page.locator("#gate").inner_text()
    assert "passed" in gate and "RMSE>+2%" in gate
    assert page.errors == []


def test_pictures_load_and_no_request_leaves_the_file(page, report):
    images = page.locator("#images img")
    assert images.count() >= 8 * (2 + 3 * 2)  # first page: input, GT, raw + fitted (+ error)
    # A function, not an expression: Playwright evaluates an expression with eval, which the
    # page's Content-Security-Policy forbids once it has to poll.
    page.wait_for_function("() => [...document.querySelectorAll('#images img')]"
                           ".every(img => img.complete)")
    widths = page.eval_on_selector_all("#images img", "imgs => imgs.map(i => i.naturalWidth)")
    assert all(width > 0 for width in widths)
    labels = page.locator("#images figcaption").all_inner_texts()
    assert {"input", "ground truth", "raw", "fitted", "error"} <= set(labels)
    assert page.requests and all(url.startswith("file://") for url in page.requests)
    folders = [folder.resolve().as_uri() + "/"
               for folder in (report.parent, report.parent.with_name("out_abs"))]
    pictures = [url for url in page.requests if url != report.resolve().as_uri()]
    assert all(url.startswith(tuple(folders)) for url in pictures)  # OUT_DIR, OUT_DIR_abs
    assert any(url.startswith(folders[1]) for url in pictures)


def test_markup_in_a_snapshot_name_is_text(page):
    names = page.locator("#rankings tbody tr td:first-child").all_inner_texts()
    assert HOSTILE in names
    assert page.dialogs == []
    assert page.locator("img[src='x']").count() == 0
    page.locator("button", has_text="next").click()
    assert page.dialogs == [] and page.errors == []
