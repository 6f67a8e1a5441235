"""The built site, checked in a real browser (headless Chromium through Playwright).

Every page is opened from a local HTTP server; the checks: no broken images, no console errors
or failed requests, every internal link (and its #anchor) resolves, the concept map and every
plot of the executed notebooks render, and two pages are saved as screenshots in
``_build/screenshots/``.

Which site: by default the book is built here in the ``smoke`` profile into a temporary
directory (``jupyter-book build --path-output``), so the repository's ``_build`` and its
cpu-profile execution cache are never touched.  ``LLMBOOK_SITE=_build/html`` checks an existing
build instead (e.g. after ``make book``).  Skipped when Chromium or Playwright is missing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
BUILD_TIMEOUT = 3600  # every notebook runs in the smoke profile: minutes on 2 quiet cores
PAGE_TIMEOUT = 60_000  # milliseconds, per navigation
SCREENSHOTS = {"book/intro.html": "intro.png",
               "notebooks/09_sentiment_finetuning.html": "09_sentiment_finetuning.png"}
SCREENSHOT_DIR = ROOT / "_build" / "screenshots"

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

# Waits for every <img> (lazy ones included) to load or fail, then reports the broken ones.
BROKEN_IMAGES_JS = """async () => {
  const images = Array.from(document.images);
  const settle = images.map((img) => {
    img.loading = "eager";
    return img.decode().catch(() => null);
  });
  await Promise.race([Promise.all(settle), new Promise((done) => setTimeout(done, 15000))]);
  return images.filter((img) => !img.complete || img.naturalWidth === 0)
               .map((img) => img.getAttribute("src"));
}"""
OUTPUT_IMAGES_JS = """() => Array.from(document.querySelectorAll(".cell_output img"))
  .map((img) => ({src: img.getAttribute("src"), width: img.naturalWidth}))"""
LINKS_JS = "() => Array.from(document.querySelectorAll('a[href]')).map((a) => a.href)"
IDS_JS = "() => Array.from(document.querySelectorAll('[id]')).map((e) => e.id)"


@dataclass
class PageReport:
    """What the browser saw on one page."""

    broken_images: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    output_images: list[dict] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


@dataclass
class SiteReport:
    root: Path
    base_url: str
    pages: dict[str, PageReport]
    redirects: dict[str, str]
    toc_pages: list[str]  # read when the build started (others may edit _toc.yml meanwhile)
    plotting_pages: list[str]
    external_requests: set[str]
    screenshots: list[Path]
    started: float


def _build_smoke_site(out: Path) -> Path:
    """Build the book in the smoke profile into ``out``; return its html directory."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    env = {**os.environ, "LLMBOOK_PROFILE": "smoke", "TQDM_DISABLE": "1"}
    env.pop("MPLBACKEND", None)  # conftest sets Agg for the unit tests; the book plots inline
    command = [str(jupyter_book), "build", str(ROOT), "--path-output", str(out), "-W"]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"jupyter-book build did not finish in {BUILD_TIMEOUT} s")
    if result.returncode != 0:
        noise = ("IPKernelApp", "ParserConfig(", "logging.py", "pending_warnings")
        lines = [line for line in (result.stdout + result.stderr).splitlines()
                 if not any(word in line for word in noise)]
        causes = [line for line in lines if re.search(r"warning|error|exception", line, re.I)]
        # a failed notebook's traceback is only in its report, inside ``out`` (deleted after)
        reports = [f"--- {path.name}\n{path.read_text()[-3000:]}"
                   for path in sorted(out.rglob("*.err.log"))]
        pytest.fail("jupyter-book build -W failed (smoke profile):\n"
                    + "\n".join((causes or lines)[-30:] + reports))
    return out / "_build" / "html"


def _toc_entries() -> list[str]:
    """Every document of _toc.yml (root included), as paths without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                yield entry["file"]
            yield from walk(entry.get("chapters", []) + entry.get("sections", []))

    return [toc["root"], *walk(toc["parts"])]


def _code(entry: str) -> str:
    """The code a page executes: notebook code cells, or a MyST page's code-cell blocks."""
    notebook, markdown = ROOT / f"{entry}.ipynb", ROOT / f"{entry}.md"
    if notebook.exists():
        cells = json.loads(notebook.read_text())["cells"]
        return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    if markdown.exists():
        return "\n".join(re.findall(r"```\{code-cell\}.*?```", markdown.read_text(), re.S))
    return ""


