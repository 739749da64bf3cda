"""The options of a training run: defaults, checks, the tokenizer and Config they give, and the
`train` command's arguments (shared by the command line and the config form).

Taught in: notebooks/10_toolkit.ipynb
"""

import argparse
import math
from pathlib import Path

from spike_lib.core import plugins
from spike_lib.core.config import Config, check_choice, check_range
from spike_lib.core.overrides import check_override_key

PRESETS = {"tiny": Config.tiny, "small": Config.small, "book": Config.book}
BACKENDS = ("numpy", "mlx")
DEFAULTS = {"config": "tiny", "tokenizer": None, "steps": 200, "batch_size": 16, "lr": 3e-3,
            "warmup": 20, "weight_decay": 0.01, "clip": 1.0, "eval_every": 50,
            "ckpt_every": None, "val_tokens": 4096, "seed": 0, "spiking": True,
            "attention": "sdsa", "metadata": False, "backend": "numpy", "set": {},
            "time_budget": None}
# options that change what is logged or saved when, not what is learned: free on --resume
# (time_budget too: the schedule's length is fixed in run.json's "plan" once it is measured)
FREE_ON_RESUME = ("eval_every", "ckpt_every", "val_tokens", "time_budget")
CHANGEABLE = ("lr", "steps")  # what --resume --allow-changed NAME may change (run.json logs it)
NO_STEP_CAP = 10**7  # --steps when only --time-budget bounds a run


