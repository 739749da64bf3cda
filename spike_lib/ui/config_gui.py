"""A notebook form over Config: one widget per field, validated as you type, the equivalent
`python -m spike_lib train` command, and a Train button that runs it with the live dashboard.

The command is built by config_command and read back by parse_command through the CLI's own
parser and spike_lib.train.runs (run_options, make_config), so what the form shows is what runs.
Taught in: notebooks/10_toolkit.ipynb
"""

import argparse
import dataclasses
import html
import re
import shlex
import types
from pathlib import Path

from spike_lib.core import plugins
from spike_lib.core.config import RESETS, Config
from spike_lib.core.surrogate import SURROGATES

PRESETS = ("tiny", "small", "book")
# Config fields set by their own train option, not by --set (spike_lib.train.runs.OWN_OPTION)
OWN = {"vocab_size": "--tokenizer", "spiking": "--spiking", "attention": "--attention",
       "seed": "--seed"}
# train options the form offers, with the flag each one becomes
RUN_FLAGS = {"out": "--out", "tokenizer": "--tokenizer", "backend": "--backend",
             "steps": "--steps", "batch_size": "--batch-size", "lr": "--lr",
             "warmup": "--warmup", "eval_every": "--eval-every", "val_tokens": "--val-tokens",
             "time_budget": "--time-budget"}


def preset_config(preset) -> Config:
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is invalid: choose one of {list(PRESETS)}")
    return getattr(Config, preset)()