def pages_that_plot(entries: list[str]) -> list[str]:
    """Pages whose code draws with llmbook.plots: each must show at least one rendered image."""
    return [f"{entry}.html" for entry in entries if re.search(r"\bplot_\w+\(", _code(entry))]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(directory: Path) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_QuietHandler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _visit(browser, base_url: str, page_path: str, external: set[str]) -> PageReport:
    report = PageReport()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(PAGE_TIMEOUT)

    def route(route):
        # Pages pull MathJax from a CDN; answer every off-site request with an empty body so
        # the check is the same with and without network access.
        url = route.request.url
        if url.startswith(base_url):
            route.continue_()
        else:
            external.add(urlsplit(url).netloc)
            route.fulfill(status=200, body="")

    page.route("**/*", route)
    page.on("console", lambda msg: msg.type == "error" and report.console_errors.append(
        f"{msg.text} ({msg.location.get('url', '')})"))
    page.on("pageerror", lambda error: report.console_errors.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: report.failed_requests.append(
        f"{request.url} ({request.failure})"))
    page.on("response", lambda response: response.status >= 400 and
            report.failed_requests.append(f"{response.url} (HTTP {response.status})"))
    try:
        page.goto(base_url + page_path, wait_until="load", timeout=PAGE_TIMEOUT)
        report.broken_images = page.evaluate(BROKEN_IMAGES_JS)
        report.output_images = page.evaluate(OUTPUT_IMAGES_JS)
        report.links = page.evaluate(LINKS_JS)
        report.ids = set(page.evaluate(IDS_JS))
        if page_path in SCREENSHOTS:
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT_DIR / SCREENSHOTS[page_path]))
    except playwright_api.Error as err:
        report.console_errors.append(f"could not load the page: {err}")
    finally:
        page.close()
    return report


@pytest.fixture(scope="module")
def site():
    toc_entries = _toc_entries()
    plotting = pages_that_plot(toc_entries)
    with tempfile.TemporaryDirectory(prefix="llmbook-site-") as tmp:
        html = (Path(os.environ["LLMBOOK_SITE"]).resolve() if os.environ.get("LLMBOOK_SITE")
                else _build_smoke_site(Path(tmp)))
        assert (html / "index.html").exists(), f"no site at {html}"
        started = time.time()
        files = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                       if not p.relative_to(html).parts[0].startswith("_"))
        # jupyter-book writes index.html as a meta-refresh redirect to the root page.
        redirects = {}
        for path in files:
            refresh = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"',
                                (html / path).read_text(), re.I)
            if refresh:
                redirects[path] = refresh.group(1)
        pages = [path for path in files if path not in redirects]
        server = _serve(html)
        base_url = f"http://127.0.0.1:{server.server_address[1]}/"
        external: set[str] = set()
        try:
            with playwright_api.sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             timeout=PAGE_TIMEOUT)
                try:
                    reports = {path: _visit(browser, base_url, path, external) for path in pages}
                finally:
                    browser.close()
        finally:
            server.shutdown()
            server.server_close()
        yield SiteReport(html, base_url, reports, redirects,
                         [f"{entry}.html" for entry in toc_entries], plotting, external,
                         [SCREENSHOT_DIR / name for name in SCREENSHOTS.values()], started)


def _problems(site: SiteReport, attribute: str) -> list[str]:
    return [f"{page}: {item}" for page, report in site.pages.items()
            for item in getattr(report, attribute)]


def test_every_page_of_the_toc_is_in_the_site(site):
    missing = [page for page in site.toc_pages if page not in site.pages]
    assert not missing, f"documents of _toc.yml without a page: {missing}"
    for page, target in site.redirects.items():
        resolved = (site.root / page).parent / target
        assert resolved.is_file(), f"{page} redirects to missing {target}"


def test_no_broken_images(site):
    problems = _problems(site, "broken_images")
    assert not problems, "broken images:\n" + "\n".join(problems)


def test_no_console_errors_or_failed_requests(site):
    problems = _problems(site, "console_errors") + _problems(site, "failed_requests")
    assert not problems, "console errors / failed requests:\n" + "\n".join(problems)


def test_internal_links_and_anchors_resolve(site):
    problems = []
    for page, report in site.pages.items():
        for link in report.links:
            if not link.startswith(site.base_url):
                continue
            parts = urlsplit(link)
            target = unquote(parts.path[len(urlsplit(site.base_url).path):]) or "index.html"
            if target.endswith("/"):
                target += "index.html"
            if not (site.root / target).is_file():
                problems.append(f"{page}: link to missing {target}")
            elif parts.fragment and target in site.pages and \
                    unquote(parts.fragment) not in site.pages[target].ids:
                problems.append(f"{page}: link to missing anchor {target}#{parts.fragment}")
    assert not problems, "broken internal links:\n" + "\n".join(sorted(set(problems)))


def test_concept_map_renders(site):
    images = site.pages["book/concepts.html"].output_images
    assert images, "book/concepts.html: the concept map (an executed-output image) is missing"
    assert all(image["width"] > 0 for image in images), f"concept map not rendered: {images}"


def test_every_plot_of_the_executed_notebooks_renders(site):
    plotting = site.plotting_pages
    assert len(plotting) >= 4, f"expected the chapters' plots, found plotting pages {plotting}"
    problems = []
    for page in plotting:
        shown = site.pages[page].output_images if page in site.pages else []
        if not shown:
            problems.append(f"{page}: calls llmbook.plots but shows no output image")
    for page, report in site.pages.items():
        problems += [f"{page}: output image {image['src']} not rendered"
                     for image in report.output_images if image["width"] == 0]
    assert not problems, "plots missing:\n" + "\n".join(problems)


def test_screenshots_are_saved(site):
    for path in site.screenshots:
        assert path.is_file() and path.stat().st_size > 10_000, f"no screenshot at {path}"
        assert path.stat().st_mtime >= site.started - 1, f"{path} was not written by this run"
