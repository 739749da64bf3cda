"""The computational graph of a model: its module tree with parameters, shapes and spike rates.

`module_graph(model, idx)` runs one forward pass, records every module's input and output shape
and every LIF's firing rate, and returns a nested dict; `format_tree` prints it indented and
`draw_graph` draws it with matplotlib. `python -m spike_lib graph --config small` does all three.
Taught in: notebooks/05_spikellm_forward.ipynb
"""

import numpy as np


def _shape(x):
    return list(np.shape(x)) if x is not None else None


def module_graph(model, idx=None) -> dict:
    """A nested dict {name, path, type, params, own_params, in_shape, out_shape, spike_rate,
    children} for model and every sub-module. With idx, one forward pass fills the shapes
    (first input -> output) and the spike rates (spikes per neuron per timestep)."""
    seen = {}
    if idx is not None:
        wrapped = []
        for path, mod in model.named_modules():
            def record(*args, _forward=mod.forward, _path=path, **kwargs):
                out = _forward(*args, **kwargs)
                seen[_path] = (_shape(args[0]) if args else None, _shape(out))
                return out
            mod.forward = record  # an instance attribute shadows the class method
            wrapped.append(mod)
        try:
            model(idx)
        finally:
            for mod in wrapped:
                del mod.forward

    def node(name, path, mod):
        children = [node(k, f"{path}.{k}" if path else k, m) for k, m in mod.modules.items()]
        own = int(sum(p.size for p in mod.params.values()))
        spk = getattr(mod, "last_spk", None)
        in_shape, out_shape = seen.get(path, (None, None))
        return {"name": name, "path": path, "type": type(mod).__name__, "own_params": own,
                "params": own + sum(c["params"] for c in children), "in_shape": in_shape,
                "out_shape": out_shape,
                "spike_rate": None if spk is None or idx is None else float(spk.mean()),
                "children": children}

    return node(type(model).__name__, "", model)


def walk(node, depth=0):
    """Yield (depth, node) in depth-first order."""
    yield depth, node
    for child in node["children"]:
        yield from walk(child, depth + 1)


def format_tree(node, max_depth=None) -> str:
    """The tree as indented text: name, type, parameters, in -> out shape, spike rate."""
    lines = []
    for depth, n in walk(node):
        if max_depth is not None and depth > max_depth:
            continue
        label = "  " * depth + n["name"]
        shapes = ""
        if n["out_shape"] is not None:
            shapes = f"{tuple(n['in_shape'] or ())} -> {tuple(n['out_shape'])}"
        rate = "" if n["spike_rate"] is None else f"rate {n['spike_rate']:.3f}"
        lines.append(f"{label:<28}{n['type']:<18}{n['params']:>12,}  {shapes:<42} {rate}".rstrip())
    return "\n".join(lines)


def draw_graph(node, max_depth=3, ax=None):
    """Draw the tree as indented boxes joined by elbow lines; spiking layers are coloured by
    their firing rate. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    rows = [(d, n) for d, n in walk(node) if d <= max_depth]
    if ax is None:
        # 9.5 pt at 100 dpi: about 12 px text in the book's column (7 pt at 80 dpi read as 6 px)
        _, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 0.7), dpi=100)
    cmap = plt.get_cmap("YlOrRd")  # light colours keep the black labels readable
    ypos, parents = {}, {}
    for i, (depth, n) in enumerate(rows):
        y = -i
        ypos[id(n)] = (depth, y)
        for c in n["children"]:
            parents[id(c)] = n
        rate = n["spike_rate"]
        color = "white" if rate is None else cmap(0.1 + 0.6 * rate)
        text = f"{n['name']}  {n['type']}  {n['params']:,}"
        if n["out_shape"] is not None:
            text += f"  -> {tuple(n['out_shape'])}"
        if rate is not None:
            text += f"  rate {rate:.2f}"
        ax.text(depth, y, text, va="center", ha="left", fontsize=9.5,
                bbox={"boxstyle": "round,pad=0.2", "fc": color, "ec": "0.4"})
        parent = parents.get(id(n))
        if parent is not None and id(parent) in ypos:
            pd, py = ypos[id(parent)]
            ax.plot([pd + 0.1, pd + 0.1, depth], [py - 0.3, y, y], color="0.6", lw=0.6)
    ax.set_xlim(-0.2, max_depth + 6)
    ax.set_ylim(-len(rows), 1)
    ax.axis("off")
    ax.set_title(f"{node['name']}: {node['params']:,} parameters (colour: spikes per neuron "
                 "per step)", fontsize=11)
    return ax.figure


def add_arguments(parser) -> None:
    parser.add_argument("--config", default="tiny", choices=["tiny", "small", "book"],
                        help="the Config preset")
    parser.add_argument("--tokens", type=int, default=None, help="tokens L (default block_size)")
    parser.add_argument("--depth", type=int, default=None, help="print only this many levels")
    parser.add_argument("--out", default=None, help="also draw the tree into this PNG file")
    parser.add_argument("--twin", action="store_true", help="the non-spiking twin")


def run(args) -> dict:
    from spike_lib.core.config import Config
    from spike_lib.numpy_impl.model import SpikeLLM

    if args.out:
        from spike_lib.train.runfolder import check_out_file

        check_out_file(args.out)  # before any work: a clear error for a folder or no permission
    cfg = getattr(Config, args.config)(spiking=not args.twin)
    n_tok = cfg.block_size if args.tokens is None else args.tokens
    if not 1 <= n_tok <= cfg.block_size:
        raise ValueError(f"--tokens {n_tok} is invalid: allowed range is [1, {cfg.block_size}]")
    model = SpikeLLM(cfg)
    idx = np.random.default_rng(cfg.seed).integers(0, cfg.vocab_size, (1, n_tok))
    tree = module_graph(model, idx)
    if not args.json:
        print(format_tree(tree, args.depth))
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        from spike_lib.core.atomic import atomic_path

        fig = draw_graph(tree, 3 if args.depth is None else args.depth)
        with atomic_path(args.out) as tmp:
            fig.savefig(tmp, bbox_inches="tight", format="png")
    return {"config": args.config, "params": tree["params"],
            "modules": sum(1 for _ in walk(tree)), "out": args.out}
