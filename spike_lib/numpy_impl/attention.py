"""Spike-driven (SDSA) and softmax self-attention with hand-written backward passes and op counts.

Taught in: notebooks/02_sdsa_colors.ipynb
"""

import numpy as np

from spike_lib.core.config import check_range
from spike_lib.core.constants import NEG_INF
from spike_lib.numpy_impl.layers import Linear, softmax
from spike_lib.numpy_impl.module import Module
from spike_lib.numpy_impl.neurons import LIF


def split_heads(x, n_head):
    """(..., L, D) -> (..., H, L, D/H): head h holds channels h*D/H ... (h+1)*D/H - 1."""
    *lead, n_tok, d = x.shape
    if d % n_head:
        raise ValueError(f"last dim {d} is not divisible by n_head={n_head}")
    x = x.reshape(*lead, n_tok, n_head, d // n_head)
    return np.swapaxes(x, -3, -2)


def merge_heads(x):
    """(..., H, L, D/H) -> (..., L, D): the inverse of split_heads."""
    *lead, n_head, n_tok, hd = x.shape
    return np.swapaxes(x, -3, -2).reshape(*lead, n_tok, n_head * hd)


def _key_mask(mask, n_tok):
    """A (B, L) padding mask (True = real token) as a 0/1 float array (B, 1, L, 1)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[1] != n_tok:
        raise ValueError(f"mask must have shape (B, L) with L={n_tok}, got {mask.shape}")
    return mask.astype(np.float32)[:, None, :, None]


def reverse_cumsum(x, axis):
    """y[l] = sum_{l' >= l} x[l']: the backward of a cumulative sum along `axis`."""
    return np.flip(np.cumsum(np.flip(x, axis), axis), axis)


class SDSA(Module):
    """Spike-driven self-attention, SDSA-1 of Yao et al. (2023), "Spike-driven Transformer".

        Q, K, V = LIF(x W_Q), LIF(x W_K), LIF(x W_V)          spikes (T, B, L, D)
        SDSA(x) = (Q * SN(sum_l K[l] * V[l])) W_O              * = Hadamard product
    Spikes are binary (levels=1: K * V is an AND) or D + 1 levels j/D in [0, 1] (levels=D:
    K * V is a product of values, (i/D)(j/D), i j coincident events; Q * SN(.) too; nothing
    here assumes 0/1). SN's threshold applies to the sum of those products as it does to
    counts of ANDs: with D-level spikes the sum stays on the binary scale.
    SN is a LIF neuron with threshold attn_threshold; with causal=True the sum over all tokens
    becomes the cumulative sum over positions l' <= l. Every LIF carries its membrane over the
    T timesteps only, never over token positions. Heads are split and merged like softmax
    attention's; because every SDSA-1 operation acts channel by channel, the split changes no
    number, only the bookkeeping shared with SoftmaxAttention. Cost is linear in L: no L x L map.
    """

    def __init__(self, n_embd, n_head, rng, causal=False, beta=0.5, threshold=1.0,
                 attn_threshold=0.5, reset="subtract", surrogate="arctan", surrogate_scale=2.0,
                 detach_reset=True, bias=True, levels=1):
        super().__init__()
        check_range("n_head", n_head, 1, kind=int)
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is invalid: it must be divisible by n_head={n_head}")
        self.n_embd, self.n_head, self.causal = n_embd, n_head, bool(causal)
        lif = {"beta": beta, "threshold": threshold, "reset": reset, "surrogate": surrogate,
               "surrogate_scale": surrogate_scale, "detach_reset": detach_reset, "levels": levels}
        for name in ("q", "k", "v"):
            self.add_module(f"{name}_proj", Linear(n_embd, n_embd, rng, bias=bias))
            self.add_module(f"{name}_lif", LIF(**lif))
        self.add_module("attn_lif", LIF(**{**lif, "threshold": attn_threshold}))
        self.add_module("out_proj", Linear(n_embd, n_embd, rng, bias=bias))

    @classmethod
    def from_config(cls, cfg, rng, causal=False):
        """Q/K/V neurons take cfg.thresholds()["qkv"], SN takes cfg.attn_threshold; all four
        fire spikes of cfg.spike_levels levels j/D in [0, 1]."""
        th = cfg.thresholds()
        return cls(cfg.n_embd, cfg.n_head, rng, causal, cfg.beta, th["qkv"], th["attn"],
                   cfg.reset, cfg.surrogate, cfg.surrogate_scale, cfg.detach_reset,
                   levels=cfg.spike_levels)

    def forward(self, x, mask=None):
        if x.ndim != 4:
            raise ValueError(f"SDSA expects (T, B, L, D), got shape {x.shape}")
        m = self.modules
        q, k, v = (m[f"{n}_lif"](m[f"{n}_proj"](x)) for n in "qkv")  # (T, B, L, D) spikes
        qh, kh, vh = (split_heads(a, self.n_head) for a in (q, k, v))  # (T, B, H, L, hd)
        kv = kh * vh  # AND of two spike trains (a product of values j/D for D-level spikes)
        self.km = None if mask is None else _key_mask(mask, x.shape[2])
        if self.km is not None:
            kv = kv * self.km  # padding tokens add nothing
        s = np.cumsum(kv, axis=-2) if self.causal else kv.sum(axis=-2, keepdims=True)
        g = m["attn_lif"](s)  # (T, B, H, 1 or L, hd) spikes: which channels are "on"
        self.cache = (qh, kh, vh, g)
        return m["out_proj"](merge_heads(qh * g))  # q * g is a mask on q

    def backward(self, dout):
        m = self.modules
        qh, kh, vh, g = self.cache
        dy = split_heads(m["out_proj"].backward(dout), self.n_head)  # (T, B, H, L, hd)
        dqh = dy * g
        dg = dy * qh if self.causal else (dy * qh).sum(axis=-2, keepdims=True)
        ds = m["attn_lif"].backward(dg)
        dkv = reverse_cumsum(ds, -2) if self.causal else np.broadcast_to(ds, kh.shape)
        if self.km is not None:
            dkv = dkv * self.km
        dx = 0.0
        for name, dh in (("q", dqh), ("k", dkv * vh), ("v", dkv * kh)):
            dspk = merge_heads(dh)
            dx = dx + m[f"{name}_proj"].backward(m[f"{name}_lif"].backward(dspk))
        return dx


class SoftmaxAttention(Module):
    """Multi-head scaled dot-product attention (Vaswani et al. 2017), real-valued.

        Q, K, V = x W_Q, x W_K, x W_V;  A = softmax(Q K^T / sqrt(d_h) + M);  y = (A V) W_O
    M is -inf (here -1e9) at masked keys and, with causal=True, at keys after the query.
    Backward: dA = dY V^T, dS = A * (dA - sum_j A dA) / sqrt(d_h), dQ = dS K, dK = dS^T Q.
    """

    def __init__(self, n_embd, n_head, rng, causal=False, bias=True):
        super().__init__()
        check_range("n_head", n_head, 1, kind=int)
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is invalid: it must be divisible by n_head={n_head}")
        self.n_embd, self.n_head, self.causal = n_embd, n_head, bool(causal)
        for name in ("q", "k", "v", "out"):
            self.add_module(f"{name}_proj", Linear(n_embd, n_embd, rng, bias=bias))

    @classmethod
    def from_config(cls, cfg, rng, causal=False):
        return cls(cfg.n_embd, cfg.n_head, rng, causal)

    def forward(self, x, mask=None):
        m = self.modules
        n_tok = x.shape[-2]
        q, k, v = (split_heads(m[f"{n}_proj"](x), self.n_head) for n in "qkv")  # (..., H, L, hd)
        scale = 1.0 / np.sqrt(q.shape[-1])
        att = (q @ np.swapaxes(k, -1, -2)) * scale  # (..., H, L, L)
        allowed = np.ones((n_tok, n_tok), bool)
        if self.causal:
            allowed = np.tril(allowed)
        if mask is not None:
            allowed = allowed & _key_mask(mask, n_tok)[..., 0].astype(bool)[:, :, None, :]
        att = np.where(allowed, att, NEG_INF)
        p = softmax(att, axis=-1).astype(x.dtype)
        self.cache = (q, k, v, p, scale)
        return m["out_proj"](merge_heads(p @ v))

    def backward(self, dout):
        m = self.modules
        q, k, v, p, scale = self.cache
        dy = split_heads(m["out_proj"].backward(dout), self.n_head)
        dp = dy @ np.swapaxes(v, -1, -2)
        dv = np.swapaxes(p, -1, -2) @ dy
        datt = p * (dp - (dp * p).sum(axis=-1, keepdims=True)) * scale  # masked entries: p = 0
        dq = datt @ k
        dk = np.swapaxes(datt, -1, -2) @ q
        dx = 0.0
        for name, dh in (("q", dq), ("k", dk), ("v", dv)):
            dx = dx + m[f"{name}_proj"].backward(merge_heads(dh))
        return dx


def sdsa_ops(n_tok, n_embd, causal=False) -> dict:
    """Operations of SDSA's attention core for one timestep (projections not included).

    K*V: n_tok*n_embd ANDs; the sum over tokens: n_tok*n_embd additions (a cumulative sum
    does the same number); Q*SN(.): n_tok*n_embd masks. No multiplication, no exp.
    Counted for binary spikes: with spikes j/D (spike_levels D > 1) K*V and Q*SN(.) are
    products of values in [0, 1], which spike_lib.core.energy charges D^2 x their mean.
    """
    n = n_tok * n_embd
    return {"and": n, "add": n, "mask": n, "mul": 0, "exp": 0}


def softmax_attention_ops(n_tok, n_embd, n_head=1, causal=False) -> dict:
    """Operations of softmax attention's core (projections not included), counted as MACs.

    Q K^T and A V: n_tok^2 * n_embd multiply-accumulates each; the softmax: n_head * n_tok^2
    exps. Causal masking leaves the dense count unchanged (the masked half is still computed).
    """
    return {"mac": 2 * n_tok * n_tok * n_embd, "exp": n_head * n_tok * n_tok}
