"""Checkpoints: a folder with weights.npz (no pickle), config.json, meta.json and tokenizer.json.

The folder is written whole or not at all: every file goes into a temporary sibling folder,
which then replaces the old one by renames. Tensor names are the plain dotted names of
Module.named_parameters ("blocks.0.attn.q_proj.W"), which the MLX port reads too.
Taught in: notebooks/06_spikellm_training.ipynb
"""

import json
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
WEIGHTS, CONFIG, META, TOKENIZER, OPTIMIZER = (
    "weights.npz", "config.json", "meta.json", "tokenizer.json", "optimizer.npz")


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)


@contextmanager
def atomic_folder(path):
    """Yield an empty temporary sibling of folder `path`; once the block ends, it becomes `path`.

    The old folder steps aside (.NAME.old-*) and is removed only once the new one is in place;
    on any error the temporary folder is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / path.name)  # step aside, keep until the new one is in place
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_checkpoint(path, model, tokenizer=None, optimizer=None, meta=None) -> Path:
    """Save model (and optionally its tokenizer, optimizer state, meta dict) into folder `path`.

    Replaces an existing checkpoint at `path` only once the new one is completely written.
    """
    with atomic_folder(path) as tmp:
        with open(tmp / WEIGHTS, "wb") as f:
            np.savez(f, **model.state_dict())
        _write_json(tmp / CONFIG, model.cfg.to_dict())
        info = {"format_version": FORMAT_VERSION, "backend": "numpy",
                "model": type(model).__name__, "n_params": int(model.num_params()),
                "tokenizer": None if tokenizer is None else type(tokenizer).__name__,
                **(meta or {})}
        _write_json(tmp / META, info)
        if tokenizer is not None:
            tokenizer.save(tmp / TOKENIZER)
        if optimizer is not None:
            with open(tmp / OPTIMIZER, "wb") as f:
                np.savez(f, **optimizer.state_dict())
    return Path(path)


def _read_json(path):
    if not path.is_file():
        raise ValueError(f"{path} is missing: {path.parent} is not a complete checkpoint")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is corrupt ({err}): use another checkpoint") from None


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


def check_folder(path) -> Path:
    path = Path(path)
    if not path.is_dir():
        hint = ""
        olds = sorted(path.parent.glob(f".{path.name}.old-*/{path.name}"))
        if olds:
            hint = f"; an interrupted save left the previous checkpoint at {olds[-1]}"
        raise ValueError(f"no checkpoint folder at {path}{hint}")
    return path


def load_meta(path) -> dict:
    """The meta.json of a checkpoint, with its format version checked."""
    meta = _read_json(check_folder(path) / META)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {meta.get('format_version')!r}; this "
                         f"spike_lib reads version {FORMAT_VERSION}")
    return meta


def load_config(path):
    from spike_lib.core.config import Config

    return Config.from_dict(_read_json(check_folder(path) / CONFIG))


def load_weights(path) -> dict:
    """The weights as {dotted name: array} (what the MLX port reads)."""
    return read_npz(check_folder(path) / WEIGHTS)


def load_checkpoint(path, model=None, optimizer=None):
    """Load (model, tokenizer, meta). Without `model`, build a SpikeLLM from config.json.

    Loading into a model of another shape raises ValueError naming the tensor and both shapes.
    tokenizer is None when the checkpoint holds none.
    """
    meta = load_meta(path)
    if model is None:
        from spike_lib.numpy_impl.model import SpikeLLM

        model = SpikeLLM(load_config(path))
    model.load_state_dict(load_weights(path))
    tokenizer = None
    if (Path(path) / TOKENIZER).is_file():
        from spike_lib.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(Path(path) / TOKENIZER)
    if optimizer is not None:
        optimizer.load_state_dict(read_npz(Path(path) / OPTIMIZER))
    return model, tokenizer, meta
