"""`--set KEY=VALUE` for `python -m spike_lib train`: a Config field, its value parsed to the field's type.

Taught in: notebooks/10_toolkit.ipynb
"""

import dataclasses
import types

from spike_lib.core.config import Config

# config fields that --set refuses because another option owns them
OWN_OPTION = {"vocab_size": "--tokenizer", "spiking": "--spiking / --no-spiking",
              "attention": "--attention", "seed": "--seed"}


def parse_override(text) -> tuple:
    """'n_layer=6' -> ('n_layer', 6): a --set KEY=VALUE, the value parsed to the Config field's type.

    int, float and str fields take the text as such; bool fields take true/false (1/0, yes/no);
    fields that may be None (in_threshold, mem_clamp, ...) also take none.
    """
    key, sep, value = str(text).partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise ValueError(f"--set {text!r} is invalid: write KEY=VALUE, e.g. --set n_layer=6")
    fields = {f.name: f.type for f in dataclasses.fields(Config)}
    check_override_key(key, fields)
    kind = fields[key]
    if isinstance(kind, types.UnionType):  # float | None
        if value.lower() in ("none", "null"):
            return key, None
        kind = next(k for k in kind.__args__ if k is not type(None))
    try:
        if kind is bool:
            table = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            return key, table[value.lower()]
        return key, kind(value)
    except (KeyError, ValueError):
        raise ValueError(f"--set {text!r} is invalid: {key} takes a {kind.__name__}, not "
                         f"{value!r}") from None


def check_override_key(key, fields=None):
    """ValueError unless key is a Config field that --set may change."""
    fields = fields or {f.name for f in dataclasses.fields(Config)}
    if key in OWN_OPTION:
        raise ValueError(f"--set {key}=... is refused: {key} is set by {OWN_OPTION[key]}")
    if key not in fields:
        raise ValueError(f"--set {key}=... is invalid: Config has no field {key!r}; choose one "
                         f"of {sorted(set(fields) - set(OWN_OPTION))}")


def parse_overrides(texts) -> dict | None:
    """Repeated --set KEY=VALUE as a dict (None when there were none); a repeated key is an error."""
    if not texts:
        return None
    out = {}
    for text in texts:
        key, value = parse_override(text)
        if key in out:
            raise ValueError(f"--set {key} is given twice: keep one")
        out[key] = value
    return out
