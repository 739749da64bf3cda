"""LoRA in MLX: the NumPy LoRALinear's names and forward, frozen base weights, autodiff backward.

Taught in: notebooks/09_finetuning_lora.ipynb
"""

import mlx.core as mx
import numpy as np
from mlx import nn

from spike_lib.core.config import check_rng as _check_rng
from spike_lib.core.lora import (
    A_STD,
    ATTN_TARGETS,
    MLP_TARGETS,
    adapter_state_dict,
    check_lora_args,
    expand_targets,
)
from spike_lib.mlx_impl.layers import Linear


class LoRALinear(nn.Module):
    """y = x W + b + (alpha / r) (x A) B with W, b frozen and A (n_in, r), B (r, n_out) trainable.

    The port of spike_lib.numpy_impl.lora.LoRALinear (Hu et al. 2022): the same parameter names
    (W, b, A, B), the same A drawn from the same rng, B = 0. Only A and B are trainable, so
    nn.value_and_grad returns gradients for them alone. merge() / unmerge() as in NumPy.
    """

    def __init__(self, base, rank, alpha, rng):
        super().__init__()
        if not isinstance(base, Linear):
            raise TypeError(f"LoRALinear wraps a Linear, got {type(base).__name__}")
        _check_rng(rng)
        check_lora_args(rank, alpha, base.n_in, base.n_out)
        self.n_in, self.n_out, self.rank, self.alpha = base.n_in, base.n_out, int(rank), alpha
        self.scale = alpha / rank
        self.merged = False
        self.W = base.W
        if "b" in base:
            self.b = base.b
        a = (rng.standard_normal((self.n_in, self.rank)) * A_STD).astype(np.float32)
        self.A = mx.array(a).astype(base.W.dtype)
        self.B = mx.zeros((self.rank, self.n_out), dtype=base.W.dtype)
        self.freeze(keys=["W", "b"], strict=False)

    def delta(self):
        """The update (alpha / r) A B that merge() adds to W, (n_in, n_out)."""
        return self.scale * (self.A @ self.B)

    def __call__(self, x):
        if x.shape[-1] != self.n_in:
            raise ValueError(f"LoRALinear expects last dim {self.n_in}, got input shape {x.shape}")
        x2 = x.reshape(-1, self.n_in)
        y = x2 @ self.W
        if not self.merged:
            y = y + self.scale * ((x2 @ self.A) @ self.B)
        if "b" in self:
            y = y + self.b
        return y.reshape(*x.shape[:-1], self.n_out)

    def merge(self):
        """W <- W + (alpha / r) A B; the forward then skips the adapter."""
        if not self.merged:
            self.W = self.W + self.delta()
            self.merged = True
            self.freeze(keys=["W"], strict=False)
        return self

    def unmerge(self):
        """W <- W - (alpha / r) A B: back to the base weights and a separate adapter."""
        if self.merged:
            self.W = self.W - self.delta()
            self.merged = False
            self.freeze(keys=["W"], strict=False)
        return self


def _lora_slots(model, targets):
    """[(parent module, child name, full name)] of every Linear child named in targets, by name."""
    slots = []
    for prefix, mod in model.named_modules():
        for name in targets:
            if isinstance(mod.get(name), Linear):
                slots.append((mod, name, f"{prefix}.{name}" if prefix else name))
    slots.sort(key=lambda slot: slot[2])  # the draw order of A, as in the NumPy port
    if not slots:
        raise ValueError(f"no Linear layer named {list(targets)} in this model: choose targets "
                         f"among {list(ATTN_TARGETS + MLP_TARGETS)}")
    return slots


def freeze_except(model, names):
    """Freeze every parameter of model except those named in `names` (dotted names)."""
    from mlx.utils import tree_flatten

    own = {k for k, _ in tree_flatten(model.parameters())}
    unknown = sorted(set(names) - own)
    if unknown:
        raise ValueError(f"trainable names {unknown[:3]} are not parameters of this model")
    modules = dict(model.named_modules())
    model.freeze()
    for full in names:
        prefix, _, key = full.rpartition(".")
        modules[prefix].unfreeze(recurse=False, keys=[key])
    return model


def apply_lora(model, rank=8, alpha=16.0, targets=("attn",), rng=None):
    """Swap every Linear named in targets for a LoRALinear, in place; freeze all but A and B.

    Returns the trainable names, as spike_lib.numpy_impl.lora.apply_lora (same rng, same A).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    targets = expand_targets(targets)
    slots = _lora_slots(model, targets)
    for parent, name, full in slots:  # check every layer before swapping any
        check_lora_args(rank, alpha, parent[name].n_in, parent[name].n_out, full)
    trainable = []
    for parent, name, full in slots:
        setattr(parent, name, LoRALinear(parent[name], rank, alpha, rng))
        trainable += [f"{full}.A", f"{full}.B"]
    freeze_except(model, trainable)
    object.__setattr__(model, "lora", {"rank": int(rank), "alpha": float(alpha),
                                       "targets": list(targets)})
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


__all__ = ["LoRALinear", "adapter_state_dict", "apply_lora", "freeze_except", "lora_layers",
           "merge_lora", "unmerge_lora"]
