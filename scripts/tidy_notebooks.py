r"""Tidy the chapter notebooks' metadata and tags so JupyterLab and the book show them cleanly.

Usage: .venv/bin/python scripts/tidy_notebooks.py [notebooks/NN_x.ipynb ...]   (default: all)
       .venv/bin/python scripts/tidy_notebooks.py --check     (exit 1 if a notebook would change)

Idempotent: a second run changes nothing. It never executes a notebook and never touches
outputs. What it does:

1. Stores the kernelspec and language_info exactly as JupyterLab's autosave writes them for the
   course kernel (the environment's `python3`, "Python 3 (ipykernel)"), so opening a chapter in
   Lab does not mark it modified and `git pull` does not conflict.
2. Turns the comment line `# NBVAL_CHECK_OUTPUT` into the cell tag `nbval-check-output` (nbval
   reads both), so the learner reads no test markers. `# NBVAL_IGNORE_OUTPUT` lines are removed:
   the course runs nbval with --nbval-lax, where ignoring a cell's output is the default (a tag
   would only cost lines in chapters that sit near the 1000-line limit).
3. Solution cells (tag `hide-cell`): start with the comment `# Solution to exercise N`, so a
   collapsed cell in Lab shows that line instead of the answer. The book labels their toggles
   "Show solution" / "Hide solution" (nb_code_prompt_show/hide in _config.yml).
4. An "## Exercises" list followed by its solution cells in one block (chapter 4) is split so
   each exercise is followed by its own solution.
5. Display equations use one numbering convention, `\tag{N.M}` (a trailing `\qquad (N.M)` is
   turned into it), and the row break `\\` inside `cases` of a tagged equation becomes `\cr`:
   Sphinx wraps maths holding a row break in a split environment, where MathJax refuses `\tag`.
"""

import platform
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {  # what ipykernel's kernel_info reply holds; Lab copies it into the notebook
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "version": platform.python_version(),
}
MARKERS = {"NBVAL_CHECK_OUTPUT": "nbval-check-output", "NBVAL_IGNORE_OUTPUT": None}
MARKER_LINE = re.compile(r"^\s*#\s*(NBVAL_CHECK_OUTPUT|NBVAL_IGNORE_OUTPUT)\s*$")
SOLUTION_TAG = "hide-cell"
SOLUTION_COMMENT = re.compile(r"^# Solution to exercise \d+\n?")
LIST_ITEM = re.compile(r"^(\d+)\. (.*)$")
EXERCISE_INTRO = ("Each exercise has a check in `spike_lib.exercises.ch{nn}`: write your answer in a "
                  "new cell and call the check; it prints \"correct\" or raises an `AssertionError` "
                  "with a hint. The hidden cells hold a solution.")


DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
QQUAD_NUMBER = re.compile(r"\\qquad\s*\((\d+\.\d+)\)(\s*)$")
CASES = re.compile(r"\\begin\{cases\}.*?\\end\{cases\}", re.DOTALL)


def tidy_equation(match):
    body = QQUAD_NUMBER.sub(r"\\tag{\1}\2", match.group(1))
    if "\\tag" in body:
        body = CASES.sub(lambda m: m.group(0).replace("\\\\", "\\cr"), body)
    return f"$${body}$$"


def exercise_number(above, default):
    """The number of the exercise a solution answers: the last '**N.' of the cell above it (a
    chapter split in two parts may go on counting), else its position in the notebook."""
    found = re.findall(r"\*\*(\d+)\.", above.source) if above and above.cell_type == "markdown" else []
    return int(found[-1]) if found else default


def is_solution(cell):
    return cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", [])


def add_tag(cell, tag):
    tags = list(cell.metadata.get("tags", []))
    if tag not in tags:
        tags.append(tag)
    cell.metadata["tags"] = tags


def move_markers_to_tags(cell):
    lines = cell.source.split("\n")
    kept = []
    for line in lines:
        m = MARKER_LINE.match(line)
        if m:
            if MARKERS[m.group(1)]:
                add_tag(cell, MARKERS[m.group(1)])
        else:
            kept.append(line)
    cell.source = "\n".join(kept)


def split_exercise_list(nb, chapter):
    """A markdown cell ending in '## Exercises' + a numbered list, followed by one solution cell
    per item: give every item its own markdown cell, directly above its solution."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown" or "## Exercises" not in cell.source:
            continue
        head, _, tail = cell.source.partition("## Exercises")
        lines = tail.strip("\n").split("\n")
        items = [m for m in map(LIST_ITEM.match, lines) if m]
        if not items or len(items) != len([ln for ln in lines if ln.strip()]):
            return False  # not a plain numbered list (already split, or prose): leave it alone
        sols = nb.cells[i + 1 : i + 1 + len(items)]
        if len(sols) != len(items) or not all(map(is_solution, sols)):
            return False
        cell.source = f"{head}## Exercises\n\n{EXERCISE_INTRO.format(nn=f'{chapter:02d}')}"
        new = []
        for m, sol in zip(items, sols):
            title = re.match(r"\*\*(.+?)\*\*\s*(.*)", m.group(2))
            text = (f"**{m.group(1)}. {title.group(1)}** {title.group(2)}" if title
                    else f"**{m.group(1)}.** {m.group(2)}")
            new += [nbformat.v4.new_markdown_cell(text), sol]
        nb.cells[i + 1 : i + 1 + len(items)] = new
        return True
    return False


def tidy(nb, chapter):
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = dict(LANGUAGE_INFO)
    split_exercise_list(nb, chapter)
    n_solution = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = DISPLAY_MATH.sub(tidy_equation, cell.source)
        if cell.cell_type != "code":
            continue
        move_markers_to_tags(cell)
        if is_solution(cell):
            n_solution = exercise_number(nb.cells[i - 1] if i else None, n_solution + 1)
            body = SOLUTION_COMMENT.sub("", cell.source, count=1)
            cell.source = f"# Solution to exercise {n_solution}\n{body}"
    return nb


def main(argv):
    check = "--check" in argv
    paths = [Path(a) for a in argv if a != "--check"] or sorted(
        p for p in (ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb")  # 08, 08a, 08b
        if not p.name.endswith(".tmp.ipynb"))
    changed = []
    for path in paths:
        before = path.read_text(encoding="utf-8")
        nb = tidy(nbformat.reads(before, as_version=4), int(path.name[:2]))
        after = nbformat.writes(nb) + "\n"  # nbformat.write (and Jupyter's save) end with a newline
        if after != before:
            changed.append(str(path))
            if not check:
                tmp = path.with_suffix(".tmp.ipynb")
                tmp.write_text(after, encoding="utf-8")
                tmp.replace(path)
    verb = "would change" if check else "changed"
    print(f"{verb} {len(changed)} of {len(paths)} notebooks" + "".join(f"\n  {c}" for c in changed))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
