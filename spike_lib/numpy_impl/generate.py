"""Sampling text from the NumPy SpikeLLM, with a carried state: each new token costs one token's work.

The windowed sampler (spike_lib.core.sampling with carry_state=False) re-runs the whole
context for every new token. Here `step(model, idx, state)` runs only the new tokens:

- every LIF runs over the T timesteps of one token, never over positions, so LayerNorm,
  the neurons and the MLP of a new token need nothing from earlier tokens;
- the attentions need a summary of the earlier tokens, the state of each layer:
    sdsa                   the running sum of K AND V                       (T, B, 1, D)
    sdsa_mean, sdsa_shift  the running sum and the count                    (T, B, 1, D)
    sdsa_decay(_shift)     sum lambda^(l-j) K[j] V[j] and sum lambda^(l-j)  (T, B, 1, D), float64
    spike_matrix*          S = sum K[j]^T V[j] and z = sum K[j]             (T, B, H, hd, hd)
                           (power 1: the same integer sums as the L x L form, at any position;
                           spike_matrix_decay*: S = lambda S + K^T V, z = lambda z + K, float64)
    softmax, hybrid*, softmax_shift   a key/value cache                     (T, B, H, L, hd)
  and, with token shift ("_shift"), the previous token's attention input (T, B, 1, D).
Beyond block_size a running-state model carries on: positions >= block_size reuse the last
position embedding E_pos[block_size - 1] (clamped), and the state keeps every token since the
prompt. A key/value-cache model cannot: once the window slides, every token's position
embedding changes, so it recomputes the last block_size tokens (the windowed sampler's cost).
Taught in: notebooks/07b_speed_and_generation.ipynb (carried-state generation)
"""

import numpy as np

from spike_lib.core.sampling import generate_ids, generate_text, sample_logits, stream_text
from spike_lib.numpy_impl.attention import SDSA, SoftmaxAttention, merge_heads, split_heads
from spike_lib.numpy_impl.context_attention import (
    DecaySDSA,
    HybridAttention,
    MeanSDSA,
    ShiftSoftmaxAttention,
    SpikeMatrixAttention,
)
from spike_lib.numpy_impl.layers import Linear, softmax
from spike_lib.numpy_impl.neurons import LIF

NEG_INF = -1e9


FAST_PATH = True  # one-token steps through generate_fast; False: the general path (tests)

