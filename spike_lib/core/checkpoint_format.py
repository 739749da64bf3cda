"""The checkpoint folder format, shared by both backends: weights.npz (no pickle), config.json,
meta.json, tokenizer.json and optimizer.npz, written whole or not at all (core.atomic).

Tensor names are the plain dotted names of Module.named_parameters ("blocks.0.attn.q_proj.W"),
which both ports read and write. Loading a model lives in the backends
(spike_lib.train.checkpoint.load_checkpoint for NumPy, spike_lib.mlx_impl.model for MLX).
Taught in: notebooks/06_spikellm_training.ipynb
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from spike_lib.core.atomic import atomic_folder, leftovers

FORMAT_VERSION = 1
WEIGHTS, CONFIG, META, TOKENIZER, OPTIMIZER = (
    "weights.npz", "config.json", "meta.json", "tokenizer.json", "optimizer.npz")
CHECKPOINT_FILES = (WEIGHTS, CONFIG, META, TOKENIZER, OPTIMIZER)


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def is_checkpoint(path) -> bool:
    """True when folder `path` holds a checkpoint and nothing else (it may be replaced by one)."""
    path = Path(path)
    names = {p.name for p in path.iterdir()} if path.is_dir() else set()
    return {CONFIG, META} <= names <= set(CHECKPOINT_FILES)


def describe_folder(path, limit=4) -> str:
    """'3 entries: a.txt, sub/, ...' for messages that refuse to replace a folder."""
    entries = sorted(Path(path).iterdir())
    shown = [p.name + ("/" if p.is_dir() else "") for p in entries[:limit]]
    more = ", ..." if len(entries) > limit else ""
    return f"{len(entries)} entries: {', '.join(shown)}{more}" if entries else "nothing"


def replace_only_checkpoint(path):
    """check_replace for atomic_folder: refuse to replace a folder that is not a checkpoint."""
    path = Path(path)
    if any(path.iterdir()) and not is_checkpoint(path):
        raise ValueError(f"{path} exists and is not a checkpoint folder (it holds "
                         f"{describe_folder(path)}): refusing to replace it; choose an empty or "
                         "new folder for --out")


def save_checkpoint(path, model, tokenizer=None, optimizer=None, meta=None,
                    backend="numpy") -> Path:
    """Save model (and optionally its tokenizer, optimizer state, meta dict) into folder `path`.

    Works for both ports: it reads model.state_dict(), model.cfg, model.num_params(),
    tokenizer.save(path) and optimizer.state_dict(). Replaces an existing checkpoint at `path`
    only once the new one is completely written, and never a folder that is not a checkpoint.
    """
    with atomic_folder(path, check_replace=replace_only_checkpoint) as tmp:
        with open(tmp / WEIGHTS, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in model.state_dict().items()})
        _write_json(tmp / CONFIG, model.cfg.to_dict())
        info = {"format_version": FORMAT_VERSION, "backend": backend,
                "model": type(model).__name__, "n_params": int(model.num_params()),
                "tokenizer": None if tokenizer is None else type(tokenizer).__name__,
                **_plugin_origins(model.cfg), **(meta or {})}
        _write_json(tmp / META, info)
        if tokenizer is not None:
            tokenizer.save(tmp / TOKENIZER)
        if optimizer is not None:
            with open(tmp / OPTIMIZER, "wb") as f:
                np.savez(f, **optimizer.state_dict())
    return Path(path)


def _plugin_origins(cfg) -> dict:
    """{"plugins": {"neuron": {name: origin}, ...}} for the plug-ins cfg uses ({} if none)."""
    from spike_lib.core import plugins

    found = {}
    for kind in ("neuron", "attention"):
        name = getattr(cfg, kind, None)
        origin = plugins.origin_of(kind, name)
        if origin is not None:
            found[kind] = {name: origin}
    return {"plugins": found} if found else {}


def read_json_file(path, what="checkpoint", expect=dict):
    """A JSON file of type `expect`, with errors that name the file and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is missing: {path.parent} is not a complete {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is corrupt ({err}): use another {what}") from None
    if not isinstance(data, expect):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, expected a JSON "
                         f"{'object' if expect is dict else expect.__name__}: use another {what}")
    return data


