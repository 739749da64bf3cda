"""Model design as a flowchart: a list of stages -> a validated Config (and back), and its drawing.

A design lists SpikeLLM's stages in order, each a dict with a "type" and its settings:
    [{"type": "embedding", "vocab_size": 2439, "block_size": 128, "n_embd": 256},
     {"type": "encoding", "num_steps": 2},
     {"type": "block", "attention": "sdsa", "n_head": 4, "d_ff": 1024, "repeat": 4},
     {"type": "readout", "tie_weights": False}]
Settings left out take Config()'s defaults. SpikeLLM repeats one block n_layer times, so every
block must share its settings; a design the model cannot express is refused with a ValueError
naming the stage, the setting and the fix.
Taught in: notebooks/10_toolkit.ipynb
"""

import dataclasses

from spike_lib.core.config import Config, check_range

STAGES = {
    "embedding": ("vocab_size", "block_size", "n_embd"),
    "encoding": ("num_steps",),
    "block": ("attention", "n_head", "d_ff", "neuron", "spiking", "beta", "threshold",
              "attn_threshold", "reset", "surrogate", "surrogate_scale", "detach_reset",
              "in_threshold", "qkv_threshold", "hidden_threshold", "mem_clamp", "dropout",
              "spike_levels"),
    "readout": ("tie_weights",),
}
ORDER = "embedding, encoding (optional), block (one or more), readout"
SHOWN = {"block": ("attention", "n_head", "d_ff", "neuron")}  # written even at their default
COLOURS = {"embedding": "#c6dbef", "encoding": "#dadaeb", "block": "#fdd0a2", "readout": "#c7e9c0"}


def _where(i, spec):
    return f"design[{i}] ({spec.get('type', '?')})"


def _stage_of(key):
    return next((s for s, keys in STAGES.items() if key in keys), None)