def embed(model, ids):
    """A text embedding: the final hidden states h (L, D) averaged over tokens -> (D,)."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
        raise ValueError("cannot embed an empty text: there is no token to average")
    ids = ids[-model.cfg.block_size:]
    model.train(False)
    return model.hidden(ids[None])[0].mean(axis=0)


# -- a few tokens at a time: spikes select weight rows -----------------------------------------
def _fires(mod) -> bool:
    """True if mod emits exact 0/1 spikes (a built-in binary LIF, not in smooth mode): only then
    may _linear gather weight rows; spikes j/D (levels > 1) take the matmul."""
    return isinstance(mod, LIF) and not mod.smooth and getattr(mod, "levels", 1) == 1


def _lif(mod, x):
    """mod(x) for a plain binary LIF without its bookkeeping (the same numbers); others,
    multi-level LIFs (levels > 1) included: mod(x)."""
    if (type(mod) is not LIF or mod.smooth or mod.reset not in ("subtract", "zero")
            or mod.levels != 1):
        return mod(x)
    spk, v, th = np.empty_like(x), 0.0, mod.threshold
    for t in range(x.shape[0]):
        u = mod.beta * v + x[t]
        spk[t] = u > th  # H(u - threshold)
        v = u - th * spk[t] if mod.reset == "subtract" else u * (1.0 - spk[t])
    return spk


def _linear(lin, x, spikes):
    """lin(x); for a few rows of spikes into a plain Linear, y = sum of the rows of W where x
    spiked (+ b): the accumulate of chapter 2, reading only the weights that spikes select."""
    flat = x.reshape(-1, x.shape[-1])
    if not spikes or type(lin) is not Linear or flat.shape[0] > 8:
        return lin(x)
    w = lin.params["W"]
    y = np.empty((flat.shape[0], w.shape[1]), w.dtype)
    for r in range(flat.shape[0]):
        y[r] = w[np.flatnonzero(flat[r])].sum(axis=0)
    if "b" in lin.params:
        y += lin.params["b"]
    return y.reshape(*x.shape[:-1], w.shape[1])


# -- the attentions, one new chunk of tokens at a time ------------------------------------------
def _shifted(attn, x, st):
    """(x_q, x_k, x_v) of the new tokens; with token shift the previous token comes from st."""
    if not getattr(attn, "shift", False):
        return x, x, x
    first = st.get("x_last", np.zeros_like(x[..., :1, :]))
    prev = np.concatenate([first, x[..., :-1, :]], axis=-2)
    st["x_last"] = x[..., -1:, :]
    st.pop("kv_ahead", None)  # generate_fast's product of the old x_last: out of date now
    mk, mv = attn.params["shift_k"], attn.params["shift_v"]
    return x, mk * x + (1 - mk) * prev, mv * x + (1 - mv) * prev


def _cached(st, k, v):
    """Append the new keys and values (..., n, hd) to the cache; returns all of them."""
    if "k" in st:
        k, v = np.concatenate([st["k"], k], axis=-2), np.concatenate([st["v"], v], axis=-2)
    st["k"], st["v"] = k, v
    return k, v


def _allowed(n_new, n_all):
    """(n, L) mask: new token i (position L - n + i) sees keys j <= L - n + i."""
    return np.arange(n_all)[None, :] <= np.arange(n_all - n_new, n_all)[:, None]


def _scores(q, k, score, dtype):
    """Attention weights of new queries q (..., n, hd) over every key k (..., L, hd)."""
    s = (q @ np.swapaxes(k, -1, -2)) * (1.0 / np.sqrt(q.shape[-1]))
    ok = _allowed(q.shape[-2], k.shape[-2])
    if score == "softmax":
        return softmax(np.where(ok, s, NEG_INF), axis=-1).astype(dtype)
    relu = np.maximum(s, 0.0) * ok
    return relu / (relu.sum(axis=-1, keepdims=True) + 1e-6)


def _running_mean(st, kv, pos):
    total = st.get("sum", 0.0) + np.cumsum(kv, axis=-2)
    st["sum"] = total[..., -1:, :]
    n = np.arange(pos + 1, pos + kv.shape[-2] + 1, dtype=kv.dtype)[:, None]
    return total / n


def leak(attn):
    """The per-channel or per-head rates lambda = sigmoid(decay_logit) of a leaking state, float64
    (the carried state's precision); used by this module and generate_fast."""
    return np.exp(-np.logaddexp(0.0, -attn.params["decay_logit"])).astype(np.float64)


def _decay_mean(attn, st, kv):
    """m[l] = num[l] / den[l], num[l] = lambda num[l-1] + kv[l], den[l] = lambda den[l-1] + 1."""
    lam = leak(attn)  # (D,)
    num = st.get("num", np.zeros(kv[..., :1, :].shape))
    den = st.get("den", 0.0)
    m = np.empty_like(kv)
    for i in range(kv.shape[-2]):
        num = lam * num + kv[..., i:i + 1, :]
        den = lam * den + 1.0
        m[..., i:i + 1, :] = num / den
    st["num"], st["den"] = num, den
    return m


def _matrix_mix(st, q, k, v, floor=1.0, lam=None):
    """Q[l] S[l] / max(floor, Q[l] . z[l]) from the running S = sum K^T V, z = sum K (heads);
    floor = SpikeMatrixAttention.floor (1, or 1 / D^2 for spikes of D + 1 levels).
    lam (H,): the decaying state S = lam S + K^T V, z = lam z + K, kept in float64."""
    dt = q.dtype if lam is None else np.float64
    s_state = st.get("S", np.zeros(q.shape[:-2] + (q.shape[-1],) * 2, dt))
    z = st.get("z", np.zeros(q.shape[:-2] + (1, q.shape[-1]), dt))
    num, den = np.empty_like(q), np.empty(q.shape[:-1] + (1,), q.dtype)
    lam = 1.0 if lam is None else lam.astype(np.float64)[:, None, None]  # (H, 1, 1)
    for i in range(q.shape[-2]):
        s_state = lam * s_state + k[..., i, :, None] * v[..., i, None, :]
        z = lam * z + k[..., i:i + 1, :]
        qi = q[..., i:i + 1, :]
        num[..., i:i + 1, :] = qi @ s_state
        den[..., i:i + 1, :] = (qi * z).sum(axis=-1, keepdims=True)
    st["S"], st["z"] = s_state, z
    return num / np.maximum(den, floor)


def attention_step(attn, x, st, pos, fires=False):
    """Output (T, B, n, D) of attention attn for n new tokens x at positions pos ... pos + n - 1.

    st is this layer's state (a dict, empty before the first token), updated in place;
    fires: x is made of 0/1 spikes.
    A plug-in attention takes part by defining step(x, st, pos) itself.
    """
    if hasattr(attn, "step"):
        return attn.step(x, st, pos)
    m = getattr(attn, "modules", {})
    if isinstance(attn, SDSA):
        spikes = fires and _fires(m["q_lif"])
        q, k, v = (_lif(m[f"{n}_lif"], _linear(m[f"{n}_proj"], x, fires)) for n in "qkv")
        s = st.get("s", 0.0) + np.cumsum(k * v, axis=-2)  # channel by channel: no head split
        st["s"] = s[..., -1:, :]
        g = _lif(m["attn_lif"], s)
        return _linear(m["out_proj"], q * g, spikes and _fires(m["attn_lif"]))
    if isinstance(attn, SoftmaxAttention):
        q, k, v = (split_heads(m[f"{n}_proj"](x), attn.n_head) for n in "qkv")
        k, v = _cached(st, k, v)
        return m["out_proj"](merge_heads(_scores(q, k, "softmax", x.dtype) @ v))
    xq, xk, xv = _shifted(attn, x, st)
    if isinstance(attn, MeanSDSA):
        q, k, v = attn._spikes("q", xq), attn._spikes("k", xk), attn._spikes("v", xv)
        kv = k * v
        mean = _decay_mean(attn, st, kv) if isinstance(attn, DecaySDSA) else _running_mean(
            st, kv, pos)
        return m["out_proj"](q * m["attn_lif"](attn.params["gate_gain"] * mean))
    if isinstance(attn, SpikeMatrixAttention):
        q, k, v = (split_heads(attn._spikes(n, xi), attn.n_head)
                   for n, xi in (("q", xq), ("k", xk), ("v", xv)))  # (T, B, H, n, hd)
        if attn.power == 1:
            lam = leak(attn) if getattr(attn, "decay", False) else None  # (H,)
            r = _matrix_mix(st, q, k, v, attn.floor, lam)
        else:  # (Q . K)^p has no running form: a key/value cache
            k, v = _cached(st, k, v)
            a = ((q @ np.swapaxes(k, -1, -2)) * _allowed(q.shape[-2], k.shape[-2])) ** attn.power
            r = (a @ v) / np.maximum(a.sum(axis=-1, keepdims=True), attn.floor)
        return m["out_proj"](m["attn_lif"](merge_heads(r)))
    if isinstance(attn, HybridAttention):
        q = split_heads(m["q_proj"](xq), attn.n_head)
        k = split_heads(m["k_proj"](xk), attn.n_head)
        real_v = isinstance(attn, ShiftSoftmaxAttention)
        v = split_heads(m["v_proj"](xv) if real_v else attn._spikes("v", xv), attn.n_head)
        k, v = _cached(st, k, v)
        y = merge_heads(_scores(q, k, attn.score, x.dtype) @ v)
        return m["out_proj"](y if real_v else m["attn_lif"](y))
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
    return all(hasattr(b.modules["attn"], "step") or isinstance(b.modules["attn"], known)
               for b in model.blocks)


def step(model, idx, state=None):
    """(logits (B, n, V), state) of n new tokens idx (B, n) after the tokens state has seen.

    state=None starts a sequence. Equal to model(all ids)[:, -n:] while the sequence fits in
    block_size (dropout off: this is inference). Past block_size see the module docstring.
    """
    cfg = model.cfg
    idx = np.asarray(idx)
    idx = idx[None] if idx.ndim == 1 else idx
    if state is None:
        state = {"pos": 0, "layers": [{} for _ in model.blocks],
                 "running": all(is_running(b.modules["attn"]) for b in model.blocks)}
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
        return np.concatenate(parts, axis=1), state
    idx = model.check_idx(idx)
    pos, n, mods = state["pos"], idx.shape[1], model.modules
    # one sampled token: the fused path (spike_lib.numpy_impl.generate_fast), which reads only
    # the weight rows of inputs that fired (spikes 1 or j/D alike)
    if n == 1 and FAST_PATH:
        from spike_lib.numpy_impl import generate_fast

        if "plan" not in state:
            state["plan"] = generate_fast.plan(model)
        logits = generate_fast.step_one(model, state["plan"], idx, pos, state["layers"])
        state["pos"] = pos + 1
        return logits, state
    positions = np.minimum(np.arange(pos, pos + n), cfg.block_size - 1)  # clamped past the end
    x0 = mods["tok_emb"](idx) + mods["pos_emb"](positions)  # (B, n, D)
    x = np.broadcast_to(x0, (model.num_steps,) + x0.shape)  # (T, B, n, D)
    for block, st in zip(model.blocks, state["layers"]):
        m = block.modules
        sn1, sn2, snh = m["sn1"], m["sn2"], m["sn_hidden"]
        x = x + attention_step(m["attn"], _lif(sn1, m["ln1"](x)), st, pos, _fires(sn1))
        h = _lif(snh, _linear(m["fc1"], _lif(sn2, m["ln2"](x)), _fires(sn2)))
        x = x + _linear(m["fc2"], h, _fires(snh))
    h = mods["ln_f"](x.mean(axis=0))
    logits = h @ mods["tok_emb"].params["W"].T if cfg.tie_weights else mods["lm_head"](h)
    state["pos"] = pos + n
    return logits, state


__all__ = ["attention_step", "embed", "generate_ids", "generate_text", "is_running",
           "sample_logits", "step", "stream_text", "supports_state"]
