"""One-way layers: every spike_lib import goes down a layer (or stays in its own), never across
between the two backends. Read from the source with `ast`, module-level and function-level
imports alike, relative imports resolved.

    1 core  <-  2 data, tokenizers  <-  3 numpy_impl | mlx_impl  <-  4 train  <-  5 ui  <-  6 cli
Exercises may import anything. Taught in: book/how_to_use.md (The library)
"""

import ast
import textwrap
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "spike_lib"
LAYERS = {"": 1, "core": 1, "data": 2, "tokenizers": 2, "numpy_impl": 3, "mlx_impl": 3,
          "train": 4, "ui": 5, "cli": 6, "__main__": 6, "exercises": 7}
BACKENDS = {"numpy_impl", "mlx_impl"}


def module_name(path, root):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module):
    """The top-level part of spike_lib a module belongs to ("" for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path, root):
    """(line, imported module) for every import of the package in one file, any depth."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = root.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y, from .. import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` imports that module
                sub = f"{base}.{alias.name}".replace(".", "/")
                is_module = (root.parent / f"{sub}.py").exists() or (root.parent / sub).is_dir()
                found.append((node.lineno, f"{base}.{alias.name}" if is_module else base))
    ours = [(line, mod) for line, mod in found if mod == top or mod.startswith(top + ".")]
    return sorted(set(ours))


def layer_violations(root=PKG):
    """'file:line: a imports b: rule' for every import that goes up a layer or across backends."""
    bad = []
    for path in sorted(root.rglob("*.py")):
        src = part_of(module_name(path, root))
        if src not in LAYERS:
            bad.append(f"{path.relative_to(root.parent)}:1: {src!r} is in no layer: add it to "
                       "LAYERS in tests/test_layers.py and to book/how_to_use.md")
            continue
        for line, target in imports_of(path, root):
            dst = part_of(target)
            where = f"{path.relative_to(root.parent)}:{line}: imports {target}"
            if dst not in LAYERS:
                bad.append(f"{where}: {dst!r} is in no layer")
            elif src in BACKENDS and dst in BACKENDS and src != dst:
                bad.append(f"{where}: a backend never imports the other backend (share it via "
                           "core)")
            elif LAYERS[dst] > LAYERS[src]:
                bad.append(f"{where}: layer {LAYERS[src]} ({src or 'spike_lib'}) must not import "
                           f"layer {LAYERS[dst]} ({dst}); move the shared code down or pass it in")
    return bad


def write_tree(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_a_planted_upward_or_sideways_import_is_reported_with_file_line_and_rule(tmp_path):
    root = tmp_path / "spike_lib"
    write_tree(root, {
        "__init__.py": "",
        "core/__init__.py": "", "train/__init__.py": "", "cli/__init__.py": "",
        "numpy_impl/__init__.py": "", "mlx_impl/__init__.py": "", "ui/__init__.py": "",
        "core/config.py": """\
            import os

            def check():
                from spike_lib.train import registry  # lazy, still upward
                return registry
            """,
        "train/registry.py": "from ..core import config\n",  # down: fine
        "train/runs.py": "from . import registry\nfrom spike_lib.cli import main\n",
        "mlx_impl/model.py": "x = 1\n\n\nfrom spike_lib.numpy_impl.model import SpikeLLM\n",
        "numpy_impl/model.py": "from spike_lib.core.config import check\n",
        "ui/plot.py": "import spike_lib.train.runs\n",  # down: fine
        "cli/__init__.py": "def main():\n    from spike_lib.ui import plot\n",  # down: fine
        "odd/thing.py": "",
    })
    bad = layer_violations(root)
    assert bad == [
        "spike_lib/core/config.py:4: imports spike_lib.train.registry: layer 1 (core) must not "
        "import layer 4 (train); move the shared code down or pass it in",
        "spike_lib/mlx_impl/model.py:4: imports spike_lib.numpy_impl.model: a backend never "
        "imports the other backend (share it via core)",
        "spike_lib/odd/thing.py:1: 'odd' is in no layer: add it to LAYERS in tests/test_layers.py "
        "and to book/how_to_use.md",
        "spike_lib/train/runs.py:2: imports spike_lib.cli: layer 4 (train) must not import "
        "layer 6 (cli); move the shared code down or pass it in",
    ]


def test_relative_imports_resolve_to_their_module(tmp_path):
    root = tmp_path / "spike_lib"
    write_tree(root, {"__init__.py": "", "core/__init__.py": "from . import sub\n",
                      "core/sub.py": "from .. import data\nfrom ..data.x import y\n",
                      "data/__init__.py": "", "data/x.py": ""})
    assert imports_of(root / "core/__init__.py", root) == [(1, "spike_lib.core.sub")]
    assert imports_of(root / "core/sub.py", root) == [(1, "spike_lib.data"), (2, "spike_lib.data.x")]
    assert len(layer_violations(root)) == 2  # core -> data twice


def test_spike_lib_imports_only_downwards():
    bad = layer_violations()
    assert not bad, "imports that break the layers:\n" + "\n".join(bad)
