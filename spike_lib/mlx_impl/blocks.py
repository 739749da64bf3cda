"""The SpikeLLM block in MLX: LayerNorm -> LIF -> causal SDSA, membrane shortcut, LayerNorm -> LIF -> MLP.

Same sub-module names as spike_lib/numpy_impl/blocks.py (ln1, sn1, attn, ln2, sn2, fc1,
sn_hidden, fc2), so the parameter names of a checkpoint are identical in both ports.
Taught in: notebooks/07_mlx_port.ipynb
"""

import mlx.core as mx
from mlx import nn

from spike_lib.core import plugins
from spike_lib.core.neurons import fired
from spike_lib.core.surrogate import get_surrogate
from spike_lib.mlx_impl.attention import SDSA, SoftmaxAttention
from spike_lib.mlx_impl.layers import GELU, Dropout, LayerNorm, Linear
from spike_lib.mlx_impl.neurons import LIF, fire


class ClampLIF(LIF):
    """LIF whose membrane is clipped before it fires: u[t] = clip(beta v[t-1] + x[t], -c, c).

    s[t] = (1/D) sum_{k=1..D} H(u[t] - k threshold / D) (H(u[t] - threshold) for D = levels = 1),
    v[t] = u[t] - threshold s[t] (or u[t](1 - min(D s[t], 1)) for "zero").
    The clip's gradient is 1 inside [-c, c] (boundary included) and 0 outside.
    """

    def __init__(self, mem_clamp, **lif):
        super().__init__(**lif)
        if not mem_clamp > self.threshold:
            raise ValueError(f"mem_clamp={mem_clamp} must exceed threshold={self.threshold}")
        self.mem_clamp = float(mem_clamp)

    def __call__(self, x):
        sg, th, c, d = self.surrogate, self.threshold, self.mem_clamp, self.levels
        v = mx.zeros(x.shape[1:], dtype=x.dtype)
        spks = []
        for t in range(x.shape[0]):
            u = self.beta * v + x[t]
            # the clip passes the gradient at |u| = c too, as the NumPy ClampLIF (mx.clip does not;
            # sums of spikes can land exactly on the clamp)
            u = mx.where(mx.abs(u) <= c, u, mx.clip(u, -c, c))
            s = fire(u, th, d, sg, self.smooth)
            r = mx.stop_gradient(s) if self.detach_reset else s
            v = u - th * r if self.reset == "subtract" else u * (1.0 - fired(r, d, mx))
            spks.append(s)
        spk = mx.stack(spks)
        object.__setattr__(self, "last_spk", mx.stop_gradient(spk))
        return spk


class SmoothGate(nn.Module):
    """y = G(x - threshold), G the surrogate's antiderivative: the twin's stand-in for SN."""

    def __init__(self, threshold, surrogate="arctan", surrogate_scale=None):
        super().__init__()
        self.threshold = threshold
        self.surrogate = get_surrogate(surrogate, surrogate_scale)

    def __call__(self, x):
        return self.surrogate.smooth(x - self.threshold, xp=mx).astype(x.dtype)


def make_neuron(cfg, kind):
    """The neuron of type kind ("in", "qkv", "attn", "hidden"), as numpy_impl.blocks.make_neuron."""
    th = cfg.thresholds()[kind]
    if not cfg.spiking:
        return SmoothGate(th, cfg.surrogate, cfg.surrogate_scale) if kind == "attn" else GELU()
    if cfg.neuron != "lif":  # a plug-in (spike_lib.core.plugins), built with the same LIF arguments
        return plugins.build_neuron(cfg, kind, "mlx")
    lif = {**cfg.lif_kwargs(kind), "levels": cfg.spike_levels}
    return LIF(**lif) if cfg.mem_clamp is None else ClampLIF(cfg.mem_clamp, **lif)


def make_attention(cfg, rng):
    """Causal SDSA (its neurons from make_neuron), causal softmax attention or a plug-in."""
    if cfg.attention == "softmax":
        return SoftmaxAttention(cfg.n_embd, cfg.n_head, rng, causal=True)
    if cfg.attention != "sdsa":  # a plug-in (spike_lib.core.plugins): factory(cfg, rng)
        return plugins.build_attention(cfg, rng, "mlx")
    th = cfg.thresholds()
    attn = SDSA(cfg.n_embd, cfg.n_head, rng, causal=True, beta=cfg.beta, threshold=th["qkv"],
                attn_threshold=th["attn"], reset=cfg.reset, surrogate=cfg.surrogate,
                surrogate_scale=cfg.surrogate_scale, detach_reset=cfg.detach_reset,
                levels=cfg.spike_levels)
    if not cfg.spiking or cfg.mem_clamp is not None or cfg.neuron != "lif":
        # swap in the twin's, the clamped or the plug-in neurons
        for name in ("q_lif", "k_lif", "v_lif"):
            setattr(attn, name, make_neuron(cfg, "qkv"))
        attn.attn_lif = make_neuron(cfg, "attn")
    return attn


class Block(nn.Module):
    """One SpikeLLM block with membrane shortcuts (Spike-driven Transformer V2, Yao et al. 2024):

        x = x + Attn(SN_in(LN_1(x)))                   Attn = causal SDSA or softmax attention
        x = x + W_2 SN_hidden(W_1 SN_in(LN_2(x)))      the MLP
    x is the residual stream of membrane potentials, (T, B, L, D).
    """

    def __init__(self, cfg, rng):
        super().__init__()
        d = cfg.n_embd
        self.ln1 = LayerNorm(d)
        self.sn1 = make_neuron(cfg, "in")
        self.attn = make_attention(cfg, rng)
        self.ln2 = LayerNorm(d)
        self.sn2 = make_neuron(cfg, "in")
        self.fc1 = Linear(d, cfg.d_ff, rng)
        self.sn_hidden = make_neuron(cfg, "hidden")
        self.fc2 = Linear(cfg.d_ff, d, rng)
        self.drop1 = Dropout(cfg.dropout) if cfg.dropout > 0 else None
        self.drop2 = Dropout(cfg.dropout) if cfg.dropout > 0 else None

    def __call__(self, x):
        a = self.attn(self.sn1(self.ln1(x)))  # (T, B, L, D)
        x = x + (a if self.drop1 is None else self.drop1(a))
        h = self.fc2(self.sn_hidden(self.fc1(self.sn2(self.ln2(x)))))  # (T, B, L, D)
        return x + (h if self.drop2 is None else self.drop2(h))