def check_stage(i, spec) -> dict:
    """One stage's settings, checked: a known type, known keys; returns them without type/repeat."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"design[{i}] = {spec!r} is invalid: each stage is a dict with a 'type', "
                         f"one of {list(STAGES)}")
    kind = spec["type"]
    if kind not in STAGES:
        raise ValueError(f"design[{i}]: type {kind!r} is not a SpikeLLM stage: choose one of "
                         f"{list(STAGES)}")
    settings = {k: v for k, v in spec.items() if k not in ("type", "repeat")}
    if "repeat" in spec:
        if kind != "block":
            raise ValueError(f"{_where(i, spec)}: only blocks repeat; remove 'repeat'")
        check_range(f"design[{i}] repeat", spec["repeat"], 1, kind=int)
    for key in settings:
        if key not in STAGES[kind]:
            home = _stage_of(key)
            hint = (f"{key} belongs to the {home} stage" if home else
                    f"Config has no field {key!r}" if key not in _fields() else
                    f"{key} is not part of the design (pass it to design_to_config)")
            raise ValueError(f"{_where(i, spec)}: {key!r} is not a {kind} setting ({hint}); "
                             f"{kind} settings are {list(STAGES[kind])}")
    return settings


def _fields():
    return {f.name for f in dataclasses.fields(Config)}


def design_to_config(design, **extra) -> Config:
    """The Config a design describes (extra: fields outside the design, e.g. seed=1).

    Raises ValueError for a design SpikeLLM cannot express: stages out of order, missing or
    repeated, unknown settings, or blocks that differ from one another.
    """
    if not isinstance(design, (list, tuple)) or not design:
        raise ValueError(f"a design is a non-empty list of stages in the order {ORDER}")
    kinds = [s.get("type") if isinstance(s, dict) else None for s in design]
    values, n_layer, first_block = {}, 0, None
    for i, spec in enumerate(design):
        settings = check_stage(i, spec)
        kind = spec["type"]
        expected = _expected(kinds, i)
        if not expected:
            raise ValueError(f"design[{i}] is a {kind!r} stage after the readout: the readout "
                             f"must be the last stage; the order is {ORDER}")
        if kind not in expected:
            raise ValueError(f"design[{i}] is a {kind!r} stage where {' or '.join(expected)} "
                             f"must come: the order is {ORDER}")
        if kind == "block":
            if first_block is None:
                first_block = (i, settings)
            else:
                _same_block(first_block, i, settings)
            n_layer += spec.get("repeat", 1)
        values.update(settings)
    if kinds[-1] != "readout":
        raise ValueError(f"the design ends with a {kinds[-1]!r} stage: add a readout "
                         f"({{'type': 'readout'}}); the order is {ORDER}")
    clash = set(extra) & set(values)
    if clash or set(extra) - _fields():
        raise ValueError(f"extra fields {sorted(clash or set(extra) - _fields())} are invalid: "
                         "give each field once, in the design or as an extra Config field")
    return Config(**{**values, "n_layer": n_layer, **extra})


def _expected(kinds, i) -> tuple:
    """The stage types allowed at position i given the ones before it."""
    if i == 0:
        return ("embedding",)
    prev = kinds[i - 1]
    return {"embedding": ("encoding", "block"), "encoding": ("block",),
            "block": ("block", "readout"), "readout": ()}.get(prev, ())


def _same_block(first, i, settings):
    j, ref = first
    for key in sorted(set(ref) | set(settings)):
        a, b = ref.get(key, "default"), settings.get(key, "default")
        if a != b:
            raise ValueError(f"design[{i}] (block): {key}={b!r} differs from design[{j}]'s "
                             f"{key}={a!r}: SpikeLLM repeats one block, so every block must "
                             "share its settings; make them equal")


def config_to_design(cfg) -> list:
    """The design of a Config: its four stages, blocks as one stage with repeat=n_layer.

    Settings equal to Config()'s defaults are left out (except the block's main ones), so
    design_to_config(config_to_design(cfg), seed=cfg.seed) == cfg.
    """
    default = Config()
    design = []
    for kind, keys in STAGES.items():
        spec = {"type": kind}
        for key in keys:
            value = getattr(cfg, key)
            if kind == "embedding" or key in SHOWN.get(kind, ()) or key == "num_steps" or \
                    value != getattr(default, key):
                spec[key] = value
        if kind == "block":
            spec["repeat"] = cfg.n_layer
        design.append(spec)
    return design


# per block: (vectors of width D, numbers per head) that an attention adds to the shared block
ATTENTION_PARAMS = {"sdsa": (0, 0), "softmax": (0, 0), "softmax_shift": (2, 0), "spike_matrix": (0, 0),
                    "spike_matrix_running": (0, 0), "spike_matrix_shift": (2, 0),
                    "spike_matrix_decay": (0, 1), "spike_matrix_decay_shift": (2, 1),
                    "hybrid": (0, 0), "hybrid_relu": (0, 0), "hybrid_shift": (2, 0),
                    "sdsa_mean": (1, 0), "sdsa_decay": (2, 0), "sdsa_shift": (3, 0),
                    "sdsa_decay_shift": (4, 0)}


def count_params(cfg) -> int:
    """Weights of SpikeLLM(cfg), by formula (Eq. 10.6 of chapter 10):

        V D + L D + n_layer (4 (D^2 + D) + 4 D + 2 D d_ff + d_ff + D + a D + b H) + 2 D + (D V unless tied)
    (embeddings; per block Q, K, V, O with biases, two LayerNorms, the MLP; LN_f; readout),
    plus what the attention adds per block (ATTENTION_PARAMS: a vectors of width D, b numbers per
    head H): the token shift's mu_k and mu_v (a = 2), a leak rate per head (b = 1, the
    spike_matrix_decay attentions of chapter 8e), the SDSA variants' per-channel gates and leaks.
    """
    if cfg.attention not in ATTENTION_PARAMS:
        raise ValueError(f"count_params knows the library's attentions (sdsa, softmax, "
                         f"spike_matrix_shift, ...), not the plug-in {cfg.attention!r}: build the "
                         "model and call num_params()")
    v, d, f = cfg.vocab_size, cfg.n_embd, cfg.d_ff
    a, b = ATTENTION_PARAMS[cfg.attention]
    block = 4 * (d * d + d) + 4 * d + 2 * d * f + f + d + a * d + b * cfg.n_head
    return v * d + cfg.block_size * d + cfg.n_layer * block + 2 * d + (0 if cfg.tie_weights
                                                                        else d * v)


def _box_text(spec, cfg) -> str:
    kind = spec["type"]
    if kind == "embedding":
        return f"token + position\nembedding\nV={cfg.vocab_size}, L={cfg.block_size}\nD={cfg.n_embd}"
    if kind == "encoding":
        return f"direct encoding\nrepeat over\nT={cfg.num_steps} steps"
    if kind == "readout":
        tied = "tied to E" if cfg.tie_weights else f"W_out {cfg.n_embd}x{cfg.vocab_size}"
        return f"mean over T\nLayerNorm\nreadout\n{tied}"
    n = spec.get("repeat", 1)
    neuron = "GELU" if not cfg.spiking else cfg.neuron.upper()
    return (f"block x{n}\nLN, {neuron}, {cfg.attention.upper()}\n{cfg.n_head} heads (+)\n"
            f"LN, {neuron}, MLP {cfg.d_ff} (+)")  # (+): the residual add


def draw_flowchart(design, ax=None):
    """Draw the design left to right: one box per stage, arrows labelled with the shapes.

    Validates the design first (design_to_config). Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    cfg = design_to_config(design)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.6), dpi=80)
    shapes = {"embedding": "(B, L, D)", "encoding": "(T, B, L, D)", "block": "(T, B, L, D)",
              "readout": "(B, L, V)"}
    # every block is the same (design_to_config checked it): draw them as one box x n_layer
    stages = [s for s in design if s["type"] != "block"]
    stages.insert(1 + any(s["type"] == "encoding" for s in design),
                  {"type": "block", "repeat": cfg.n_layer})
    width, gap = 1.9, 0.45
    for i, spec in enumerate(stages):
        x = i * (width + gap)
        ax.add_patch(FancyBboxPatch((x, 0), width, 1.6, boxstyle="round,pad=0.05",
                                    fc=COLOURS[spec["type"]], ec="0.3"))
        ax.text(x + width / 2, 0.8, _box_text(spec, cfg), ha="center", va="center", fontsize=7)
        ax.text(x + width / 2, -0.25, shapes[spec["type"]], ha="center", va="top", fontsize=7,
                color="0.3")
        if i:
            ax.annotate("", xy=(x, 0.8), xytext=(x - gap, 0.8),
                        arrowprops={"arrowstyle": "->", "color": "0.2"})
    ax.set_xlim(-0.2, len(stages) * (width + gap) - gap + 0.2)
    ax.set_ylim(-0.7, 1.8)
    ax.axis("off")
    known = cfg.attention in ATTENTION_PARAMS
    size = f"{count_params(cfg):,} parameters" if known else "plug-in attention"
    ax.set_title(f"SpikeLLM design: n_layer={cfg.n_layer}, {size} (output shape under each "
                 "stage)", fontsize=9)
    return ax.figure


