"""Attentions that read their context, in MLX: gates that do not saturate, token shift, a matrix
state on spikes, and a hybrid whose scores are membrane potentials.

Every class maps (T, B, L, D) to (T, B, L, D) causally (output l never reads a token after l)
and is selected by name through Config.attention (NAMES below). The sub-modules keep SDSA's
names (q_proj, k_proj, v_proj, out_proj, q_lif, k_lif, v_lif, attn_lif) so the NumPy ports
(spike_lib.numpy_impl) can use the same parameter names. Extra parameters are not drawn from
rng (only the four projections are, in the order q, k, v, out), so the same seed gives the same
weights in both ports. Issue 13; taught in the recall section (chapter 5).
"""

import math

import mlx.core as mx
import numpy as np
from mlx import nn

from spike_lib.core.neurons import decay_init
from spike_lib.mlx_impl.attention import _check_heads, merge_heads, split_heads
from spike_lib.mlx_impl.layers import Linear
from spike_lib.mlx_impl.neurons import LIF


def token_shift(x):
    """x shifted one token later along the L axis (-2): out[..., l, :] = x[..., l-1, :], 0 at l=0."""
    pad = mx.zeros((*x.shape[:-2], 1, x.shape[-1]), dtype=x.dtype)
    return mx.concatenate([pad, x[..., :-1, :]], axis=-2)


def causal_mask(n_tok):
    """(L, L) float mask: M[l, j] = 1 if j <= l else 0."""
    return mx.array(np.tril(np.ones((n_tok, n_tok), np.float32)))


def _default_neuron(kind):
    return LIF(beta=0.5, threshold=0.5 if kind == "attn" else 1.0)


class _Base(nn.Module):
    """Projections q, k, v, out (drawn from rng in that order) and the optional token shift.

    Token shift (SpikeGPT / RWKV time-mix, the short convolution of Based) with per-channel
    mixes mu_k, mu_v (learned, initialised as a ramp 0 ... 1 over the channels):
        x_k[l] = mu_k * x[l] + (1 - mu_k) * x[l-1]          x[-1] = 0
        x_v[l] = mu_v * x[l] + (1 - mu_v) * x[l-1]
    On spikes x, x_k W_K = x[l] (diag(mu_k) W_K) + x[l-1] (diag(1 - mu_k) W_K): two sums of
    weight rows selected by spikes, accumulates only.
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True):
        super().__init__()
        _check_heads(n_embd, n_head)
        self.n_embd, self.n_head, self.shift = n_embd, n_head, bool(shift)
        self.causal = True
        for name in ("q", "k", "v", "out"):
            setattr(self, f"{name}_proj", Linear(n_embd, n_embd, rng, bias=bias))
        if self.shift:
            ramp = np.linspace(0.0, 1.0, n_embd, dtype=np.float32)
            self.shift_k = mx.array(ramp)
            self.shift_v = mx.array(ramp)
        self._neuron = neuron or _default_neuron

    def _inputs(self, x):
        """(x_q, x_k, x_v): x itself, or with token shift the mixes for K and V."""
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects (T, B, L, D), got shape {x.shape}")
        if not self.shift:
            return x, x, x
        prev = token_shift(x)
        return (x, self.shift_k * x + (1 - self.shift_k) * prev,
                self.shift_v * x + (1 - self.shift_v) * prev)


class MeanSDSA(_Base):
    """SDSA over the running mean of K AND V: a gate that does not saturate.

        Q, K, V = SN(x W_Q), SN(x_k W_K), SN(x_v W_V)                 spikes (T, B, L, D)
        m[l] = (1 / (l + 1)) sum_{j <= l} K[j] * V[j]        in [0, 1] (D-level spikes too)
        y[l] = (Q[l] * SN_attn(a * m[l])) W_O                         a: per-channel gain
    The running sum of SDSA (chapter 5) only grows, so its gate SN(sum) becomes a monotone
    OR; the mean m[l] can fall again. a (learned, initialised at 4) sets the fraction of
    tokens at which a channel opens: SN_attn fires when a m > attn_threshold.
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True, gain=4.0):
        super().__init__(n_embd, n_head, rng, neuron, shift, bias)
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_lif", self._neuron("qkv"))
        self.attn_lif = self._neuron("attn")
        self.gate_gain = mx.full((n_embd,), gain, dtype=mx.float32)

    def running(self, kv):
        """m[l] = mean_{j <= l} kv[j] over axis -2."""
        n = mx.arange(1, kv.shape[-2] + 1, dtype=kv.dtype)[:, None]
        return mx.cumsum(kv, axis=-2) / n

    def __call__(self, x, mask=None):
        xq, xk, xv = self._inputs(x)
        q = self.q_lif(self.q_proj(xq))  # (T, B, L, D) spikes
        k = self.k_lif(self.k_proj(xk))
        v = self.v_lif(self.v_proj(xv))
        g = self.attn_lif(self.gate_gain * self.running(k * v))  # (T, B, L, D)
        return self.out_proj(q * g)