def require_keys(data, keys, path, what="checkpoint"):
    """ValueError naming the file and the first missing key or wrong type; keys: {name: type}."""
    for key, kind in keys.items():
        if key not in data:
            raise ValueError(f"{path} has no key {key!r}: it is not a valid {what} file")
        if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
            want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ValueError(f"{path}: key {key!r} is {data[key]!r}, expected {want}")
    return data


def read_npz(path) -> dict:
    """All arrays of an .npz file as a dict, with allow_pickle=False and clear errors."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is missing: {path.parent} is not a complete checkpoint")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as err:
        raise ValueError(f"{path} is corrupt or truncated ({type(err).__name__}: {err}); "
                         "use an earlier checkpoint or re-save this one") from None


def check_folder(path, what="checkpoint") -> Path:
    """path as a Path if it is a folder; else ValueError, naming a copy an interrupted save left."""
    path = Path(path)
    if not path.is_dir():
        hint = ""
        left = leftovers(path)
        olds = [p / path.name for p in left["old"] if (p / path.name).is_dir()]
        if olds:
            hint = (f"; an interrupted save left the previous copy at {olds[-1]}: run "
                    f"`python -m spike_lib repair {path}` to put it back")
        elif left["tmp"]:
            hint = (f"; an interrupted save left {left['tmp'][-1]}: run "
                    f"`python -m spike_lib repair {path}`")
        raise ValueError(f"no {what} folder at {path}{hint}")
    return path


def load_meta(path) -> dict:
    """The meta.json of a checkpoint, with its format version and shape checked."""
    file = check_folder(path) / META
    meta = read_json_file(file)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {meta.get('format_version')!r}; this "
                         f"spike_lib reads version {FORMAT_VERSION}")
    if "step" in meta:
        require_keys(meta, {"step": int}, file)
    return meta


def load_config(path):
    from spike_lib.core.config import Config

    file = check_folder(path) / CONFIG
    data = read_json_file(file)
    try:
        return Config.from_dict(data)
    except (TypeError, ValueError) as err:
        hint = ""
        try:  # a plug-in this machine lacks: name the package the checkpoint was saved with
            used = json.loads((Path(path) / META).read_text(encoding="utf-8")).get("plugins", {})
            hint = "".join(
                f"; it was saved with the {kind} {name!r} from {origin}: "
                + ("install that package here (pip install it), then load again"
                   if origin.startswith("entry point") else
                   f"register it again (spike_lib.train.registry.register_{kind}) first")
                for kind, names in used.items() for name, origin in names.items()
                if f"{name!r}" in str(err))
        except (OSError, ValueError, AttributeError):
            pass
        raise ValueError(f"{file} is not a valid model config: {err}{hint}") from None


def load_weights(path) -> dict:
    """The weights as {dotted name: array} (what the MLX port reads)."""
    return read_npz(check_folder(path) / WEIGHTS)


def load_into(path, model, optimizer=None, load_tokenizer=None):
    """(model, tokenizer, meta): weights (and optimizer state) of checkpoint `path` into model.

    load_tokenizer(file) reads tokenizer.json (None: the checkpoint's tokenizer is not loaded).
    """
    meta = load_meta(path)
    model.load_state_dict(load_weights(path))
    tokenizer = None
    if load_tokenizer is not None and (Path(path) / TOKENIZER).is_file():
        tokenizer = load_tokenizer(Path(path) / TOKENIZER)
    if optimizer is not None:
        optimizer.load_state_dict(read_npz(Path(path) / OPTIMIZER))
    return model, tokenizer, meta
