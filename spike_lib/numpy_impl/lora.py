"""LoRA in NumPy: low-rank adapters on frozen Linear layers, with a hand-written backward pass.

Taught in: notebooks/09_finetuning_lora.ipynb
"""

import numpy as np

from spike_lib.core import lora as _shared
from spike_lib.core.config import check_rng
from spike_lib.core.lora import (  # noqa: F401 - the shared part, re-exported under its old names
    A_STD,
    ADAPTER_CONFIG,
    ADAPTER_FORMAT,
    ADAPTER_WEIGHTS,
    ATTN_TARGETS,
    MLP_TARGETS,
    adapter_state_dict,
    check_base,
    check_lora_args,
    expand_targets,
    fingerprint,
    read_adapter,
    save_adapter,
)
from spike_lib.numpy_impl.layers import Linear
from spike_lib.numpy_impl.module import Module


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
        check_rng(rng)
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


def load_adapter(path, model, base_fingerprint, rng=None, apply=None):
    """Put the adapter in folder `path` onto model (built from the matching base checkpoint).

    apply: the backend's apply_lora (default: this module's). Returns the adapter's info dict.
    """
    return _shared.load_adapter(path, model, base_fingerprint, apply or apply_lora, rng)