def leak_matrix(w, n_tok):
    """W[c, l, j] = sigmoid(w_c)^(l - j) for j <= l, else 0, (C, L, L): a leak over tokens per
    channel (DecaySDSA) or per head (SpikeMatrixAttention(decay=True)), as the NumPy port's."""
    log_lam = -nn.softplus(-w)  # log sigmoid(w), (C,)
    pos = np.arange(n_tok)
    dist = mx.array(np.maximum(pos[:, None] - pos[None, :], 0).astype(np.float32))
    return mx.exp(log_lam[:, None, None] * dist) * causal_mask(n_tok)


class DecaySDSA(MeanSDSA):
    """SDSA over a per-channel decaying mean of K AND V (a leak over tokens):

        m[l] = sum_{j <= l} lambda^(l - j) K[j] V[j] / sum_{j <= l} lambda^(l - j)
        y[l] = (Q[l] * SN_attn(a * m[l])) W_O,   lambda = sigmoid(w) per channel (learned)
    lambda starts spread over the channels, 1 - 2^-1 ... 1 - 2^-7 (half-lives of 1 to 88
    tokens), as RetNet spreads its decays over heads. Computed as one (D, L, L) causal decay
    matrix per channel times kv (exact; the running form s = lambda s + kv is the same sum).
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True, gain=4.0):
        super().__init__(n_embd, n_head, rng, neuron, shift, bias, gain)
        lam = 1.0 - 2.0 ** -np.linspace(1.0, 7.0, n_embd)
        self.decay_logit = mx.array(np.log(lam / (1 - lam)).astype(np.float32))

    def decay_matrix(self, n_tok):
        """W[d, l, j] = lambda_d^(l - j) for j <= l, else 0; (D, L, L)."""
        return leak_matrix(self.decay_logit, n_tok)

    def running(self, kv):
        *lead, n_tok, d = kv.shape
        w = self.decay_matrix(n_tok)  # (D, L, L)
        flat = mx.moveaxis(kv.reshape(-1, n_tok, d), -1, 0)  # (D, N, L)
        s = flat @ mx.swapaxes(w, -1, -2)  # (D, N, L): s[d, n, l] = sum_j w[d, l, j] kv[d, n, j]
        s = s / w.sum(axis=-1)[:, None, :]
        return mx.moveaxis(s, 0, -1).reshape(*lead, n_tok, d)


class SpikeMatrixAttention(_Base):
    """Matrix-state spike-driven attention (the SDSA-3 / Spikformer SSA family), causal:

        Q, K, V = SN(x W_Q), SN(x_k W_K), SN(x_v W_V)         spikes, split into H heads
        A[l, j] = (Q[l] . K[j]) [j <= l]                      coincidences (i j / D^2 each)
        y[l] = SN_attn( sum_j A[l, j] V[j] / max(1, sum_j A[l, j]) ) W_O
    form="quadratic" builds A (L x L per head); form="running" keeps the d x d state
        S[l] = sum_{j <= l} K[j]^T V[j],  z[l] = sum_{j <= l} K[j],
        y[l] = SN_attn( Q[l] S[l] / max(1, Q[l] . z[l]) ) W_O
    the same numbers (integer sums for binary spikes, exact in float32), O(L d^2) instead of
    O(L^2 d).
    power p > 1 sharpens the lookup: A = (Q . K)^p (a real multiplication per score).
    With spike_levels = D the floor of the denominator is 1 / D^2, the smallest non-zero score
    (self.floor; 1 for binary spikes), as in the NumPy port.
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True,
                 form="quadratic", power=1, decay=False):
        super().__init__(n_embd, n_head, rng, neuron, shift, bias)
        if form not in ("quadratic", "running"):
            raise ValueError(f"form={form!r} is invalid: choose 'quadratic' or 'running'")
        if form == "running" and (power != 1 or decay):
            raise ValueError("power > 1 and decay have no running form here (the carried "
                             "generation has the decaying one): use form='quadratic'")
        self.form, self.power, self.decay = form, power, bool(decay)
        for name in ("q", "k", "v"):
            setattr(self, f"{name}_lif", self._neuron("qkv"))
        self.attn_lif = self._neuron("attn")
        self.floor = 1.0 / getattr(self.q_lif, "levels", 1) ** 2  # max(floor, sum A)
        if self.decay:
            self.decay_logit = mx.array(decay_init(n_head))

    def score_mask(self, n_tok):
        """(H, L, L) lambda_h^(l - j) [j <= l] with decay, else the causal mask (L, L)."""
        if not self.decay:
            return causal_mask(n_tok)
        return leak_matrix(self.decay_logit, n_tok)

    def mix(self, q, k, v):
        """sum_j A[l, j] V[j] / max(1, sum_j A[l, j]) for heads (..., H, L, hd)."""
        if self.form == "running":
            s = mx.cumsum(k[..., :, :, None] * v[..., :, None, :], axis=-3)  # (..., L, hd, hd)
            num = (q[..., :, None, :] @ s)[..., 0, :]  # (..., L, hd)
            den = (q * mx.cumsum(k, axis=-2)).sum(axis=-1, keepdims=True)
            return num / mx.maximum(den, self.floor)
        a = q @ mx.swapaxes(k, -1, -2)  # (..., H, L, L)
        if self.power != 1:
            a = a**self.power
        a = a * self.score_mask(q.shape[-2])
        return (a @ v) / mx.maximum(a.sum(axis=-1, keepdims=True), self.floor)

    def __call__(self, x, mask=None):
        xq, xk, xv = self._inputs(x)
        q, k, v = (split_heads(lif(p(xi)), self.n_head) for lif, p, xi in
                   ((self.q_lif, self.q_proj, xq), (self.k_lif, self.k_proj, xk),
                    (self.v_lif, self.v_proj, xv)))  # (T, B, H, L, hd) spikes
        return self.out_proj(self.attn_lif(merge_heads(self.mix(q, k, v))))


