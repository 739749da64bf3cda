"""One new token of the NumPy SpikeLLM in few array operations: the fast path of the carried step.

spike_lib.numpy_impl.generate.step runs a chunk of n tokens module by module. For n = 1 (every
sampled token) most of that time is Python overhead around tiny arrays, so this module builds a
plan once per sequence and then runs each token with a handful of NumPy calls per layer:

- the three projections Q, K, V are one GEMM; with token shift it also computes this token's
  share of the next token's K and V (kept as state["kv_ahead"]): the fused matrix of
  spike_lib.core.fused_plan (shared with the MLX port);
- one LIF call covers Q, K and V (same neuron parameters), its loop over the T timesteps in
  place; LayerNorm without its backward cache.
The numbers are the module path's up to float32 rounding (the fused weights multiply in another
order); the state is the same dict, so the two paths can alternate. Attentions other than SDSA,
the running-mean SDSA and the matrix-state attention (power 1, with or without its leak) keep
their module step. Spikes of D + 1 levels (Config.spike_levels) take the same path: a matmul
of spikes j/D still reads only the weight rows of the inputs that fired.
The plan copies the weights: a model changed during a sequence needs a new state.
Taught in: notebooks/07b_speed_and_generation.ipynb
"""

import functools

import numpy as np

from spike_lib.core.fused_plan import fused_kind, plain_lif, qkv_plan
from spike_lib.core.neurons import fired
from spike_lib.core.neurons import level_thresholds as core_levels
from spike_lib.numpy_impl.attention import SDSA
from spike_lib.numpy_impl.context_attention import DecaySDSA, MeanSDSA, SpikeMatrixAttention
from spike_lib.numpy_impl.layers import LayerNorm, Linear
from spike_lib.numpy_impl.neurons import LIF

GEMV_ROWS = 4  # matmul: up to this many rows, one matrix-vector product per row (_rows_times)
CLASSES = {"SDSA": SDSA, "MeanSDSA": MeanSDSA, "DecaySDSA": DecaySDSA,
           "SpikeMatrixAttention": SpikeMatrixAttention}


def _plain(mod):
    """(beta, threshold, reset, levels) of a built-in spiking LIF, else None (the module is
    called)."""
    return plain_lif(mod, LIF)


@functools.cache
def level_thresholds(th, levels):
    """The D thresholds k th / D as the LIF module holds them (float32), or [th] for D = 1."""
    return np.array(core_levels(th, levels), np.float32) if levels > 1 else [th]


def lif_steps(x, neuron):
    """Spikes of a LIF over axis 0 of x (T, ...): u = beta v + x[t], s = [u > th], v = u - th s.

    neuron: (beta, threshold, reset[, levels]) from _plain, or a module (then neuron(x)).
    levels = D > 1: s = (1/D) sum_k [u > k th / D], counted level by level and divided once,
    as the LIF module does, so the spikes are its numbers bit for bit."""
    if not isinstance(neuron, tuple):
        return neuron(x)
    beta, th, reset, *rest = neuron
    levels = rest[0] if rest else 1
    spk = np.empty_like(x)
    ths = level_thresholds(th, levels)
    above = np.empty(x.shape[1:], x.dtype) if levels > 1 else None
    u = x[0].copy()
    for t in range(x.shape[0]):
        if t:
            u *= beta
            u += x[t]
        np.greater(u, ths[0], out=spk[t])
        if levels > 1:
            for level in ths[1:]:
                spk[t] += np.greater(u, level, out=above)
            spk[t] /= np.float32(levels)
        if t + 1 < x.shape[0]:
            if reset == "subtract":
                u -= th * spk[t]
            else:
                u *= 1.0 - fired(spk[t], levels)
    return spk


def matmul(x, w, b, spikes=False):
    """x @ w (+ b) over the last axis, as one GEMM over the rows of every leading dim.

    spikes: x is sparse (0/1 spikes), so only the rows of w where some row of x spiked are read
    (the accumulate of chapter 2): x[:, c] @ w[c] over those columns c. A token's weights
    (about 17 MB for the book model) do not stay in the cache, so the bytes read set the time.
    np.take gathers the rows 1.4-1.7x faster than w[cols] at the book model's shapes.
    """
    flat = x.reshape(-1, x.shape[-1])
    if spikes:
        cols = np.flatnonzero(flat.any(axis=0))
        flat, w = np.take(flat, cols, axis=1), np.take(w, cols, axis=0)
    y = _rows_times(flat, w)
    if b is not None:
        y += b
    return y.reshape(*x.shape[:-1], w.shape[1])


