"""Fixtures for the browser tests: Debian's headless Chromium driven by selenium.

They need the built book (`make book`) and the Debian packages chromium and chromium-driver,
which scripts/setup.sh installs when it runs as root; without them the tests are skipped with
a message naming the packages. `make test` runs them after the book build.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pagecheck


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts JupyterLab and runs a chapter (about a minute)")


@pytest.fixture(scope="session")
def book_url():
    if not (pagecheck.HTML / "index.html").is_file():
        pytest.skip("the book is not built: run `make book` first (make test builds it)")
    with pagecheck.serve() as url:
        yield url


@pytest.fixture(scope="session", params=sorted(pagecheck.WIDTHS), ids=str)
def browser(request):
    """(width name, driver): one headless Chromium per screen width for the whole session."""
    pagecheck.need_chromium()
    driver = pagecheck.make_driver(pagecheck.WIDTHS[request.param])
    yield request.param, driver
    driver.quit()