class HybridAttention(_Base):
    """Scores from membrane potentials, values and output as spikes:

        Q = x W_Q,  K = x_k W_K                   real: the membrane input before a threshold
        V = SN(x_v W_V)                           spikes
        A = softmax(Q K^T / sqrt(d_h) + M)        per timestep and head; M = -inf after l
        y = SN_attn(A V) W_O                      A V is a weighted fraction of V's spikes
    score="relu" uses A = ReLU(Q K^T / sqrt(d_h)) [j <= l] / (sum_j ReLU(...) + 1e-6) instead.
    x W_Q and x W_K are accumulates on spikes; Q K^T and A V are real multiplications (the
    energy report counts them as MACs).
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True,
                 score="softmax"):
        super().__init__(n_embd, n_head, rng, neuron, shift, bias)
        if score not in ("softmax", "relu"):
            raise ValueError(f"score={score!r} is invalid: choose 'softmax' or 'relu'")
        self.score = score
        self.v_lif = self._neuron("qkv")
        self.attn_lif = self._neuron("attn")

    def weights(self, q, k):
        """The attention weights A (..., H, L, L) of real q, k (..., H, L, hd)."""
        n_tok = q.shape[-2]
        s = (q @ mx.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
        m = causal_mask(n_tok)
        if self.score == "softmax":
            return mx.softmax(mx.where(m > 0, s, -1e9), axis=-1)
        a = nn.relu(s) * m
        return a / (a.sum(axis=-1, keepdims=True) + 1e-6)

    def __call__(self, x, mask=None):
        xq, xk, xv = self._inputs(x)
        q = split_heads(self.q_proj(xq), self.n_head)  # (T, B, H, L, hd) real
        k = split_heads(self.k_proj(xk), self.n_head)
        v = split_heads(self.v_lif(self.v_proj(xv)), self.n_head)  # spikes
        return self.out_proj(self.attn_lif(merge_heads(self.weights(q, k) @ v)))


class ShiftSoftmaxAttention(HybridAttention):
    """Softmax attention with token shift, all real-valued (the softmax twin of hybrid_shift):

        Q = x W_Q,  K = x_k W_K,  V = x_v W_V,  y = softmax(Q K^T / sqrt(d_h) + M) V W_O
    x_k, x_v as in _Base (token shift). No neurons: a plain transformer's attention.
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=True, bias=True):
        _Base.__init__(self, n_embd, n_head, rng, neuron, shift, bias)
        self.score = "softmax"

    def __call__(self, x, mask=None):
        xq, xk, xv = self._inputs(x)
        q, k, v = (split_heads(p(xi), self.n_head) for p, xi in
                   ((self.q_proj, xq), (self.k_proj, xk), (self.v_proj, xv)))
        return self.out_proj(merge_heads(self.weights(q, k) @ v))


# name -> (class, keyword arguments); Config(attention=name) builds it (mlx backend)
NAMES = {
    "sdsa_mean": (MeanSDSA, {}),
    "sdsa_decay": (DecaySDSA, {}),
    "sdsa_shift": (MeanSDSA, {"shift": True}),
    "sdsa_decay_shift": (DecaySDSA, {"shift": True}),
    "spike_matrix": (SpikeMatrixAttention, {}),
    "spike_matrix_running": (SpikeMatrixAttention, {"form": "running"}),
    "spike_matrix_shift": (SpikeMatrixAttention, {"shift": True}),
    "spike_matrix_decay": (SpikeMatrixAttention, {"decay": True}),
    "spike_matrix_decay_shift": (SpikeMatrixAttention, {"shift": True, "decay": True}),
    "hybrid": (HybridAttention, {}),
    "hybrid_relu": (HybridAttention, {"score": "relu"}),
    "hybrid_shift": (HybridAttention, {"shift": True}),
    "softmax_shift": (ShiftSoftmaxAttention, {}),
}


def make_context_attention(cfg, rng):
    """The attention named cfg.attention (a key of NAMES), its neurons from cfg (the twin's too)."""
    from spike_lib.mlx_impl.blocks import make_neuron  # blocks dispatches here: import late

    if cfg.attention not in NAMES:
        raise ValueError(f"attention={cfg.attention!r} is not a context attention: choose one "
                         f"of {sorted(NAMES)}")
    cls, kw = NAMES[cfg.attention]
    return cls(cfg.n_embd, cfg.n_head, rng, neuron=lambda kind: make_neuron(cfg, kind), **kw)

