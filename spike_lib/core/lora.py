"""LoRA shared by both backends: target names, argument checks and the adapter folder format.

An adapter folder holds adapter.npz (the A and B tensors only, no pickle) and adapter.json
(rank, alpha, targets and the fingerprint of the base checkpoint it was trained on).
Taught in: notebooks/09_finetuning_lora.ipynb
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from spike_lib.core.atomic import atomic_folder
from spike_lib.core.checkpoint_format import (
    CONFIG,
    WEIGHTS,
    check_folder,
    describe_folder,
    read_json_file,
    read_npz,
    require_keys,
)
from spike_lib.core.config import check_range

ATTN_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")  # the attention projections
MLP_TARGETS = ("fc1", "fc2")
ADAPTER_WEIGHTS, ADAPTER_CONFIG = "adapter.npz", "adapter.json"
ADAPTER_FORMAT = 1
A_STD = 0.01  # A ~ N(0, A_STD^2): small, so that the first updates of B are small too


def check_lora_args(rank, alpha, n_in, n_out, name="layer"):
    """rank must be an int in [1, min(n_in, n_out)] and alpha > 0 (ValueError naming the fix)."""
    check_range("alpha", alpha, 0.0, low_open=True)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"rank={rank!r} is invalid: it must be an integer >= 1")
    if rank > min(n_in, n_out):
        raise ValueError(f"rank={rank} is larger than {name} ({n_in} -> {n_out}): a LoRA "
                         f"update of rank r needs r <= min(n_in, n_out) = {min(n_in, n_out)}; "
                         "choose a smaller --rank")


def expand_targets(targets):
    """"attn" -> the four attention projections, "mlp" -> fc1, fc2; other names pass through."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    out = []
    for t in targets:
        for name in {"attn": ATTN_TARGETS, "mlp": MLP_TARGETS}.get(t, (t,)):
            if name not in out:
                out.append(name)
    if not out:
        raise ValueError("targets is empty: name layers to adapt, e.g. ['attn'] or ['attn', 'mlp']")
    return tuple(out)


def adapter_state_dict(model) -> dict:
    """Only the LoRA tensors, {"blocks.0.attn.q_proj.A": array, ...} (what an adapter saves)."""
    return {k: np.array(v) for k, v in model.state_dict().items() if k.endswith((".A", ".B"))}


# ---------------------------------------------------------------- adapters on disk
def fingerprint(checkpoint_dir) -> dict:
    """{"config": config.json as a dict, "weights_sha256": sha256 of weights.npz} of a checkpoint."""
    folder = check_folder(checkpoint_dir)
    if not (folder / WEIGHTS).is_file():
        raise ValueError(f"{folder / WEIGHTS} is missing: {folder} is not a complete checkpoint")
    digest = hashlib.sha256()
    with open(folder / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    return {"config": config, "weights_sha256": digest.hexdigest()}


def is_adapter(path) -> bool:
    """True when folder `path` holds an adapter and nothing else."""
    names = {p.name for p in Path(path).iterdir() if not p.name.startswith(".")}
    return names == {ADAPTER_WEIGHTS, ADAPTER_CONFIG}


def replace_only_adapter(path):
    """check_replace for atomic_folder: an adapter replaces only an empty folder or an adapter."""
    path = Path(path)
    if any(p for p in path.iterdir() if not p.name.startswith(".")) and not is_adapter(path):
        raise ValueError(f"{path} exists and is not an adapter folder (it holds "
                         f"{describe_folder(path)}): refusing to replace it; choose an empty or "
                         "new folder for --out (nothing was written)")


def save_adapter(path, model, base_fingerprint, meta=None) -> Path:
    """Write adapter.npz (LoRA tensors only, no pickle) + adapter.json into folder `path`, atomically."""
    if not getattr(model, "lora", None):
        raise ValueError("this model has no LoRA adapters: call apply_lora first")
    path = Path(path)
    with atomic_folder(path, check_replace=replace_only_adapter) as tmp:
        with open(tmp / ADAPTER_WEIGHTS, "wb") as f:
            np.savez(f, **adapter_state_dict(model))
        info = {"format_version": ADAPTER_FORMAT, **model.lora, "base": base_fingerprint,
                **(meta or {})}
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(info, indent=1, sort_keys=True),
                                          encoding="utf-8")
    return path


def read_adapter(path) -> tuple:
    """(info dict, {name: array}) of an adapter folder, with clear errors."""
    path = Path(path)
    cfg = path / ADAPTER_CONFIG
    if not cfg.is_file():
        check_folder(path, "adapter")  # a missing folder: names what a killed save left
        raise ValueError(f"{cfg} is missing: {path} is not a LoRA adapter folder (finetune "
                         "--method lora --out FOLDER writes one)")
    info = read_json_file(cfg, what="adapter (re-run the fine-tuning)")
    if info.get("format_version") != ADAPTER_FORMAT:
        raise ValueError(f"{cfg} has format version {info.get('format_version')!r}; this "
                         f"spike_lib reads version {ADAPTER_FORMAT}")
    require_keys(info, {"rank": int, "alpha": (int, float), "targets": list, "base": dict}, cfg,
                 what="adapter.json")
    return info, read_npz(path / ADAPTER_WEIGHTS)


def check_base(info, base_fingerprint, adapter_path="the adapter"):
    """ValueError naming both fingerprints when an adapter was trained on another base model."""
    want = info.get("base", {})
    if want == base_fingerprint:
        return
    if want.get("config") != base_fingerprint["config"]:
        diff = sorted(k for k in set(want.get("config", {})) | set(base_fingerprint["config"])
                      if want.get("config", {}).get(k) != base_fingerprint["config"].get(k))
        why = f"the configs differ in {diff}"
    else:
        why = "the configs agree but the weights differ"
    raise ValueError(
        f"{adapter_path} was trained on another base model ({why}): adapter base weights "
        f"sha256 {want.get('weights_sha256', '?')[:16]}..., this checkpoint's "
        f"{base_fingerprint['weights_sha256'][:16]}...; pass the --checkpoint it was "
        "fine-tuned from, or fine-tune a new adapter on this one")


def load_adapter(path, model, base_fingerprint, apply, rng=None):
    """Put the adapter in folder `path` onto model (built from the matching base checkpoint).

    apply: the backend's apply_lora. Returns the adapter's info dict.
    """
    info, tensors = read_adapter(path)
    check_base(info, base_fingerprint, path)
    apply(model, info["rank"], info["alpha"], info["targets"], rng)
    state = model.state_dict()
    missing = sorted(k for k in state if k.endswith((".A", ".B")) and k not in tensors)
    extra = sorted(set(tensors) - set(state))
    if missing or extra:
        raise ValueError(f"{path}: adapter tensors do not fit: missing {missing[:3]}, "
                         f"unexpected {extra[:3]}")
    model.load_state_dict({**state, **tensors})
    return info
