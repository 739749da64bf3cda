"""Run chapter notebooks in FULL mode and store their outputs the way the book expects.

Usage: .venv/bin/python scripts/execute_notebook.py notebooks/01_lif_neurons.ipynb [...]
(or `make full NB=notebooks/01_lif_neurons.ipynb`). Quick mode is switched off, the kernel
starts in notebooks/, and afterwards per-cell timing metadata and widget state are dropped and
split stream outputs merged, so a chapter stays well under the 1000-line limit. Widget state is
not stored (a form's state alone costs hundreds of lines): each widget the chapters teach stores
a static rendering in its own output instead (spike_lib.ui.static), which the book shows.
The result is tidied as scripts/tidy_notebooks.py does (kernelspec, tags, solution comments).
"""

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tidy_notebooks  # a script beside this one


def clean(nb):
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        merged = []
        for out in cell.outputs:
            if (out.output_type == "stream" and merged and merged[-1].output_type == "stream"
                    and merged[-1].name == out.name):
                merged[-1].text += out.text
            else:
                merged.append(out)
        cell.outputs = merged
    return nb


def execute(path: Path, timeout=3600):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    tmp = path.with_suffix(".tmp.ipynb")
    nbformat.write(tidy_notebooks.tidy(clean(nb), int(path.name[:2])), tmp)
    os.replace(tmp, path)  # the old notebook survives a failed run
    lines = path.read_text(encoding="utf-8").count("\n")
    print(f"{path}: {lines} lines" + ("  (over the 1000-line limit!)" if lines >= 1000 else ""))


if __name__ == "__main__":
    os.environ.pop("SPIKE_QUICK", None)
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        execute(Path(arg).resolve())
