"""Sampling text from the MLX SpikeLLM, with a carried state: each new token costs one token's work.

The port of spike_lib/numpy_impl/generate.py (whose docstring lists each attention's state and
what happens past block_size): the same functions on mx arrays. The sampler of
spike_lib.core.sampling reads the model through check_idx, train, cfg, model(ctx), step and
carries_state, which the MLX SpikeLLM provides; embed returns a NumPy vector here too.
Taught in: notebooks/07b_speed_and_generation.ipynb
"""

import math

import mlx.core as mx
import numpy as np
from mlx import nn

from spike_lib.core.sampling import generate_ids, generate_text, sample_logits, stream_text
from spike_lib.mlx_impl.attention import SDSA, SoftmaxAttention, merge_heads, split_heads
from spike_lib.mlx_impl.context_attention import (
    DecaySDSA,
    HybridAttention,
    MeanSDSA,
    ShiftSoftmaxAttention,
    SpikeMatrixAttention,
)
from spike_lib.mlx_impl.neurons import LIF

NEG_INF = -1e9


FAST_PATH = True  # one-token steps through generate_fast; False: the general path (tests)

def embed(model, ids):
    """A text embedding: the final hidden states h (L, D) averaged over tokens -> (D,) NumPy."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
        raise ValueError("cannot embed an empty text: there is no token to average")
    model.train(False)
    return np.array(model.hidden(ids[-model.cfg.block_size:][None])[0].mean(axis=0))


def _lif(mod, x):
    """mod(x) for a plain binary LIF, without the surrogate's custom function (inference only:
    the same spikes, and mx.compile can fuse it); any other neuron, multi-level LIFs
    (levels > 1, spikes j/D) included: mod(x)."""
    if (type(mod) is not LIF or mod.smooth or mod.reset not in ("subtract", "zero")
            or mod.levels != 1):
        return mod(x)
    spks, v, th = [], 0.0, mod.threshold
    for t in range(x.shape[0]):
        u = mod.beta * v + x[t]
        s = (u > th).astype(x.dtype)  # H(u - threshold)
        v = u - th * s if mod.reset == "subtract" else u * (1.0 - s)
        spks.append(s)
    return mx.stack(spks)


def _spikes(attn, name, x):
    return _lif(getattr(attn, f"{name}_lif"), getattr(attn, f"{name}_proj")(x))


def _shifted(attn, x, st):
    """(x_q, x_k, x_v) of the new tokens; with token shift the previous token comes from st,
    st["x_last"]: its input (T B, D), the rows of the one-token path (generate_fast)."""
    if not getattr(attn, "shift", False):
        return x, x, x
    t, b, _, d = x.shape
    first = (st["x_last"].reshape(t, b, 1, d) if "x_last" in st
             else mx.zeros_like(x[..., :1, :]))
    prev = mx.concatenate([first, x[..., :-1, :]], axis=-2)
    st["x_last"] = x[..., -1, :].reshape(t * b, d)
    st.pop("kv_ahead", None)  # generate_fast's product of the old x_last: out of date now
    mk, mv = attn.shift_k, attn.shift_v
    return x, mk * x + (1 - mk) * prev, mv * x + (1 - mv) * prev


def _cached(st, k, v):
    if "k" in st:
        k, v = mx.concatenate([st["k"], k], axis=-2), mx.concatenate([st["v"], v], axis=-2)
    st["k"], st["v"] = k, v
    return k, v


def _allowed(n_new, n_all):
    """(n, L) mask: new token i (position L - n + i) sees keys j <= L - n + i."""
    return mx.array(np.arange(n_all)[None, :] <= np.arange(n_all - n_new, n_all)[:, None])


def _scores(q, k, score):
    s = (q @ mx.swapaxes(k, -1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    ok = _allowed(q.shape[-2], k.shape[-2])
    if score == "softmax":
        return mx.softmax(mx.where(ok, s, NEG_INF), axis=-1)
    relu = nn.relu(s) * ok
    return relu / (relu.sum(axis=-1, keepdims=True) + 1e-6)


def _running_mean(st, kv, pos):
    total = mx.cumsum(kv, axis=-2)
    if "sum" in st:
        total = total + st["sum"]
    st["sum"] = total[..., -1:, :]
    return total / (mx.arange(1, kv.shape[-2] + 1, dtype=kv.dtype) + pos)[:, None]  # pos: int or array


def leak(attn):
    """The per-channel or per-head rates lambda = sigmoid(decay_logit) of a leaking state; used by
    this module and generate_fast."""
    return mx.exp(-nn.softplus(-attn.decay_logit))


def _decay_mean(attn, st, kv):
    """m[l] = num[l] / den[l], num[l] = lambda num[l-1] + kv[l], den[l] = lambda den[l-1] + 1."""
    lam = leak(attn)  # (D,)
    num = st.get("num", mx.zeros_like(kv[..., :1, :]))
    den = st.get("den", mx.zeros_like(lam))
    out = []
    for i in range(kv.shape[-2]):
        num = lam * num + kv[..., i:i + 1, :]
        den = lam * den + 1.0
        out.append(num / den)
    st["num"], st["den"] = num, den
    return mx.concatenate(out, axis=-2)


def _matrix_mix(st, q, k, v, floor=1.0, lam=None):
    """Q[l] S[l] / max(floor, Q[l] . z[l]) from the running S = sum K^T V, z = sum K (heads);
    floor = SpikeMatrixAttention.floor (1, or 1 / D^2 for spikes of D + 1 levels).
    lam (H,): the decaying state S = lam S + K^T V, z = lam z + K."""
    s_state = st.get("S", mx.zeros((*q.shape[:-2], q.shape[-1], q.shape[-1]), dtype=q.dtype))
    z = st.get("z", mx.zeros((*q.shape[:-2], 1, q.shape[-1]), dtype=q.dtype))
    nums, dens = [], []
    lam = 1.0 if lam is None else lam[:, None, None]  # (H, 1, 1)
    for i in range(q.shape[-2]):
        s_state = lam * s_state + k[..., i, :, None] * v[..., i, None, :]
        z = lam * z + k[..., i:i + 1, :]
        qi = q[..., i:i + 1, :]
        nums.append(qi @ s_state)
        dens.append((qi * z).sum(axis=-1, keepdims=True))
    st["S"], st["z"] = s_state, z
    return mx.concatenate(nums, axis=-2) / mx.maximum(mx.concatenate(dens, axis=-2), floor)


def attention_step(attn, x, st, pos):
    """Output (T, B, n, D) of attn for n new tokens x at positions pos ... pos + n - 1 (as NumPy)."""
    if hasattr(attn, "step"):
        return attn.step(x, st, pos)
    if isinstance(attn, SDSA):
        q, k, v = (_spikes(attn, n, x) for n in "qkv")  # (T, B, n, D) spikes
        s = mx.cumsum(k * v, axis=-2)
        if "s" in st:
            s = s + st["s"]
        st["s"] = s[..., -1:, :]
        return attn.out_proj(q * _lif(attn.attn_lif, s))
    if isinstance(attn, SoftmaxAttention):
        q, k, v = (split_heads(p(x), attn.n_head) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        k, v = _cached(st, k, v)
        return attn.out_proj(merge_heads(_scores(q, k, "softmax") @ v))
    xq, xk, xv = _shifted(attn, x, st)
    if isinstance(attn, MeanSDSA):
        q, k, v = _spikes(attn, "q", xq), _spikes(attn, "k", xk), _spikes(attn, "v", xv)
        kv = k * v
        mean = _decay_mean(attn, st, kv) if isinstance(attn, DecaySDSA) else _running_mean(
            st, kv, pos)
        return attn.out_proj(q * _lif(attn.attn_lif, attn.gate_gain * mean))
    if isinstance(attn, SpikeMatrixAttention):
        q, k, v = (split_heads(_spikes(attn, n, xi), attn.n_head)
                   for n, xi in (("q", xq), ("k", xk), ("v", xv)))  # (T, B, H, n, hd)
        if attn.power == 1:
            lam = leak(attn) if getattr(attn, "decay", False) else None  # (H,)
            r = _matrix_mix(st, q, k, v, attn.floor, lam)
        else:
            k, v = _cached(st, k, v)
            a = ((q @ mx.swapaxes(k, -1, -2)) * _allowed(q.shape[-2], k.shape[-2])) ** attn.power
            r = (a @ v) / mx.maximum(a.sum(axis=-1, keepdims=True), attn.floor)
        return attn.out_proj(_lif(attn.attn_lif, merge_heads(r)))
    if isinstance(attn, HybridAttention):
        real_v = isinstance(attn, ShiftSoftmaxAttention)
        q = split_heads(attn.q_proj(xq), attn.n_head)
        k = split_heads(attn.k_proj(xk), attn.n_head)
        v = split_heads(attn.v_proj(xv) if real_v else _spikes(attn, "v", xv), attn.n_head)
        k, v = _cached(st, k, v)
        y = merge_heads(_scores(q, k, attn.score) @ v)
        return attn.out_proj(y if real_v else _lif(attn.attn_lif, y))
    raise ValueError(f"{type(attn).__name__} has no carried-state step: define "
                     "step(x, state, pos) on it, or sample with carry_state=False")


def is_running(attn) -> bool:
    """True if attn's state has a fixed size (so generation can go past block_size)."""
    if hasattr(attn, "step"):
        return bool(getattr(attn, "running_state", False))
    if isinstance(attn, SpikeMatrixAttention):
        return attn.power == 1
    return isinstance(attn, (SDSA, MeanSDSA))


