"""An expandable explorer of a model's module tree: shapes, parameter counts and firing rates.

spike_lib.ui.graph.module_graph runs one forward pass and records every module. Here each module
becomes a collapsible row (HTML <details>), so the tree opens level by level: in a live notebook
inside an ipywidgets view with a depth slider and a filter box, and in the published book as
plain HTML that still expands without a kernel. A container's firing rate is the rate of all
the neurons inside it:
    rate(module) = sum_i spikes_i / sum_i n_i      over the neurons i below it,
with n_i = the number of neuron-timesteps of neuron layer i (the size of its output).
Taught in: notebooks/10_toolkit.ipynb
"""

import html

import numpy as np

from spike_lib.core.config import check_range
from spike_lib.ui.graph import module_graph, walk

RATE_COLOURS = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a")  # YlOrRd


def annotate(tree) -> dict:
    """A copy of a module_graph tree with "rate" (see the module docstring) and "neuron_steps"
    on every node; both are None / 0 where no neuron fired in the forward pass."""

    def visit(node):
        children = [visit(c) for c in node["children"]]
        spikes = sum(c["_spikes"] for c in children)
        steps = sum(c["neuron_steps"] for c in children)
        if node["spike_rate"] is not None and node["out_shape"] is not None:
            n = int(np.prod(node["out_shape"]))
            spikes, steps = spikes + node["spike_rate"] * n, steps + n
        return {**node, "children": children, "_spikes": spikes, "neuron_steps": steps,
                "rate": spikes / steps if steps else None}

    def strip(node):
        node.pop("_spikes")
        for c in node["children"]:
            strip(c)
        return node

    return strip(visit(tree))


def label(node) -> str:
    """One row: name, type, parameters, in -> out shape, firing rate."""
    parts = [f"<b>{html.escape(node['name'])}</b>", html.escape(node["type"]),
             f"{node['params']:,} params"]
    if node["out_shape"] is not None:
        parts.append(f"{tuple(node['in_shape'] or ())} &rarr; {tuple(node['out_shape'])}")
    if node.get("rate") is not None:
        colour = RATE_COLOURS[min(int(node["rate"] * 2 * len(RATE_COLOURS)),
                                  len(RATE_COLOURS) - 1)]
        parts.append(f"<span style='background:{colour};padding:0 4px'>rate "
                     f"{node['rate']:.3f}</span>")
    return " &middot; ".join(parts)


def _matches(node, text):
    return text in node["path"].lower() or text in node["type"].lower()


def tree_html(tree, open_depth=1, match=None) -> str:
    """Nested <details> rows; the first open_depth levels start open.

    match: show only modules whose path or type contains this text (case-insensitive), with
    their ancestors, opened down to them.
    """
    check_range("open_depth", open_depth, 0, kind=int)
    text = match.lower().strip() if match else ""
    keep = None
    if text:
        keep = {id(n) for _, n in walk(tree) if any(_matches(d, text) for _, d in walk(n))}
        if id(tree) not in keep:
            return f"<i>no module matches {html.escape(match)!r}</i>"

    def row(node, depth):
        kids = [c for c in node["children"] if keep is None or id(c) in keep]
        if not kids:
            return f"<div style='margin-left:1.2em'>{label(node)}</div>"
        opened = " open" if depth < open_depth or keep is not None else ""
        inner = "".join(row(c, depth + 1) for c in kids)
        return (f"<details{opened} style='margin-left:0.6em'><summary>{label(node)}"
                f"</summary>{inner}</details>")

    return f"<div style='font-family:monospace;font-size:12px'>{row(tree, 0)}</div>"


def rate_table(tree, max_depth=2) -> str:
    """Plain text: the rate of every module down to max_depth that holds neurons."""
    lines = []
    for depth, n in walk(tree):
        if depth <= max_depth and n.get("rate") is not None:
            lines.append(f"{'  ' * depth + (n['name'] or '.'):<30}{n['type']:<16}"
                         f"{n['params']:>12,}  rate {n['rate']:.3f}")
    return "\n".join(lines)


class GraphExplorer:
    """The module tree of a NumPy model after one forward pass over idx, as an expandable view.

    explorer.tree is the annotated module_graph dict; .html() the static rendering;
    .widget() adds a slider for how many levels start open and a filter box.
    """

    def __init__(self, model, idx):
        if not hasattr(model, "modules") or not isinstance(model.modules, dict):
            raise TypeError(f"{type(model).__name__} is not a NumPy spike_lib model: the explorer "
                            "reads spike_lib.numpy_impl models (an MLX model: "
                            "spike_lib.train.checkpoint.to_numpy(model))")
        self.tree = annotate(module_graph(model, idx))

    def html(self, open_depth=1, match=None) -> str:
        return tree_html(self.tree, open_depth, match)

    def widget(self, open_depth=1):
        import ipywidgets as w

        depth = w.IntSlider(value=open_depth, min=0, max=6, description="open levels")
        find = w.Text(placeholder="filter: sn_hidden, SDSA, blocks.2 ...", description="filter")
        view = w.HTML(self.html(open_depth))

        def redraw(_=None):
            view.value = self.html(depth.value, find.value)

        depth.observe(redraw, names="value")
        find.observe(redraw, names="value")
        self.controls = {"depth": depth, "filter": find, "view": view}
        from spike_lib.ui.static import with_static

        # one output: the live widget in Jupyter, the static tree (click to open) in the book
        return with_static(w.VBox([w.HBox([depth, find]), view]), html=self.html(open_depth))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())