# -- the stage editor: a design edited stage by stage, drawn as readable HTML ------------------

def _stage_line(spec, cfg=None) -> str:
    """The settings of one stage as text (the Config's values when the design is valid)."""
    kind = spec.get("type", "?")
    if cfg is None:
        return ", ".join(f"{k}={v}" for k, v in spec.items() if k != "type") or "defaults"
    if kind == "embedding":
        return f"V={cfg.vocab_size}, L={cfg.block_size}, D={cfg.n_embd}"
    if kind == "encoding":
        return f"direct, T={cfg.num_steps} steps"
    if kind == "readout":
        return "mean over T, LayerNorm, " + ("tied to E" if cfg.tie_weights else
                                             f"W_out {cfg.n_embd} x {cfg.vocab_size}")
    neuron = cfg.neuron if cfg.spiking else "GELU"
    return (f"x{spec.get('repeat', 1)}: {cfg.attention}, {cfg.n_head} heads, {neuron}, "
            f"MLP {cfg.d_ff}")


def design_html(design) -> str:
    """The design as HTML boxes left to right, at the page's text size, with its validation:
    the Config's parameter count, or the error naming the stage and the fix."""
    import html as _html

    try:
        cfg, error = design_to_config(design), None
    except ValueError as err:
        cfg, error = None, str(err)
    shapes = {"embedding": "(B, L, D)", "encoding": "(T, B, L, D)", "block": "(T, B, L, D)",
              "readout": "(B, L, V)"}
    boxes = []
    for i, spec in enumerate(design):
        kind = spec.get("type", "?") if isinstance(spec, dict) else "?"
        line = _stage_line(spec, cfg) if isinstance(spec, dict) else repr(spec)
        boxes.append(
            f"<div style='border:1px solid #555;border-radius:6px;padding:4px 8px;"
            f"background:{COLOURS.get(kind, '#eee')};min-width:7em'><b>{i}. {_html.escape(kind)}</b>"
            f"<br>{_html.escape(line)}<br><span style='color:#444'>{shapes.get(kind, '')}</span></div>")
    row = "<span style='font-size:1.3em'>&rarr;</span>".join(boxes)
    if error is None:
        size = (f"{count_params(cfg):,} parameters" if cfg.attention in ATTENTION_PARAMS
                else "plug-in attention")
        status = f"<span style='color:#070'>&#10003; valid: n_layer={cfg.n_layer}, {size}</span>"
    else:
        status = f"<span style='color:#c00'>&#9888; {_html.escape(error)}</span>"
    return (f"<div style='display:flex;flex-wrap:wrap;align-items:center;gap:4px'>{row}</div>"
            f"<div>{status}</div>")


