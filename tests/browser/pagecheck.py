"""What a learner sees: load built book pages in headless Chromium and list visible defects.

Used by the browser tests and, from the command line, to take screenshots for a human to look at:

    .venv/bin/python tests/browser/pagecheck.py [--shots DIR] [PAGE.html ...]

(PAGE relative to _build/html; default: every page). It prints the problems of each page at
1280 px and 390 px and, with --shots, saves a screenshot of the top of each page and of every
element with a problem.
"""

import contextlib
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("SPIKE_BOOK_HTML") or ROOT / "_build" / "html")  # the built book
WIDTHS = {"desktop": 1280, "phone": 390}
CHROMIUM_PACKAGES = "chromium chromium-driver"  # Debian names, installed by scripts/setup.sh
# text that means a widget was stored without its state: the page shows a placeholder
WIDGET_PLACEHOLDERS = ("Loading widget", "VBox(", "HBox(", "Output()", "Error displaying widget")
# repositories that do not exist: a launch button must never lead there
PLACEHOLDER_REPOS = ("spiking-course/spiking-transformers-from-scratch", "example.com",
                     "example.edu", "example.org", "OWNER/REPO", "<repository")
LAUNCH_HOSTS = ("mybinder.org", "colab.research.google.com", "github.com", "/hub/user-redirect")

# Runs in the page; returns [kind, detail, css selector of the culprit or ""] for every defect.
PROBE = r"""
const out = [];
const sel = (e) => {  // a selector good enough to find the element again for a screenshot
  if (e.id) return '#' + CSS.escape(e.id);
  const all = Array.from(document.querySelectorAll(e.tagName));
  return e.tagName.toLowerCase() + ':nth-of-type-global(' + all.indexOf(e) + ')';
};
const text = (e) => (e.getAttribute('data-mjx-error') || e.textContent || '').trim().slice(0, 90);
document.querySelectorAll('mjx-merror').forEach(e =>
  out.push(['mathjax-error', text(e), sel(e)]));
document.querySelectorAll('mjx-container[display="true"]').forEach(m => {
  const box = m.closest('div.math') || m.parentElement;
  const r = m.getBoundingClientRect(), b = box.getBoundingClientRect();
  const items = window.MathJax && MathJax.startup.document.getMathItemsWithin
    ? MathJax.startup.document.getMathItemsWithin(m) : [];
  const label = items.length ? items[0].math.replace(/\s+/g, ' ').slice(0, 70) : '';
  if (r.width === 0) return;  // hidden (e.g. inside a collapsed solution)
  if (r.left < b.left - 1)
    out.push(['equation-cut-left', `${label.trim()} starts ${Math.round(b.left - r.left)} px left of its box`, sel(m)]);
  const scrolls = (e) => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
  if (r.right > b.right + 1 && !scrolls(box) && !scrolls(m))
    out.push(['equation-cut-right', `${label.trim()} ends ${Math.round(r.right - b.right)} px right of its box`, sel(m)]);
});
const article = document.querySelector('article.bd-article') || document.body;
const column = article.getBoundingClientRect().width;
document.querySelectorAll('article table').forEach(t => {
  const w = t.getBoundingClientRect().width;
  if (w > column + 1)
    out.push(['table-too-wide', `${Math.round(w)} px in a ${Math.round(column)} px column`, sel(t)]);
});
document.querySelectorAll('img').forEach(i => {
  if (i.getAttribute('src') && (!i.complete || i.naturalWidth === 0))
    out.push(['broken-image', i.getAttribute('src'), sel(i)]);
});
document.querySelectorAll('.cell_output, .output').forEach(o => {
  for (const p of arguments[0]) if (o.innerText.includes(p))
    out.push(['widget-placeholder', `output shows "${p}"`, sel(o)]);
});
document.querySelectorAll('.cell.tag_hide-cell').forEach(c => {  // exercise solutions
  const title = c.querySelector('.admonition-title');
  if (title && !/solution/i.test(title.innerText))
    out.push(['solution-toggle-label', `"${title.innerText.trim()}" instead of "Show solution"`, sel(c)]);
});
document.querySelectorAll('a[href]').forEach(a => {
  const h = a.href;
  if (!arguments[1].some(host => h.includes(host))) return;
  for (const p of arguments[2]) if (h.includes(p)) out.push(['placeholder-link', h, sel(a)]);
  if (arguments[3] === '' && a.closest('.dropdown-launch-buttons, .header-article-items'))
    out.push(['launch-link-without-repository', h, sel(a)]);
});
if (window.innerWidth > arguments[4] + 1 || document.documentElement.scrollWidth > window.innerWidth + 1)
  out.push(['page-wider-than-screen', `${document.documentElement.scrollWidth} px on a ${arguments[4]} px screen`, '']);
return out;
"""
WAIT_FOR_MATHJAX = r"""
const done = arguments[arguments.length - 1];
const ready = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise.then(() => done(true), () => done(false)) : done(true);
if (document.readyState === 'complete') ready(); else window.addEventListener('load', ready);
"""


