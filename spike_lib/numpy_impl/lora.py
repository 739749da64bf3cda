"""LoRA in NumPy: low-rank adapters on frozen Linear layers, with a hand-written backward pass.

Taught in: notebooks/09_finetuning_lora.ipynb
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from spike_lib.core.config import check_range
from spike_lib.numpy_impl.layers import Linear, _check_rng
from spike_lib.numpy_impl.module import Module

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


class LoRALinear(Module):
    """y = x W + b + (alpha / r) (x A) B: a frozen Linear plus a trainable rank-r update.

    A (n_in, r) starts small and random, B (r, n_out) at zero, so at step 0 the layer is the
    base layer exactly (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models").
    With s = alpha / r, h = x A and the upstream gradient dy:
        dB = s h^T dy,   dh = s dy B^T,   dA = x^T dh,   dx = dy W^T + dh A^T
    W and b are the base layer's (frozen unless train_base=True: then dW = x^T dy, db = sum dy).
    merge() folds the update into W (W <- W + s A B) for inference; unmerge() takes it out.
    """

    def __init__(self, base, rank, alpha, rng, train_base=False):
        super().__init__()
        if not isinstance(base, Linear):
            raise TypeError(f"LoRALinear wraps a Linear, got {type(base).__name__}")
        _check_rng(rng)
        check_lora_args(rank, alpha, base.n_in, base.n_out)
        self.n_in, self.n_out, self.rank, self.alpha = base.n_in, base.n_out, int(rank), alpha
        self.scale = alpha / rank
        self.train_base, self.merged = train_base, False
        dtype = base.params["W"].dtype
        for name, value in base.params.items():  # same names: W, b (a checkpoint still fits)
            self.add_param(name, value)
        self.add_param("A", (rng.standard_normal((self.n_in, self.rank)) * A_STD).astype(dtype))
        self.add_param("B", np.zeros((self.rank, self.n_out), dtype=dtype))

    def delta(self):
        """The update (alpha / r) A B that merge() adds to W, (n_in, n_out)."""
        return self.scale * (self.params["A"] @ self.params["B"])

    def forward(self, x):
        if x.shape[-1] != self.n_in:
            raise ValueError(f"LoRALinear expects last dim {self.n_in}, got input shape {x.shape}")
        self.x = x  # the input (firing_rates reads out_proj.x)
        x2 = x.reshape(-1, self.n_in)
        y = x2 @ self.params["W"]
        if not self.merged:
            self.h = x2 @ self.params["A"]  # (N, r)
            y = y + self.scale * (self.h @ self.params["B"])
        if "b" in self.params:
            y = y + self.params["b"]
        return y.reshape(*x.shape[:-1], self.n_out)

    def backward(self, dy):
        if self.merged:
            raise ValueError("this LoRALinear is merged: unmerge() it before training")
        x2 = self.x.reshape(-1, self.n_in)
        dy2 = dy.reshape(-1, self.n_out)
        p = self.params
        self.grads["B"] += self.scale * (self.h.T @ dy2)
        dh = self.scale * (dy2 @ p["B"].T)  # (N, r)
        self.grads["A"] += x2.T @ dh
        if self.train_base:
            self.grads["W"] += x2.T @ dy2
            if "b" in p:
                self.grads["b"] += dy2.sum(axis=0)
        return (dy2 @ p["W"].T + dh @ p["A"].T).reshape(self.x.shape)

    def merge(self):
        """W <- W + (alpha / r) A B; the forward then skips the adapter (one matmul)."""
        if not self.merged:
            self.params["W"] = self.params["W"] + self.delta().astype(self.params["W"].dtype)
            self.merged = True
        return self

    def unmerge(self):
        """W <- W - (alpha / r) A B: back to the base weights and a separate adapter."""
        if self.merged:
            self.params["W"] = self.params["W"] - self.delta().astype(self.params["W"].dtype)
            self.merged = False
        return self

    def flops(self, n_tokens=1) -> int:
        return n_tokens * (self.n_in * self.n_out + (0 if self.merged else
                                                     self.rank * (self.n_in + self.n_out)))


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


def _lora_slots(model, targets, linear_cls=Linear):
    """[(parent module, child name, full name)] of every linear_cls child named in targets."""
    slots = []
    for prefix, mod in model.named_modules():
        for name in targets:
            if isinstance(mod.modules.get(name), linear_cls):
                slots.append((mod, name, f"{prefix}.{name}" if prefix else name))
    slots.sort(key=lambda slot: slot[2])  # the draw order of A: by name, as in the MLX port
    if not slots:
        raise ValueError(f"no Linear layer named {list(targets)} in this model: choose targets "
                         f"among {list(ATTN_TARGETS + MLP_TARGETS)}")
    return slots


def apply_lora(model, rank=8, alpha=16.0, targets=("attn",), rng=None):
    """Swap every Linear named in targets for a LoRALinear, in place; returns the trainable names.

    Everything else is frozen: train with Trainable(model, names) as the optimizer's model.
    rng draws the A matrices (the MLX apply_lora draws the same ones from the same seed).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    targets = expand_targets(targets)
    slots = _lora_slots(model, targets)
    for parent, name, full in slots:  # check every layer before swapping any
        check_lora_args(rank, alpha, parent.modules[name].n_in, parent.modules[name].n_out, full)
    trainable = []
    for parent, name, full in slots:
        parent.modules[name] = LoRALinear(parent.modules[name], rank, alpha, rng)
        trainable += [f"{full}.A", f"{full}.B"]
    model.lora = {"rank": int(rank), "alpha": float(alpha), "targets": list(targets)}
    return trainable


def lora_layers(model):
    return [m for _, m in model.named_modules() if isinstance(m, LoRALinear)]


def merge_lora(model):
    for m in lora_layers(model):
        m.merge()
    return model


def unmerge_lora(model):
    for m in lora_layers(model):
        m.unmerge()
    return model


def adapter_state_dict(model) -> dict:
    """Only the LoRA tensors, {"blocks.0.attn.q_proj.A": array, ...} (what an adapter saves)."""
    return {k: np.array(v) for k, v in model.state_dict().items() if k.endswith((".A", ".B"))}


class Trainable:
    """A view of a model that shows the optimizer only the parameters named in `names`.

    named_parameters() yields the trainable ones; everything else (calling the model, backward,
    zero_grad, cfg) goes to the model. AdamW(Trainable(model, names)) and clip_grad_norm then
    never read or change a frozen parameter.
    """

    def __init__(self, model, names):
        own = {n for n, _, _ in model.named_parameters()}
        unknown = sorted(set(names) - own)
        if unknown:
            raise ValueError(f"trainable names {unknown[:3]} are not parameters of this model")
        self.model, self.names = model, set(names)

    def named_parameters(self):
        return ((n, p, g) for n, p, g in self.model.named_parameters() if n in self.names)

    def num_params(self) -> int:
        return sum(p.size for _, p, _ in self.named_parameters())

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.model, name)


