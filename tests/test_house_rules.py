"""The course's house rules, checked on every run: sizes, structure, stored outputs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import tidy_notebooks as tidy

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb")  # 08, 08a, 08b
                   if not p.name.endswith(".tmp.ipynb"))
REQUIRED_HEADINGS = ("In this chapter you will", "What you built", "Exercises")


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        names = [n for n in out.stdout.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        skip = {".venv", "_build", ".git", "__pycache__", ".pytest_cache", ".hypothesis"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def load_nb(path):
    return json.loads(path.read_text(encoding="utf-8"))


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [ch["file"] for ch in part["chapters"]]
    return files


def test_every_tracked_file_is_under_1000_lines():
    """Code, pages and notebooks; data/ is governed by its size limit and manifest instead."""
    long = {}
    for path in tracked_files():
        if path.relative_to(ROOT).parts[0] == "data":
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:  # binary (images): no lines to count
            continue
        if (n := data.count(b"\n")) >= 1000:
            long[str(path.relative_to(ROOT))] = n
    assert not long, f"files at or over 1000 lines, split them by concept: {long}"


def test_data_is_under_100_mb():
    total = sum(p.stat().st_size for p in (ROOT / "data").rglob("*") if p.is_file())
    assert total < 100 * 2**20, f"data/ holds {total / 2**20:.1f} MB; the limit is 100 MB"


def test_toc_lists_every_notebook_and_every_entry_exists():
    files = toc_files()
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in files, f"{nb.name} is missing from _toc.yml"
    for f in files:
        candidates = [ROOT / f"{f}{ext}" for ext in (".md", ".ipynb", "")]
        assert any(c.is_file() for c in candidates), f"_toc.yml lists {f}, which does not exist"


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_structure(path):
    nb = load_nb(path)
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    first = "".join(nb["cells"][0]["source"])
    number = int(path.name[:2])
    assert re.match(rf"# {number}[a-z]?\. ", first), f"{path.name} must open with '# {number}. Title'"
    for heading in REQUIRED_HEADINGS:
        assert f"## {heading}" in md, f"{path.name} lacks a '## {heading}' section"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_has_stored_outputs_and_no_errors(path):
    code = [c for c in load_nb(path)["cells"] if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never run; run it in full mode"
    errors = [i for i, c in enumerate(code) for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{path.name}: code cells {errors} stored an error"
    figures = sum("image/png" in o.get("data", {}) for c in code for o in c["outputs"])
    assert figures >= 2, f"{path.name} stores {figures} figures; a chapter shows its results"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_hygiene(path):
    nb = load_nb(path)
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":  # one numbering convention, no \tag inside split
            assert tidy.DISPLAY_MATH.sub(tidy.tidy_equation, src) == src, (
                f"{path.name} cell {i}: number equations with \\tag{{N.M}}, rows of cases with "
                "\\cr (run scripts/tidy_notebooks.py)")
        if cell["cell_type"] != "code":
            continue
        assert "!pip" not in src and "%pip" not in src, f"{path.name} cell {i}: no installs"
        assert "sys.path" not in src, f"{path.name} cell {i}: spike_lib is installed, no sys.path"
        assert "sk-ant-" not in json.dumps(cell), f"{path.name} cell {i}: looks like an API key"
        assert "#@save" not in src, f"{path.name} cell {i}: no code generation into the library"
        assert "NBVAL_" not in src, (f"{path.name} cell {i}: use the cell tag nbval-check-output, "
                                     "not a comment (run scripts/tidy_notebooks.py)")
    # what JupyterLab's autosave writes for the course kernel: opening a chapter changes nothing
    assert nb["metadata"]["kernelspec"] == tidy.KERNELSPEC, f"{path.name}: run scripts/tidy_notebooks.py"
    info = dict(nb["metadata"]["language_info"], version=tidy.LANGUAGE_INFO["version"])
    assert info == tidy.LANGUAGE_INFO, f"{path.name}: run scripts/tidy_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_solutions_are_hidden_behind_a_comment_under_their_exercise(path):
    """A collapsed cell in Lab shows its first line: it must not be the answer."""
    cells = load_nb(path)["cells"]
    solutions = [i for i, c in enumerate(cells) if "hide-cell" in c["metadata"].get("tags", [])]
    if any("## Exercises" in "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"):
        assert solutions, f"{path.name} has exercises but no hidden solution cells"
    for i in solutions:
        numbers = re.findall(r"\*\*(\d+)\.", "".join(cells[i - 1]["source"]))
        n = numbers[-1] if numbers else "?"
        src = "".join(cells[i]["source"])
        assert src.startswith(f"# Solution to exercise {n}\n"), f"{path.name} cell {i}: {src[:40]!r}"
        assert cells[i]["metadata"].get("jupyter", {}).get("source_hidden"), f"{path.name} cell {i}"
        above = "".join(cells[i - 1]["source"])
        assert cells[i - 1]["cell_type"] == "markdown" and f"**{n}." in above, (
            f"{path.name}: solution {n} (cell {i}) does not sit under exercise {n}")


def test_tidy_notebooks_is_idempotent_and_keeps_outputs(tmp_path):
    src = NOTEBOOKS[0].read_text(encoding="utf-8")
    nb = tidy.nbformat.reads(src, as_version=4)
    nb.metadata["kernelspec"]["display_name"] = "Python 3"  # what the notebooks held before
    k = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells[k].source = "# NBVAL_CHECK_OUTPUT\n" + nb.cells[k].source
    once = tidy.tidy(nb, 1)
    first = tidy.nbformat.writes(once)
    assert tidy.nbformat.writes(tidy.tidy(once, 1)) == first
    assert once.metadata["kernelspec"] == tidy.KERNELSPEC
    assert "nbval-check-output" in once.cells[k].metadata["tags"]
    assert not once.cells[k].source.startswith("# NBVAL")
    orig = tidy.nbformat.reads(src, as_version=4)
    assert [c.get("outputs") for c in once.cells] == [c.get("outputs") for c in orig.cells]


NAME = r"[A-Z][a-zA-Z\u00C0-\u017F'\-]+"
AUTHORS = rf"(?:{NAME}, )*{NAME}(?: & {NAME}| et al\.)?"
YEAR = r"(?:18|19|20)\d\d"
CITATIONS = (re.compile(rf"({AUTHORS}),? \(({YEAR})"),  # Munroe (2010), Olsson et al. (2022,
             re.compile(rf"\(({AUTHORS}),? ({YEAR})"),  # (Kingma & Ba 2015), (Liang, 1983)
             re.compile(rf"({NAME} et al\.),? ({YEAR})"))  # Hu et al. 2022


def citations(text):
    """(names, year) of every author-year citation in a text."""
    return {(tuple(re.findall(NAME, m.group(1))), m.group(2)) for p in CITATIONS for m in p.finditer(text)}


def test_citation_finder_on_the_styles_the_chapters_use():
    text = ("Adam (Kingma & Ba 2015), Munroe (2010), (Liang, 1983), Olsson et al. (2022, "
            "title), Hu et al. 2022 and Gao, Wettig, He, Chen & Chen (2025); in 2019 nothing.")
    assert citations(text) == {(("Kingma", "Ba"), "2015"), (("Munroe",), "2010"), (("Liang",), "1983"),
                               (("Olsson",), "2022"), (("Hu",), "2022"),
                               (("Gao", "Wettig", "He", "Chen", "Chen"), "2025")}


def test_every_citation_resolves_to_an_entry_of_the_references_page():
    refs = (ROOT / "book" / "references.md").read_text(encoding="utf-8")
    entries = [" ".join(e.split()) for e in re.split(r"\n- ", refs)[1:]]
    pages = {nb.name: "\n".join("".join(c["source"]) for c in load_nb(nb)["cells"]
                                if c["cell_type"] == "markdown") for nb in NOTEBOOKS}
    pages |= {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "book").glob("*.md")
              if p.name not in ("references.md", "attribution.md")}
    missing = sorted(f"{page}: {' & '.join(names)} {year}"
                     for page, text in pages.items() for names, year in citations(text)
                     if not any(year in e and any(re.search(rf"\b{n}\b", e) for n in names)
                                for e in entries))
    assert not missing, f"cited but not in book/references.md: {missing}"