def chromium_paths():
    """(chromium, chromedriver) from Debian, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def need_chromium():
    """Skip the calling test, naming the Debian packages, when there is no headless Chromium."""
    import pytest

    if not chromium_paths():
        pytest.skip(f"headless Chromium not found: install the Debian packages {CHROMIUM_PACKAGES} "
                    f"(apt-get install -y {CHROMIUM_PACKAGES}; scripts/setup.sh does it as root)")
    pytest.importorskip("selenium", reason="selenium is pinned in requirements.txt: make setup")


def make_driver(width, height=900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={max(width, 800)},{height}",
                "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    # a window cannot be narrower than 500 px: emulate the phone's screen instead
    opts.add_experimental_option("mobileEmulation", {
        "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0, "touch": width < 800}})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    return drv


@contextlib.contextmanager
def serve(folder=HTML):
    """Serve a folder on 127.0.0.1 (a published book is served over HTTP, not file://)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the browser closing a connection early is not a defect of the book


def repository_url():
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    return (cfg.get("repository") or {}).get("url") or ""


def check_page(driver, url, width, repo_url=None):
    """Load url and return a list of (kind, detail, selector) for every visible defect."""
    repo_url = repository_url() if repo_url is None else repo_url
    driver.get_log("browser")  # drop messages of the previous page
    driver.get(url)
    driver.execute_async_script(WAIT_FOR_MATHJAX)
    problems = [tuple(p) for p in driver.execute_script(
        PROBE, list(WIDGET_PLACEHOLDERS), list(LAUNCH_HOSTS), list(PLACEHOLDER_REPOS), repo_url,
        width)]
    for entry in driver.get_log("browser"):
        if entry["level"] == "SEVERE":
            problems.append(("console-error", entry["message"][:200], ""))
    return problems


def find(driver, selector):
    """The element behind a PROBE selector."""
    from selenium.webdriver.common.by import By

    if ":nth-of-type-global(" in selector:
        tag, n = selector.split(":nth-of-type-global(")
        return driver.find_elements(By.TAG_NAME, tag)[int(n.rstrip(")"))]
    return driver.find_element(By.CSS_SELECTOR, selector)


def pages(folder=HTML):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts)


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages", nargs="*")
    ap.add_argument("--shots", type=Path, help="save screenshots into this folder")
    ap.add_argument("--widths", default="desktop,phone")
    ap.add_argument("--html", type=Path, default=HTML, help="the built book (default: _build/html)")
    args = ap.parse_args(argv)
    if not chromium_paths():
        raise SystemExit(f"needs Chromium: apt-get install {CHROMIUM_PACKAGES}")
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    total = 0
    with serve(args.html) as base:
        for name in args.widths.split(","):
            driver = make_driver(WIDTHS[name])
            try:
                for page in args.pages or pages(args.html):
                    problems = check_page(driver, f"{base}/{page}", WIDTHS[name])
                    total += len(problems)
                    for kind, detail, _ in problems:
                        print(f"{name:7s} {page}: {kind}: {detail}")
                    if args.shots:
                        stem = page.replace("/", "_").removesuffix(".html")
                        driver.save_screenshot(str(args.shots / f"{stem}_{name}.png"))
                        for i, (kind, _, selector) in enumerate(problems[:6]):
                            if selector:
                                el = find(driver, selector)
                                driver.execute_script("arguments[0].scrollIntoView({block:'center'})", el)
                                driver.save_screenshot(str(args.shots / f"{stem}_{name}_{i}_{kind}.png"))
            finally:
                driver.quit()
    print(f"{total} problems")
    return 1 if total else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