class StageEditor:
    """Edit a design stage by stage: add, remove and move stages, change their settings.

    The operations work without widgets (and the tests call them); widget() shows one row per
    stage, with ConfigForm's field widgets (spike_lib.ui.config_gui.field_widget) and buttons
    to move it up or down or remove it, an "add block" button, and the diagram (design_html),
    redrawn after every change. config() is the validated Config (design_to_config).
    """

    def __init__(self, design=None, cfg=None):
        if design is None:
            design = config_to_design(cfg if cfg is not None else Config.tiny())
        self.design = [dict(s) for s in design]
        self._box = None

    # -- operations --------------------------------------------------------------------------
    def _index(self, i):
        if not isinstance(i, int) or not -len(self.design) <= i < len(self.design):
            raise ValueError(f"stage {i!r} does not exist: the design has stages "
                             f"0..{len(self.design) - 1}")
        return i % len(self.design)

    def add_block(self, after=None):
        """Insert a block after stage `after` (default: the last block), a copy of the block
        before it without its repeat count (or a default block if there is none)."""
        blocks = [i for i, s in enumerate(self.design) if s.get("type") == "block"]
        after = (blocks[-1] if blocks else len(self.design) - 2) if after is None else self._index(after)
        source = next((self.design[i] for i in reversed(blocks) if i <= after), None)
        new = {k: v for k, v in (source or {"type": "block"}).items() if k != "repeat"}
        self.design.insert(after + 1, new)
        return self._changed()

    def remove(self, i):
        del self.design[self._index(i)]
        return self._changed()

    def move(self, i, delta):
        """Move stage i by delta places (-1: up, towards the embedding)."""
        i = self._index(i)
        j = min(max(i + delta, 0), len(self.design) - 1)
        self.design.insert(j, self.design.pop(i))
        return self._changed()

    def set(self, i, **settings):
        """Change settings of stage i (None removes a setting, which then takes the default)."""
        spec = self.design[self._index(i)]
        for key, value in settings.items():
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = value
        return self._changed()

    def config(self, **extra) -> Config:
        return design_to_config(self.design, **extra)

    def status(self) -> str:
        """'valid: ...' or the error message, as plain text."""
        try:
            cfg = self.config()
        except ValueError as err:
            return str(err)
        size = (f"{count_params(cfg):,} parameters" if cfg.attention in ATTENTION_PARAMS
                else "plug-in attention")
        return f"valid: n_layer={cfg.n_layer}, {size}"

    def html(self) -> str:
        return design_html(self.design)

    # -- widgets -----------------------------------------------------------------------------
    def _changed(self):
        if self._box is not None:
            self._box.children = self._rows()
        return self

    def _rows(self):
        import dataclasses as dc

        import ipywidgets as w

        from spike_lib.ui.config_gui import field_widget

        fields = {f.name: f for f in dc.fields(Config)}
        default = Config()
        rows = []
        for i, spec in enumerate(self.design):
            kind = spec.get("type", "?")
            wids = []
            for key in STAGES.get(kind, ()):
                if key not in spec and key not in SHOWN.get(kind, ()) and kind == "block":
                    continue  # a block shows its main settings and those that differ
                wid = field_widget(fields[key], spec.get(key, getattr(default, key)),
                                   style={"description_width": "90px"}, width="200px")
                wid.observe(lambda ch, i=i, key=key: self._edited(i, key, ch["new"]), names="value")
                wids.append(wid)
            if kind == "block":
                rep = w.IntText(value=spec.get("repeat", 1), description="repeat",
                                layout=w.Layout(width="200px"), style={"description_width": "90px"})
                rep.observe(lambda ch, i=i: self._edited(i, "repeat", ch["new"]), names="value")
                wids.append(rep)
            buttons = []
            for label, action in (("\u2191", lambda _, i=i: self.move(i, -1)),
                                  ("\u2193", lambda _, i=i: self.move(i, 1)),
                                  ("\u2715", lambda _, i=i: self.remove(i))):
                b = w.Button(description=label, layout=w.Layout(width="36px"))
                b.on_click(action)
                buttons.append(b)
            rows.append(w.HBox([w.HTML(f"<b>{i}. {kind}</b>", layout=w.Layout(width="95px")),
                                *buttons, w.GridBox(wids, layout=w.Layout(
                                    grid_template_columns="repeat(3, 205px)"))]))
        add = w.Button(description="add block", button_style="primary")
        add.on_click(lambda _: self.add_block())
        return (*rows, add, w.HTML(self.html()))

    def _edited(self, i, key, value):
        from spike_lib.ui.config_gui import field_kind, parse_field

        if key != "repeat":
            import dataclasses as dc

            f = next(f for f in dc.fields(Config) if f.name == key)
            try:
                value = parse_field(f, value) if field_kind(f) == "optional" else value
            except ValueError:
                value = str(value)  # shown as invalid by the diagram's validation
        self.design[i][key] = value
        if self._box is not None:  # redraw only the diagram: the typed widget keeps its focus
            self._box.children = (*self._box.children[:-1], __import__("ipywidgets").HTML(self.html()))

    def widget(self):
        import ipywidgets as w

        self._box = w.VBox(self._rows())
        return self._box

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget())