def supports_state(model) -> bool:
    """True if every block's attention can be decoded with a carried state."""
    known = (SDSA, SoftmaxAttention, MeanSDSA, SpikeMatrixAttention, HybridAttention)
    return all(hasattr(b.attn, "step") or isinstance(b.attn, known) for b in model.blocks)


def step(model, idx, state=None):
    """(logits (B, n, V), state) of n new tokens idx (B, n) after the tokens state has seen.

    As spike_lib.numpy_impl.generate.step: equal to model(all ids)[:, -n:] within block_size,
    dropout off; past it a running-state model clamps the position embedding, a key/value
    cache model recomputes its window.
    """
    cfg = model.cfg
    idx = np.asarray(idx)
    idx = idx[None] if idx.ndim == 1 else idx
    if state is None:
        state = {"pos": 0, "layers": [{} for _ in model.blocks],
                 "running": all(is_running(b.attn) for b in model.blocks)}
    if not state["running"]:
        ids = idx if state["pos"] == 0 else np.concatenate([state["ids"], idx], axis=1)
        if ids.shape[1] > cfg.block_size:  # the window slides: recompute it from scratch
            logits, state = step(model, ids[:, -cfg.block_size:])
            return logits[:, -idx.shape[1]:], state
        state["ids"] = ids
    if idx.shape[1] > cfg.block_size:  # a long prompt of a running model: in chunks
        parts = []
        for i in range(0, idx.shape[1], cfg.block_size):
            logits, state = step(model, idx[:, i:i + cfg.block_size], state)
            parts.append(logits)
        return mx.concatenate(parts, axis=1), state
    idx = model.check_idx(idx)
    pos, n = state["pos"], idx.shape[1]
    positions = mx.array(np.minimum(np.arange(pos, pos + n), cfg.block_size - 1))
    # one sampled token: the fused path (spike_lib.mlx_impl.generate_fast), for 0/1 spikes and
    # spikes j/D alike
    if n == 1 and pos > 0 and FAST_PATH:
        from spike_lib.mlx_impl import generate_fast

        if "plan" not in state:  # compiled once per model and weights (generate_fast.cached)
            state["plan"], state["compiled"] = generate_fast.cached(model, state["running"])
        logits, state["layers"] = state["compiled"](idx, positions, mx.array(float(pos)),
                                                    state["layers"])
    else:
        logits, state["layers"] = _forward(model, idx, positions, pos, state["layers"])
    mx.eval(logits, state["layers"])  # the state stays a few arrays, not a growing graph
    state["pos"] = pos + n
    return logits, state


def _forward(model, idx, positions, pos, layers):
    """(logits, new layer states) of new tokens idx at positions (clamped), first one at pos."""
    layers = [dict(st) for st in layers]
    x0 = model.tok_emb(idx) + model.pos_emb(positions)  # (B, n, D)
    x = mx.broadcast_to(x0, (model.num_steps, *x0.shape))  # (T, B, n, D)
    for block, st in zip(model.blocks, layers):
        x = x + attention_step(block.attn, _lif(block.sn1, block.ln1(x)), st, pos)
        x = x + block.fc2(_lif(block.sn_hidden, block.fc1(_lif(block.sn2, block.ln2(x)))))
    h = model.ln_f(x.mean(axis=0))
    return (h @ model.tok_emb.W.T if model.cfg.tie_weights else model.lm_head(h)), layers


__all__ = ["attention_step", "embed", "generate_ids", "generate_text", "is_running",
           "sample_logits", "step", "stream_text", "supports_state"]
