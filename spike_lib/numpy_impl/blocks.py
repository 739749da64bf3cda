"""The SpikeLLM block: LayerNorm -> LIF -> causal SDSA, membrane shortcut, LayerNorm -> LIF -> MLP.

Also the neurons it is built from: ClampLIF (a LIF whose membrane is clipped) and SmoothGate
(the non-spiking twin's stand-in for the attention neuron SN).
Taught in: notebooks/05_spikellm_forward.ipynb
"""

import numpy as np

from spike_lib.core import plugins
from spike_lib.core.neurons import fire, fire_grad, fired, fired_grad
from spike_lib.core.surrogate import get_surrogate
from spike_lib.numpy_impl.attention import SDSA, SoftmaxAttention
from spike_lib.numpy_impl.layers import GELU, Dropout, LayerNorm, Linear
from spike_lib.numpy_impl.module import Module
from spike_lib.numpy_impl.neurons import LIF


class ClampLIF(LIF):
    """LIF whose membrane is clipped before it fires: u[t] = clip(beta v[t-1] + x[t], -c, c).

    s[t] = (1/D) sum_{k=1..D} H(u[t] - k threshold / D) (H(u[t] - threshold) for D = levels = 1),
    v[t] = u[t] - threshold s[t] (or u[t](1 - min(D s[t], 1)) for "zero").
    The clip bounds runaway (mostly negative) membranes; its gradient is 1 inside [-c, c] and 0
    outside, so BPTT is LIF's with du masked where the clip was active.
    """

    def __init__(self, mem_clamp, **lif):
        super().__init__(**lif)
        if not mem_clamp > self.threshold:
            raise ValueError(f"mem_clamp={mem_clamp} must exceed threshold={self.threshold}")
        self.mem_clamp = float(mem_clamp)

    def forward(self, x):
        sg, th, c, d = self.surrogate, self.threshold, self.mem_clamp, self.levels
        mem = np.empty_like(x)
        spk = np.empty_like(x)
        inside = np.empty(x.shape, bool)
        v = np.zeros_like(x[0])
        for t in range(x.shape[0]):
            u = self.beta * v + x[t]
            inside[t] = np.abs(u) <= c
            u = np.clip(u, -c, c)
            s = fire(u, th, d, sg, self.smooth)
            v = u - th * s if self.reset == "subtract" else u * (1.0 - fired(s, d))
            mem[t], spk[t] = u, s
        self.cache = (mem, spk, inside)
        self.last_spk = spk
        return spk

    def backward(self, dspk):
        mem, spk, inside = self.cache
        th, sg, d = self.threshold, self.surrogate, self.levels
        dx = np.empty_like(mem)
        dv = np.zeros_like(mem[0])
        for t in reversed(range(mem.shape[0])):
            u, s = mem[t], spk[t]
            if self.reset == "subtract":
                du, ds = dv, dspk[t] - (0.0 if self.detach_reset else th * dv)
            else:
                dr = fired_grad(s, d)  # d min(D s, 1) / ds
                du = dv * (1.0 - fired(s, d))
                ds = dspk[t] - (0.0 if self.detach_reset else u * dv * dr)
            du = (du + ds * fire_grad(u, th, d, sg)) * inside[t]  # through s, then the clip
            dx[t] = du
            dv = self.beta * du
        return dx


class SmoothGate(Module):
    """y = G(x - threshold), G the surrogate's antiderivative (a sigmoid-like step in (0, 1)).

    The non-spiking twin's replacement for SDSA's neuron SN: a soft version of "is this channel
    on", without state. Backward: dx = dy * g(x - threshold).
    """

    def __init__(self, threshold, surrogate="arctan", surrogate_scale=None):
        super().__init__()
        self.threshold = threshold
        self.surrogate = get_surrogate(surrogate, surrogate_scale)

    def forward(self, x):
        self.x = x
        return self.surrogate.smooth(x - self.threshold).astype(x.dtype)

    def backward(self, dy):
        return dy * self.surrogate.grad(self.x - self.threshold).astype(dy.dtype)


