"""Spike-driven (SDSA) and softmax self-attention in MLX: the NumPy forward, autodiff backward.

Taught in: notebooks/07_mlx_port.ipynb
"""

import math

import mlx.core as mx
import numpy as np
from mlx import nn

from spike_lib.core.config import check_range
from spike_lib.core.constants import NEG_INF
from spike_lib.mlx_impl.layers import Linear
from spike_lib.mlx_impl.neurons import LIF


def split_heads(x, n_head):
    """(..., L, D) -> (..., H, L, D/H): head h holds channels h*D/H ... (h+1)*D/H - 1."""
    *lead, n_tok, d = x.shape
    if d % n_head:
        raise ValueError(f"last dim {d} is not divisible by n_head={n_head}")
    return mx.swapaxes(x.reshape(*lead, n_tok, n_head, d // n_head), -3, -2)


def merge_heads(x):
    """(..., H, L, D/H) -> (..., L, D): the inverse of split_heads."""
    *lead, n_head, n_tok, hd = x.shape
    return mx.swapaxes(x, -3, -2).reshape(*lead, n_tok, n_head * hd)


def _key_mask(mask, n_tok):
    """A (B, L) padding mask (True = real token) as a 0/1 float array (B, 1, L, 1)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[1] != n_tok:
        raise ValueError(f"mask must have shape (B, L) with L={n_tok}, got {mask.shape}")
    return mx.array(mask.astype(np.float32))[:, None, :, None]


def _check_heads(n_embd, n_head):
    check_range("n_head", n_head, 1, kind=int)
    if n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} is invalid: it must be divisible by n_head={n_head}")


class SDSA(nn.Module):
    """Spike-driven self-attention, SDSA-1 of Yao et al. (2023), "Spike-driven Transformer".

        Q, K, V = LIF(x W_Q), LIF(x W_K), LIF(x W_V)          spikes (T, B, L, D)
        SDSA(x) = (Q * SN(sum_l K[l] * V[l])) W_O              * = Hadamard product
    Spikes are binary (levels=1) or D + 1 levels j/D in [0, 1] (levels=D), as in the NumPy SDSA.
    With causal=True the sum over tokens is a cumulative sum over positions l' <= l. The
    sub-modules (q_proj, q_lif, ..., attn_lif, out_proj) are named as in the NumPy SDSA.
    """

    def __init__(self, n_embd, n_head, rng, causal=False, beta=0.5, threshold=1.0,
                 attn_threshold=0.5, reset="subtract", surrogate="arctan", surrogate_scale=2.0,
                 detach_reset=True, bias=True, levels=1):
        super().__init__()
        _check_heads(n_embd, n_head)
        self.n_embd, self.n_head, self.causal = n_embd, n_head, bool(causal)
        lif = {"beta": beta, "threshold": threshold, "reset": reset, "surrogate": surrogate,
               "surrogate_scale": surrogate_scale, "detach_reset": detach_reset, "levels": levels}
        for name in ("q", "k", "v"):  # the NumPy order: the same rng draws, the same weights
            setattr(self, f"{name}_proj", Linear(n_embd, n_embd, rng, bias=bias))
            setattr(self, f"{name}_lif", LIF(**lif))
        self.attn_lif = LIF(**{**lif, "threshold": attn_threshold})
        self.out_proj = Linear(n_embd, n_embd, rng, bias=bias)

    @classmethod
    def from_config(cls, cfg, rng, causal=False):
        th = cfg.thresholds()
        return cls(cfg.n_embd, cfg.n_head, rng, causal, cfg.beta, th["qkv"], th["attn"],
                   cfg.reset, cfg.surrogate, cfg.surrogate_scale, cfg.detach_reset,
                   levels=cfg.spike_levels)

    def __call__(self, x, mask=None):
        if x.ndim != 4:
            raise ValueError(f"SDSA expects (T, B, L, D), got shape {x.shape}")
        q = self.q_lif(self.q_proj(x))  # (T, B, L, D) spikes
        k = self.k_lif(self.k_proj(x))
        v = self.v_lif(self.v_proj(x))
        # every SDSA-1 operation acts channel by channel, so splitting heads (as NumPy does for
        # bookkeeping) changes no number: skipping it saves four transposed copies
        kv = k * v  # AND of two spike trains (a product of values j/D for D-level spikes)
        if mask is not None:
            kv = kv * _key_mask(mask, x.shape[2])[:, 0]  # (B, L, 1): padding tokens add nothing
        s = mx.cumsum(kv, axis=-2) if self.causal else kv.sum(axis=-2, keepdims=True)
        g = self.attn_lif(s)  # (T, B, 1 or L, D): which channels are "on"
        return self.out_proj(q * g)  # q * g is a mask on q


class SoftmaxAttention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017), real-valued.

        Q, K, V = x W_Q, x W_K, x W_V;  A = softmax(Q K^T / sqrt(d_h) + M);  y = (A V) W_O
    M is -1e9 at masked keys and, with causal=True, at keys after the query (as in NumPy).
    """

    def __init__(self, n_embd, n_head, rng, causal=False, bias=True):
        super().__init__()
        _check_heads(n_embd, n_head)
        self.n_embd, self.n_head, self.causal = n_embd, n_head, bool(causal)
        for name in ("q", "k", "v", "out"):
            setattr(self, f"{name}_proj", Linear(n_embd, n_embd, rng, bias=bias))

    @classmethod
    def from_config(cls, cfg, rng, causal=False):
        return cls(cfg.n_embd, cfg.n_head, rng, causal)

    def __call__(self, x, mask=None):
        n_tok = x.shape[-2]
        q, k, v = (split_heads(p(x), self.n_head)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (..., H, L, hd)
        att = (q @ mx.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(q.shape[-1]))  # (..., H, L, L)
        allowed = np.ones((n_tok, n_tok), bool)
        if self.causal:
            allowed = np.tril(allowed)
        if mask is not None:
            km = np.asarray(mask).astype(bool)
            if km.ndim != 2 or km.shape[1] != n_tok:
                raise ValueError(f"mask must have shape (B, L) with L={n_tok}, got {km.shape}")
            allowed = allowed & km[:, None, None, :]  # (B, 1, L, L)
        att = mx.where(mx.array(allowed), att, NEG_INF)
        p = mx.softmax(att, axis=-1)
        return self.out_proj(merge_heads(p @ v))