def _rows_times(flat, w, few=GEMV_ROWS):
    """flat @ w; for at most `few` rows (a token's T rows), one matrix-vector product per row.

    OpenBLAS's sgemm packs all of w into its buffers on every call, which for 2 rows costs more
    than the product: at the book model's shapes two sgemv calls take 0.4-0.5 of one sgemm's
    time (measured: (2, 512) @ (512, 768) 163 us as one GEMM, 73 us as two GEMVs, one thread)."""
    if flat.shape[0] > few:
        return flat @ w
    y = np.empty((flat.shape[0], w.shape[1]), np.result_type(flat, w))
    for i in range(flat.shape[0]):
        np.dot(flat[i], w, out=y[i])
    return y


def layer_norm(x, ln):
    """LayerNorm.forward's numbers without its cache: (x - mean) / sqrt(var + eps) gamma + beta."""
    if type(ln) is not LayerNorm:
        return ln(x)
    n = x.shape[-1]  # np.mean and np.var's sums and divisions, without their wrappers
    d = x - np.add.reduce(x, axis=-1, keepdims=True) / n
    var = np.add.reduce(np.multiply(d, d), axis=-1, keepdims=True) / n
    d *= 1.0 / np.sqrt(var + ln.eps)
    d *= ln.params["gamma"]
    d += ln.params["beta"]
    return d


def _linear(lin):
    """(W, b) of a plain Linear, else the module itself."""
    if type(lin) is not Linear:
        return lin
    return lin.params["W"], lin.params.get("b")


def _apply(lin, x, spikes=False):
    return matmul(x, *lin, spikes) if isinstance(lin, tuple) else lin(x)


def _qkv_plan(attn):
    """The fused projection of SDSA, MeanSDSA (not decay) and SpikeMatrixAttention (power 1)."""
    m = attn.modules
    if fused_kind(attn, CLASSES) is None:
        return None
    lins = [m[f"{n}_proj"] for n in "qkv"]
    projections = [(lin.params["W"], lin.params.get("b")) if type(lin) is Linear else None
                   for lin in lins]
    shift = ((attn.params["shift_k"], attn.params["shift_v"])
             if getattr(attn, "shift", False) else None)
    p = qkv_plan(attn, CLASSES, projections, [_plain(m[f"{n}_lif"]) for n in "qkv"], shift)
    if p is None:
        return None
    p["kind"] = {"sdsa": SDSA, "mean": MeanSDSA, "matrix": SpikeMatrixAttention}[p["kind"]]
    p["qkv_lif"] = p["qkv_lif"] or [m[f"{n}_lif"] for n in "qkv"]
    p["attn_lif"], p["out"] = _plain(m["attn_lif"]) or m["attn_lif"], _linear(m["out_proj"])
    p["floor"] = getattr(attn, "floor", 1.0)
    p["lam"] = None  # the leak of spike_matrix_decay: sigmoid(w) per head, (H, 1, 1) float64
    if p["kind"] is SpikeMatrixAttention and getattr(attn, "decay", False):
        from spike_lib.numpy_impl.generate import leak

        p["lam"] = leak(attn)[:, None, None]
    return p


def plan(model):
    """Per block: the arrays and neuron parameters of a one-token step."""
    layers = []
    for block in model.blocks:
        m = block.modules
        sn1, sn2, snh = (_plain(m[k]) for k in ("sn1", "sn2", "sn_hidden"))
        layers.append({
            "ln1": m["ln1"], "sn1": sn1 or m["sn1"], "ln2": m["ln2"], "sn2": sn2 or m["sn2"],
            "snh": snh or m["sn_hidden"], "fc1": _linear(m["fc1"]), "fc2": _linear(m["fc2"]),
            "attn": m["attn"], "qkv": _qkv_plan(m["attn"]),
            "fires": sn1 is not None})
    return layers