def run_options(**overrides) -> dict:
    """DEFAULTS with overrides (None means default), each validated; tokenizer filled in."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown run options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    opts = {**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("steps") is None and overrides.get("time_budget") is not None:
        opts["steps"] = NO_STEP_CAP  # the clock decides
    if not isinstance(opts["set"], dict):
        raise ValueError(f"set={opts['set']!r} is invalid: it must be a dict of Config fields")  # noqa: TRY004
    opts["set"] = dict(opts["set"])
    for key in opts["set"]:
        check_override_key(key)
    if opts["time_budget"] is not None:
        check_range("time_budget", opts["time_budget"], 0.0, low_open=True)
    check_choice("config", opts["config"], list(PRESETS))
    check_choice("backend", opts["backend"], BACKENDS)
    plugins.check_name("attention", opts["attention"])  # sdsa, softmax or a registered one
    for key in ("steps", "batch_size", "eval_every", "val_tokens"):
        check_range(key, opts[key], 1, kind=int)
    check_range("warmup", opts["warmup"], 0, kind=int)
    check_range("seed", opts["seed"], 0, kind=int)
    check_range("lr", opts["lr"], 0.0, low_open=True)
    check_range("weight_decay", opts["weight_decay"], 0.0)
    check_range("clip", opts["clip"], 0.0)
    for key in ("lr", "weight_decay", "clip", "time_budget"):
        if opts[key] is not None and not math.isfinite(opts[key]):
            raise ValueError(f"{key}={opts[key]!r} is invalid: it must be a finite number")
    if opts["ckpt_every"] is None:
        opts["ckpt_every"] = opts["eval_every"]
    check_range("ckpt_every", opts["ckpt_every"], 1, kind=int)
    if opts["tokenizer"] is None:  # characters for the tiny model, BPE for the real ones
        opts["tokenizer"] = "char" if opts["config"] == "tiny" else "bpe"
    PRESETS[opts["config"]](**opts["set"])  # Config validates the overrides (ValueError)
    return opts


def resolve_tokenizer(name_or_path):
    """A tokenizer by name (char, syllable, bpe, gpt2, or a registered plug-in) or by .json path."""
    from spike_lib.tokenizers import TOKENIZERS, get_tokenizer, load_tokenizer
    from spike_lib.train import registry

    if name_or_path in TOKENIZERS:
        return get_tokenizer(name_or_path)
    path = Path(name_or_path)
    if path.suffix != ".json":
        try:
            tok = registry.get_tokenizer(name_or_path)
        except ValueError:
            raise ValueError(f"tokenizer={name_or_path!r} is neither a tokenizer name "
                             f"{registry.names('tokenizer')} nor the path of a saved tokenizer "
                             "(.json)") from None
        if not callable(getattr(tok, "save", None)):  # checkpoints hold their tokenizer
            raise ValueError(f"the plug-in tokenizer {name_or_path!r} has no save(path): "
                             "subclass spike_lib.tokenizers.base.Tokenizer to train with it")
        return tok
    if not path.is_file():
        raise ValueError(f"tokenizer file {path} does not exist: give a shipped name "
                         f"{sorted(TOKENIZERS)} or the path of a file saved with .save()")
    return load_tokenizer(path)


def make_config(opts, tokenizer) -> Config:
    """The preset with the tokenizer's vocabulary size and the run's switches."""
    return PRESETS[opts["config"]](vocab_size=tokenizer.vocab_size, spiking=opts["spiking"],
                                   attention=opts["attention"], seed=opts["seed"],
                                   **opts.get("set", {}))


class SetField(argparse.Action):
    """--FLAG VALUE as a shorthand of --set FIELD=VALUE (one more entry of args.set), so the value
    is validated, saved in run.json and checked on --resume as every --set is."""

    def __init__(self, option_strings, dest, field=None, **kwargs):
        super().__init__(option_strings, "set", default=argparse.SUPPRESS, **kwargs)
        self.field = field

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.set = [*(getattr(namespace, "set", None) or []), f"{self.field}={values}"]


def add_arguments(parser) -> None:
    # defaults are None: a new run takes spike_lib.train.runs.DEFAULTS, a resumed one its saved value
    parser.add_argument("--out", required=True, help="run folder, e.g. runs/tiny-char")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last good checkpoint")
    parser.add_argument("--config", choices=["tiny", "small", "book"], help="model preset (tiny)")
    parser.add_argument("--tokenizer", help="char, syllable, bpe, gpt2 or a saved .json "
                        "(default: char for tiny, bpe otherwise); sets vocab_size")
    parser.add_argument("--backend", choices=["numpy", "mlx"], help="numpy (default) or mlx")
    parser.add_argument("--steps", type=int, help="total updates (200)")
    parser.add_argument("--batch-size", type=int, help="sequences per step (16)")
    parser.add_argument("--lr", type=float, help="peak learning rate (3e-3)")
    parser.add_argument("--warmup", type=int, help="warmup steps before the cosine decay (20)")
    parser.add_argument("--eval-every", type=int, help="steps between validations (50)")
    parser.add_argument("--ckpt-every", type=int, help="steps between checkpoints (eval-every)")
    parser.add_argument("--val-tokens", type=int, help="validation tokens per evaluation (4096)")
    parser.add_argument("--seed", type=int, help="weights and batches (0)")
    parser.add_argument("--spiking", action=argparse.BooleanOptionalAction, default=None,
                        help="--no-spiking trains the non-spiking twin")
    parser.add_argument("--attention", help="sdsa (default), softmax or a registered plug-in")
    parser.add_argument("--spike-levels", action=SetField, field="spike_levels", type=int,
                        metavar="D", help="spikes of D + 1 levels 0, 1/D, ..., 1: the count of "
                        "the level thresholds k threshold / D crossed, divided by D (I-LIF, Luo "
                        "et al. 2024, normalised); 1: binary spikes (default). The same as "
                        "--set spike_levels=D")
    parser.add_argument("--metadata", action="store_const", const=True, default=None,
                        help="prefix each chunk with its document's category (metadata conditioning)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a field of the preset's Config (repeatable), e.g. "
                        "--set n_layer=6 --set n_embd=192; saved in run.json")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="stop after this much training time with a checkpoint; the cosine "
                        "schedule is planned over the steps that fit (measured on the first "
                        "steps); --steps becomes an upper bound")
    parser.add_argument("--allow-changed", action="append", default=[], metavar="OPTION",
                        choices=CHANGEABLE, help="with --resume: accept a new value of OPTION "
                        "(lr or steps), e.g. --lr 1e-3 after a blow-up; logged in run.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


OPTIONS = ("config", "tokenizer", "backend", "steps", "batch_size", "lr", "warmup",
           "eval_every", "ckpt_every", "val_tokens", "seed", "spiking", "attention", "metadata",
           "time_budget")