# ---------------------------------------------------------------- adapters on disk
def fingerprint(checkpoint_dir) -> dict:
    """{"config": config.json as a dict, "weights_sha256": sha256 of weights.npz} of a checkpoint."""
    from spike_lib.train.checkpoint import CONFIG, WEIGHTS, check_folder

    folder = check_folder(checkpoint_dir)
    if not (folder / WEIGHTS).is_file():
        raise ValueError(f"{folder / WEIGHTS} is missing: {folder} is not a complete checkpoint")
    digest = hashlib.sha256()
    with open(folder / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    return {"config": config, "weights_sha256": digest.hexdigest()}


def save_adapter(path, model, base_fingerprint, meta=None) -> Path:
    """Write adapter.npz (LoRA tensors only, no pickle) + adapter.json into folder `path`, atomically."""
    if not getattr(model, "lora", None):
        raise ValueError("this model has no LoRA adapters: call apply_lora first")
    from spike_lib.train.checkpoint import atomic_folder

    path = Path(path)
    with atomic_folder(path) as tmp:
        with open(tmp / ADAPTER_WEIGHTS, "wb") as f:
            np.savez(f, **adapter_state_dict(model))
        info = {"format_version": ADAPTER_FORMAT, **model.lora, "base": base_fingerprint,
                **(meta or {})}
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(info, indent=1, sort_keys=True),
                                          encoding="utf-8")
    return path


def read_adapter(path) -> tuple:
    """(info dict, {name: array}) of an adapter folder, with clear errors."""
    from spike_lib.train.checkpoint import read_npz

    path = Path(path)
    cfg = path / ADAPTER_CONFIG
    if not cfg.is_file():
        raise ValueError(f"{cfg} is missing: {path} is not a LoRA adapter folder (finetune "
                         "--method lora --out FOLDER writes one)")
    try:
        info = json.loads(cfg.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{cfg} is corrupt ({err}): re-run the fine-tuning") from None
    if info.get("format_version") != ADAPTER_FORMAT:
        raise ValueError(f"{cfg} has format version {info.get('format_version')!r}; this "
                         f"spike_lib reads version {ADAPTER_FORMAT}")
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


def load_adapter(path, model, base_fingerprint, rng=None, apply=None):
    """Put the adapter in folder `path` onto model (built from the matching base checkpoint).

    apply: the backend's apply_lora (default: this module's). Returns the adapter's info dict.
    """
    info, tensors = read_adapter(path)
    check_base(info, base_fingerprint, path)
    (apply or apply_lora)(model, info["rank"], info["alpha"], info["targets"], rng)
    state = model.state_dict()
    missing = sorted(k for k in state if k.endswith((".A", ".B")) and k not in tensors)
    extra = sorted(set(tensors) - set(state))
    if missing or extra:
        raise ValueError(f"{path}: adapter tensors do not fit: missing {missing[:3]}, "
                         f"unexpected {extra[:3]}")
    model.load_state_dict({**state, **tensors})
    return info