def _attention(p, x, st, pos):
    """The fused attention of one token: x (T, B, 1, D) spikes of sn1 -> (T, B, 1, D)."""
    q_plan, d = p["qkv"], x.shape[-1]
    if not q_plan["shift"]:
        pre = matmul(x, q_plan["w"], q_plan["b"], p["fires"])  # (T, B, 1, 3D)
    else:  # 5D columns: + the previous token's share of K and V (fused_plan.fuse_qkv)
        out = matmul(x, q_plan["w"], None, p["fires"])
        ahead = st.pop("kv_ahead", None)  # the general path drops it when it moves x_last
        if ahead is None and "x_last" in st:
            ahead = matmul(st["x_last"], q_plan["w"][:, 3 * d:], None, p["fires"])
        st["x_last"], st["kv_ahead"] = x, out[..., 3 * d:]
        pre = out[..., :3 * d]
        if ahead is not None:
            pre[..., d:] += ahead
        if q_plan["b"] is not None:
            pre += q_plan["b"]
    neuron = q_plan["qkv_lif"]
    if isinstance(neuron, list):
        q, k, v = (lif_steps(pre[..., i * d:(i + 1) * d], n) for i, n in enumerate(neuron))
    else:
        spk = lif_steps(pre, neuron)
        q, k, v = spk[..., :d], spk[..., d:2 * d], spk[..., 2 * d:]
    kind, attn = q_plan["kind"], p["attn"]
    if kind is SpikeMatrixAttention:
        t, b, h = q.shape[0], q.shape[1], attn.n_head
        qh, kh, vh = (a.reshape(t, b, h, 1, d // h) for a in (q, k, v))  # (T, B, H, 1, hd)
        lam = q_plan["lam"]  # None, or the leak: S = lam S + K^T V, z = lam z + K in float64
        if "S" not in st:
            dt = q.dtype if lam is None else np.float64
            st["S"] = np.zeros((t, b, h, d // h, d // h), dt)
            st["z"] = np.zeros((t, b, h, 1, d // h), dt)
        elif lam is not None:
            st["S"] *= lam
            st["z"] *= lam
        st["S"] += np.swapaxes(kh, -1, -2) * vh  # S += K^T V, (T, B, H, hd, hd)
        st["z"] += kh
        num = (qh @ st["S"]).astype(q.dtype, copy=False)
        den = (qh * st["z"]).sum(axis=-1, keepdims=True).astype(q.dtype, copy=False)
        r = (num / np.maximum(den, q_plan["floor"])).reshape(t, b, 1, d)
        y = lif_steps(r, q_plan["attn_lif"])
        return _apply(q_plan["out"], y, isinstance(q_plan["attn_lif"], tuple))
    key = "s" if kind is SDSA else "sum"  # the running sum of K AND V, (T, B, 1, D)
    total = st[key] + k * v if key in st else k * v
    st[key] = total
    if kind is SDSA:
        g = lif_steps(total, q_plan["attn_lif"])
    else:  # MeanSDSA: the running mean
        g = lif_steps(attn.params["gate_gain"] * (total / np.float32(pos + 1)),
                      q_plan["attn_lif"])
    spikes = isinstance(neuron, tuple) and isinstance(q_plan["attn_lif"], tuple)
    return _apply(q_plan["out"], q * g, spikes)


def step_one(model, layers, idx, pos, states):
    """Logits (B, 1, V) of one new token per row of idx (B, 1) at position pos (clamped)."""
    from spike_lib.numpy_impl.generate import attention_step

    mods, cfg = model.modules, model.cfg
    x0 = mods["tok_emb"].params["W"][idx[:, 0]] + mods["pos_emb"].params["W"][
        min(pos, cfg.block_size - 1)]  # (B, D)
    x = np.broadcast_to(x0[:, None], (model.num_steps, *x0.shape[:1], 1, x0.shape[-1]))
    for p, st in zip(layers, states):
        a = lif_steps(layer_norm(x, p["ln1"]), p["sn1"])  # (T, B, 1, D)
        if p["qkv"] is not None:
            x = x + _attention(p, a, st, pos)
        else:
            x = x + attention_step(p["attn"], a, st, pos, p["fires"])
        a = lif_steps(layer_norm(x, p["ln2"]), p["sn2"])
        h = lif_steps(_apply(p["fc1"], a, isinstance(p["sn2"], tuple)), p["snh"])
        x += _apply(p["fc2"], h, isinstance(p["snh"], tuple))
    h = layer_norm(x.mean(axis=0), mods["ln_f"])  # (B, 1, D)
    if cfg.tie_weights:
        return _rows_times(h.reshape(-1, h.shape[-1]), mods["tok_emb"].params["W"].T).reshape(
            *h.shape[:-1], -1)
    return _apply(_linear(mods["lm_head"]), h)
