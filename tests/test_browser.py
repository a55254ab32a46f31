"""The built book in a real browser: headless Chromium driven by Playwright, over a local server.

Skipped, with the reason, when Chromium or Playwright is missing (`make browser-deps`: Debian's
`apt-get install -y chromium`, or `python -m playwright install chromium`; or set CHROMIUM to a
path). Screenshots of the step-03 page and the Vietnamese introduction are saved in the test's temporary directory.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.check.engine import REPO_ROOT, available_steps
from tests.test_book import build_book

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """$CHROMIUM, the system's Chromium, or the one `python -m playwright install chromium` downloads."""
    downloaded = sorted(Path.home().glob(".cache/ms-playwright/chromium-*/chrome-*/chrome"))
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        *map(str, downloaded[-1:]),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The book, built and served on 127.0.0.1 by a background thread; yields its base URL."""
    destination = tmp_path_factory.mktemp("book")
    result = build_book(destination)
    assert result.returncode == 0, result.stdout + result.stderr
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(destination)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A Chromium with a new, empty profile; records console errors and blocks off-machine requests."""
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "Chromium is not installed: make browser-deps (apt-get install -y chromium, or "
            "python -m playwright install chromium), or set CHROMIUM=/path/to/chromium"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install -e '.[docs]')")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.problems = []  # console errors, page errors, off-machine requests

        def block_outside(route):
            if route.request.url.startswith(("http://127.0.0.1", "data:")):
                route.continue_()
            else:
                context.problems.append(f"request to another host: {route.request.url}")
                route.abort()

        context.route("**/*", block_outside)
        yield context
        context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.on(
        "console",
        lambda message: (
            message.type == "error" and browser.problems.append(f"console error on {page.url}: {message.text}")
        ),
    )
    page.on("pageerror", lambda error: browser.problems.append(f"page error on {page.url}: {error}"))
    yield page
    page.close()


def visit(page, url):
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: HTTP {response and response.status}"
    page.wait_for_function("document.querySelector('#mdbook-sidebar a, .sidebar a') !== null")
    return page


def test_sidebar_lists_every_step_and_both_languages(page, site):
    visit(page, site)
    sidebar = page.locator("#mdbook-sidebar, nav.sidebar").first
    hrefs = sidebar.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    texts = sidebar.inner_text()
    for step in available_steps():
        assert any(href and href.endswith(f"step_{step}.html") and "vi/" not in href for href in hrefs), step
        assert any(href and href.endswith(f"vi/step_{step}.html") for href in hrefs), step
        assert f"Step {step}" in texts and f"Bước {step}" in texts
    assert "Tiếng Việt" in texts


def solution_lines(path: Path, anchor: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    body = text.split(f"ANCHOR: {anchor}\n", 1)[1].split(f"ANCHOR_END: {anchor}", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip() and "ANCHOR" not in line]


def test_step_03_reveals_the_solution_code(page, site, tmp_path_factory):
    visit(page, site + "step_03.html")
    details = page.locator("details").first
    code = details.locator("pre code")
    assert not code.is_visible(), "the solution should be folded away until asked for"
    details.locator("summary").click()
    code.wait_for(state="visible")
    shown = code.inner_text()
    expected = solution_lines(REPO_ROOT / "solutions" / "solution_03.py", "module")
    assert expected and all(line in shown for line in expected[:5]), shown[:500]
    details.scroll_into_view_if_needed()
    path = tmp_path_factory.mktemp("screenshots") / "step_03.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")


def test_vietnamese_introduction_and_language_switch(page, site, tmp_path_factory):
    visit(page, site + "step_01.html")
    page.locator(".lang-switch a", has_text="Tiếng Việt").click()
    page.wait_for_url(re.compile(r"/vi/step_01\.html$"))
    assert page.locator('main [lang="vi"] h1').first.inner_text().startswith("Bước 01")
    page.locator(".lang-switch a", has_text="English").click()
    page.wait_for_url(re.compile(r"127\.0\.0\.1:\d+/step_01\.html$"))
    assert page.locator("main h1").first.inner_text().startswith("Step 01")

    visit(page, site + "vi/introduction.html")
    assert "LayerNorm từ con số không" in page.locator("main h1").first.inner_text()
    path = tmp_path_factory.mktemp("screenshots") / "vi_introduction.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")


def book_pages() -> list[str]:
    summary = (REPO_ROOT / "docs" / "src" / "SUMMARY.md").read_text(encoding="utf-8")
    return [
        target.removeprefix("./").removesuffix(".md") + ".html" for target in re.findall(r"\]\(([^)]+\.md)\)", summary)
    ]


def test_every_image_loads_on_every_page(page, site):
    for name in book_pages():
        visit(page, site + name)
        broken = page.evaluate("""() => Array.from(document.querySelectorAll('main img'))
            .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute('src').slice(0, 80))""")
        assert not broken, f"{name}: images that did not load: {broken}"


def test_formulas_render_as_images_of_sensible_size(page, site):
    visit(page, site + "step_02.html")
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll('img.formula'))
        .map(img => [img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width])""")
    assert len(sizes) >= 5
    for width, height, shown in sizes:
        assert 40 < width < 1200 and 10 < height < 200 and shown > 0, sizes


def test_no_console_errors_and_nothing_loaded_from_outside(browser, page, site):
    for name in book_pages():
        visit(page, site + name)
    assert not browser.problems, "\n".join(browser.problems)