def format_value(value) -> str:
    """A Config value as --set writes it: none, true/false, repr of floats (exact round trip)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def config_command(cfg, preset="tiny", **options) -> str:
    """The train command for cfg: preset, run options, and --set for fields that differ from it.

    options: out (required), tokenizer, backend, steps, batch_size, lr, warmup, eval_every,
    val_tokens, time_budget (None: leave out). vocab_size is the tokenizer's, so it is not written.
    """
    base = preset_config(preset)
    unknown = set(options) - set(RUN_FLAGS)
    if unknown:
        raise ValueError(f"unknown train options {sorted(unknown)}; known: {sorted(RUN_FLAGS)}")
    if not options.get("out"):
        raise ValueError("out is missing: give the run folder, e.g. out='runs/gui'")
    parts = ["python -m spike_lib train", f"--config {preset}"]
    parts += [f"{flag} {shlex.quote(str(options[k]))}" for k, flag in RUN_FLAGS.items()
              if options.get(k) is not None]
    if not cfg.spiking:
        parts.append("--no-spiking")
    if cfg.attention != "sdsa":
        parts.append(f"--attention {cfg.attention}")
    if cfg.seed != 0:
        parts.append(f"--seed {cfg.seed}")
    for f in dataclasses.fields(Config):
        value = getattr(cfg, f.name)
        if f.name not in OWN and value != getattr(base, f.name):
            parts.append(f"--set {f.name}={shlex.quote(format_value(value))}")
    return " ".join(parts)


def parse_command(command) -> tuple:
    """(run options, Config) of a train command, read as `python -m spike_lib train` reads it."""
    from spike_lib.core.overrides import parse_overrides
    from spike_lib.train.options import (
        OPTIONS,
        add_arguments,
        make_config,
        resolve_tokenizer,
        run_options,
    )

    words = shlex.split(command)
    if words[:4] != ["python", "-m", "spike_lib", "train"]:
        raise ValueError(f"{command!r} is not a `python -m spike_lib train ...` command")
    parser = argparse.ArgumentParser(prog="python -m spike_lib train")
    parser.add_argument("--json", action="store_true")  # as the command line adds to every command
    add_arguments(parser)
    args = parser.parse_args(words[4:])
    options = {k: getattr(args, k) for k in OPTIONS}
    options["set"] = parse_overrides(args.set)
    opts = run_options(**options)
    return opts, make_config(opts, resolve_tokenizer(opts["tokenizer"]))


def field_kind(f) -> str:
    """How the form edits a Config field: int, float, bool, optional (float or empty), choice."""
    if f.name in ("reset", "surrogate", "attention", "neuron"):
        return "choice"
    if isinstance(f.type, types.UnionType):
        return "optional"
    return {int: "int", float: "float", bool: "bool"}.get(f.type, "text")


def choices(name) -> list:
    return {"reset": list(RESETS), "surrogate": sorted(SURROGATES),
            "attention": plugins.names("attention"), "neuron": plugins.names("neuron")}[name]


def parse_field(f, value):
    """A widget's value as the Config field's value; text of an optional field: '' means None."""
    if field_kind(f) != "optional":
        return value
    text = str(value).strip()
    if text.lower() in ("", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{f.name}={text!r} is invalid: type a number, or leave it empty "
                         "for None") from None


def field_widget(f, value, style=None, width="260px"):
    """The widget that edits Config field f (a dataclasses.Field), showing value: a menu for
    choices, a text box for optional numbers (empty: None), else a number box or a tick box.
    ConfigForm and spike_lib.ui.flowchart.StageEditor both build their fields with it."""
    import ipywidgets as w

    kind = field_kind(f)
    if kind == "choice":
        wid = w.Dropdown(options=choices(f.name), value=value)
    elif kind == "optional":
        wid = w.Text(value="" if value is None else str(value), placeholder="none")
    else:
        wid = {"int": w.IntText, "float": w.FloatText, "bool": w.Checkbox,
               "text": w.Text}[kind](value=value)
    wid.description, wid.style = f.name, style or {"description_width": "120px"}
    wid.layout = w.Layout(width=width)
    return wid


def error_fields(message) -> list:
    """The fields a validation message names ("n_embd=48 ... n_head=5" -> [n_embd, n_head])."""
    return re.findall(r"(\w+)=", message)


class ConfigForm:
    """Widgets for every Config field and the train options; .config() and .command() read them.

    Every change re-validates: Config.__post_init__ and spike_lib.train.runs.run_options raise
    ValueError, shown inline (`error`) with the offending field outlined, and `command` shows
    the equivalent command line. train() runs spike_lib.train.runs.train_run with a Dashboard.
    train_docs / val_docs go to train_run (default: the shipped corpus).
    """

    def __init__(self, preset="tiny", out="runs/gui", tokenizer=None, train_docs=None,
                 val_docs=None, **options):
        import ipywidgets as w

        self.preset, self.docs = preset, (train_docs, val_docs)
        base = preset_config(preset)
        self.fields = {f.name: f for f in dataclasses.fields(Config)}
        self.widgets = {}
        style = {"description_width": "120px"}
        for name, f in self.fields.items():
            self.widgets[name] = field_widget(f, getattr(base, name), style=style)
        self.widgets["vocab_size"].disabled = True  # the tokenizer sets it
        tok = tokenizer or ("char" if preset == "tiny" else "bpe")
        run = {"out": out, "tokenizer": tok, "backend": "numpy", "steps": 200,
               "batch_size": 16, "lr": 3e-3, "warmup": 20, "eval_every": 50, "val_tokens": 4096}
        if set(options) - set(run):
            raise ValueError(f"unknown train options {sorted(set(options) - set(run))}; the "
                             f"form has {sorted(run)}")
        run.update(options)
        self.run_widgets = {
            "out": w.Text(value=run["out"]), "tokenizer": w.Dropdown(
                options=["char", "syllable", "bpe"], value=run["tokenizer"]),
            "backend": w.Dropdown(options=["numpy", "mlx"], value=run["backend"]),
            "steps": w.IntText(value=run["steps"]), "batch_size": w.IntText(value=run["batch_size"]),
            "lr": w.FloatText(value=run["lr"]), "warmup": w.IntText(value=run["warmup"]),
            "eval_every": w.IntText(value=run["eval_every"]),
            "val_tokens": w.IntText(value=run["val_tokens"])}
        for name, wid in self.run_widgets.items():
            wid.description, wid.style, wid.layout = name, style, w.Layout(width="260px")
        self.error = w.HTML()
        self.command_box = w.Textarea(layout=w.Layout(width="100%", height="70px"))
        self.button = w.Button(description="Train", button_style="primary")
        self.button.on_click(lambda _: self._clicked())
        self.output = w.Output()
        self.valid = False
        for name, wid in [*self.widgets.items(), *self.run_widgets.items()]:
            if name != "tokenizer":
                wid.observe(lambda _: self.update(), names="value")
        self.run_widgets["tokenizer"].observe(lambda _: self._sync_vocab(), names="value")
        self._sync_vocab()

    # -- reading the widgets ---------------------------------------------------------------------
    def _sync_vocab(self):
        """vocab_size follows the tokenizer (the train command sets it with --tokenizer)."""
        from spike_lib.train.runs import resolve_tokenizer

        self.widgets["vocab_size"].value = resolve_tokenizer(
            self.run_widgets["tokenizer"].value).vocab_size
        self.update()

    def set(self, **values):
        """Set fields or train options as if typed (Config values: None for an empty field)."""
        for name, value in values.items():
            target = self.widgets.get(name) or self.run_widgets.get(name)
            if target is None:
                raise ValueError(f"the form has no field {name!r}; fields: {sorted(self.widgets)}")
            kind = field_kind(self.fields[name]) if name in self.fields else None
            target.value = ("" if value is None else str(value)) if kind == "optional" else value
        return self

    def config(self) -> Config:
        """The Config the widgets describe; ValueError naming the field if it is invalid."""
        values = {n: parse_field(self.fields[n], wid.value) for n, wid in self.widgets.items()}
        return Config(**values)

    def options(self) -> dict:
        return {k: wid.value for k, wid in self.run_widgets.items()}

    def command(self) -> str:
        return config_command(self.config(), self.preset, **self.options())

    def update(self):
        """Validate and redraw the error line and the command (called on every change)."""
        from spike_lib.train.runs import run_options

        for wid in [*self.widgets.values(), *self.run_widgets.values()]:
            wid.layout.border = ""
        try:
            cfg, opts = self.config(), self.options()
            opts.pop("out")
            run_options(config=self.preset, spiking=cfg.spiking, attention=cfg.attention,
                        seed=cfg.seed, set=self.overrides(cfg), **opts)
            self.command_box.value = self.command()
        except ValueError as err:
            self.valid = False
            for field in error_fields(str(err)):
                wid = self.widgets.get(field) or self.run_widgets.get(field)
                if wid is not None:
                    wid.layout.border = "2px solid #c00"
            self.error.value = f"<span style='color:#c00'>&#9888; {html.escape(str(err))}</span>"
            self.button.disabled = True
            return
        self.valid = True
        self.error.value = "<span style='color:#070'>&#10003; valid</span>"
        self.button.disabled = False

    def overrides(self, cfg) -> dict:
        """The --set dict: fields that differ from the preset and have no option of their own."""
        base = preset_config(self.preset)
        return {k: getattr(cfg, k) for k in self.fields
                if k not in OWN and getattr(cfg, k) != getattr(base, k)}

    @property
    def error_text(self) -> str:
        """The message shown under the form, as plain text ('valid' when there is none)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.error.value)).lstrip("\u26a0\u2713 ")

    # -- running -----------------------------------------------------------------------------------
    def train(self, resume=False, live=None, every=10) -> dict:
        """Run the command in this kernel with a live Dashboard; returns train_run's result.

        The live dashboard is drawn inside the form, under the Train button. At the end one
        static figure goes to the output of the cell that called train() (what the published
        book shows), or under the button when it was clicked.
        """
        from spike_lib.train.runs import train_run
        from spike_lib.ui.dashboard import Dashboard

        if not self.valid:
            raise ValueError(f"the form is invalid: {self.error_text}")
        cfg, opts = self.config(), self.options()
        out = opts.pop("out")
        with self.output:  # the live view belongs to the form, not to the calling cell
            dash = Dashboard(label=Path(out).name or str(out), every=every, live=live)  # not a temp path
        result = train_run(out, resume=resume, callback=dash,
                           train_docs=self.docs[0], val_docs=self.docs[1], config=self.preset,
                           spiking=cfg.spiking, attention=cfg.attention, seed=cfg.seed,
                           set=self.overrides(cfg), **opts)
        self.figure = dash.finish()
        return result

    def _clicked(self):
        with self.output:
            try:
                self.train()
            except ValueError as err:  # a bad run option or folder: shown, not raised
                print(f"error: {err}")

    def widget(self):
        """The form: fields in a grid, train options, the error line, the command, Train."""
        import ipywidgets as w

        grid = w.GridBox(list(self.widgets.values()),
                         layout=w.Layout(grid_template_columns="repeat(3, 270px)"))
        runs = w.GridBox(list(self.run_widgets.values()),
                         layout=w.Layout(grid_template_columns="repeat(3, 270px)"))
        return w.VBox([w.HTML("<b>Model (Config)</b>"), grid, w.HTML("<b>Training run</b>"),
                       runs, self.error, self.command_box, self.button, self.output])

    def _ipython_display_(self):
        from IPython.display import display

        from spike_lib.ui.static import with_static

        static = (f"<p><b>Model (Config)</b>: the fields that differ from Config.{self.preset}() "
                  f"and the command the Train button runs</p><pre>{html.escape(self.summary())}</pre>")
        display(with_static(self.widget(), html=static))  # the book shows the static summary

    def summary(self) -> str:
        """A static rendering for pages without a kernel: changed fields and the command."""
        cfg, base = self.config(), preset_config(self.preset)
        rows = [f"{k:<16} {format_value(getattr(cfg, k)):>10}   (preset {self.preset}: "
                f"{format_value(getattr(base, k))})" for k in self.fields
                if getattr(cfg, k) != getattr(base, k)]
        return "\n".join([*rows, "", self.command()])