def make_neuron(cfg, kind):
    """The neuron of type kind ("in", "qkv", "attn", "hidden") for this config.

    Spiking: LIF (ClampLIF when cfg.mem_clamp) with the type's threshold and cfg.spike_levels.
    Non-spiking twin: GELU, except the attention neuron SN which becomes a SmoothGate.
    """
    th = cfg.thresholds()[kind]
    if not cfg.spiking:
        return SmoothGate(th, cfg.surrogate, cfg.surrogate_scale) if kind == "attn" else GELU()
    if cfg.neuron != "lif":  # a plug-in (spike_lib.core.plugins), built with the same LIF arguments
        return plugins.build_neuron(cfg, kind, "numpy")
    lif = {**cfg.lif_kwargs(kind), "levels": cfg.spike_levels}
    return LIF(**lif) if cfg.mem_clamp is None else ClampLIF(cfg.mem_clamp, **lif)


def make_attention(cfg, rng):
    """Causal SDSA (its neurons from make_neuron), causal softmax attention or a plug-in."""
    if cfg.attention == "softmax":
        return SoftmaxAttention(cfg.n_embd, cfg.n_head, rng, causal=True)
    if cfg.attention != "sdsa":  # a plug-in (spike_lib.core.plugins): factory(cfg, rng)
        return plugins.build_attention(cfg, rng, "numpy")
    th = cfg.thresholds()
    attn = SDSA(cfg.n_embd, cfg.n_head, rng, causal=True, beta=cfg.beta, threshold=th["qkv"],
                attn_threshold=th["attn"], reset=cfg.reset, surrogate=cfg.surrogate,
                surrogate_scale=cfg.surrogate_scale, detach_reset=cfg.detach_reset,
                levels=cfg.spike_levels)
    if not cfg.spiking or cfg.mem_clamp is not None or cfg.neuron != "lif":
        # swap in the twin's, the clamped or the plug-in neurons
        for name in ("q_lif", "k_lif", "v_lif"):
            attn.modules[name] = make_neuron(cfg, "qkv")
        attn.modules["attn_lif"] = make_neuron(cfg, "attn")
    return attn


class Block(Module):
    """One SpikeLLM block with membrane shortcuts (Spike-driven Transformer V2, Yao et al. 2024):

        x = x + Attn(SN_in(LN_1(x)))                   Attn = causal SDSA or softmax attention
        x = x + W_2 SN_hidden(W_1 SN_in(LN_2(x)))      the MLP
    x is the residual stream of membrane potentials, (T, B, L, D), real-valued: only the
    branches see spikes, so no spike ever exceeds 1 (cfg.spike_levels D: values j/D). SN is a
    LIF carried over the T timesteps (never over token positions); LayerNorm acts on each
    (t, b, l) row.
    """

    def __init__(self, cfg, rng):
        super().__init__()
        d = cfg.n_embd
        self.add_module("ln1", LayerNorm(d))
        self.add_module("sn1", make_neuron(cfg, "in"))
        self.add_module("attn", make_attention(cfg, rng))
        self.add_module("ln2", LayerNorm(d))
        self.add_module("sn2", make_neuron(cfg, "in"))
        self.add_module("fc1", Linear(d, cfg.d_ff, rng))
        self.add_module("sn_hidden", make_neuron(cfg, "hidden"))
        self.add_module("fc2", Linear(cfg.d_ff, d, rng))
        if cfg.dropout > 0:
            self.add_module("drop1", Dropout(cfg.dropout, rng))
            self.add_module("drop2", Dropout(cfg.dropout, rng))

    def _drop(self, name, x, back=False):
        mod = self.modules.get(name)
        if mod is None:
            return x
        return mod.backward(x) if back else mod(x)

    def forward(self, x):
        m = self.modules
        a = m["attn"](m["sn1"](m["ln1"](x)))  # (T, B, L, D)
        x = x + self._drop("drop1", a)
        h = m["fc2"](m["sn_hidden"](m["fc1"](m["sn2"](m["ln2"](x)))))  # (T, B, L, D)
        return x + self._drop("drop2", h)

    def backward(self, dx):
        m = self.modules
        dh = self._drop("drop2", dx, back=True)
        dh = m["fc1"].backward(m["sn_hidden"].backward(m["fc2"].backward(dh)))
        dx = dx + m["ln2"].backward(m["sn2"].backward(dh))
        da = m["attn"].backward(self._drop("drop1", dx, back=True))
        return dx + m["ln1"].backward(m["sn1"].backward(da))
