"""Every built page as a learner sees it, at 1280 px (desktop) and 390 px (phone).

Fails on what no Sphinx warning catches: MathJax errors, equations cut off on the left, tables
wider than the column, broken images, console errors, widget placeholders shown as output,
launch links to a repository that does not exist. The last test proves the checker fails.
"""

import os
import shutil

import pagecheck
import pytest

PAGES = pagecheck.pages() or ["index.html"]  # the book_url fixture skips when it is not built


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_no_defect(browser, book_url, page):
    name, driver = browser
    problems = pagecheck.check_page(driver, f"{book_url}/{page}", pagecheck.WIDTHS[name])
    assert not problems, f"{page} at {pagecheck.WIDTHS[name]} px:\n" + "\n".join(
        f"  {kind}: {detail}" for kind, detail, _ in problems)


BROKEN = r"""
<div class="math notranslate nohighlight">\[\begin{split} c = \begin{cases} 1 & a \\ 0 & b
\end{cases} \tag{9.1}\end{split}\]</div>
<style>div.math mjx-container[display="true"] { min-width: 1400px !important; }</style>
<div class="math notranslate nohighlight">\[ y = x_1 + x_2 + x_3 + x_4 \tag{9.2}\]</div>
<table style="table-layout: auto; width: auto"><tr><td style="white-space: nowrap">{wide}</td><td>licence</td></tr></table>
<img src="../_images/no-such-figure.png" alt="a figure that is not there">
<div class="cell_output"><pre>VBox(children=(IntSlider(value=1),))</pre></div>
<a class="dropdown-item" href="https://mybinder.org/v2/gh/spiking-course/spiking-transformers-from-scratch/main">Binder</a>
<div class="cell tag_hide-cell"><details class="admonition hide"><summary>
<p class="collapsed admonition-title">Show code cell content</p></summary></details></div>
<script>console.error("a script of the page failed");</script>
"""


def test_checker_fails_on_a_page_with_broken_equations_and_the_other_defects(browser, book_url,
                                                                              tmp_path):
    """A copy of a built page with one instance of each defect: every kind must be reported."""
    name, driver = browser
    (tmp_path / "book").mkdir()
    os.symlink(pagecheck.HTML / "_static", tmp_path / "_static")
    os.symlink(pagecheck.HTML / "_images", tmp_path / "_images")
    page = (pagecheck.HTML / "book" / "notation.html").read_text(encoding="utf-8")
    marker = '<section id="'  # the first section of the article
    assert marker in page
    broken = BROKEN.replace("{wide}", "x" * 400)
    (tmp_path / "book" / "broken.html").write_text(page.replace(marker, broken + marker, 1))
    with pagecheck.serve(tmp_path) as url:
        problems = pagecheck.check_page(driver, f"{url}/book/broken.html", pagecheck.WIDTHS[name])
    kinds = {kind for kind, _, _ in problems}
    expected = {"mathjax-error", "equation-cut-left", "table-too-wide", "broken-image",
                "widget-placeholder", "placeholder-link", "console-error", "solution-toggle-label"}
    assert expected <= kinds, f"not reported: {expected - kinds}; got {problems}"
    assert any("\\tag not allowed in split" in d for k, d, _ in problems if k == "mathjax-error")


def test_skip_message_names_the_debian_packages(monkeypatch):
    """Where Chromium cannot be installed, the skip says what to install."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="chromium chromium-driver"):
        pagecheck.need_chromium()
