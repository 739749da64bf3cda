"""One new token of the MLX SpikeLLM in few operations: the fast path of the carried step.

The port of spike_lib/numpy_impl/generate_fast.py (whose docstring derives the fused matrices):
Q, K, V as one matmul per layer (with token shift: the rows x, x_k, x_v times [W_Q | W_K | W_V],
keeping the diagonal blocks, so the weights are read once), one LIF over T for Q, K and V.
Here the whole token is one mx.compile'd function of (token, position row, layer states), so
MLX fuses the elementwise work of the LIF loops and runs the graph without Python in between.
Under mx.compile shapes are fixed, so the spike-selected weight rows of the NumPy path become
a fixed-capacity gather (TokenFunction: one compiled variant per capacity set, dense where too
many inputs fire for a gather to pay). Attentions other than SDSA, the running-mean SDSA and the
matrix-state attention (power 1) keep their module step inside the same compiled function.
Taught in: notebooks/07b_speed_and_generation.ipynb
"""

import mlx.core as mx
from mlx.utils import tree_flatten

from spike_lib.mlx_impl.attention import SDSA
from spike_lib.mlx_impl.context_attention import DecaySDSA, MeanSDSA, SpikeMatrixAttention
from spike_lib.mlx_impl.layers import LayerNorm, Linear
from spike_lib.mlx_impl.neurons import LIF


def _plain(mod):
    """(beta, threshold, reset) of a built-in spiking LIF, else None (the module is called)."""
    if type(mod) is LIF and not mod.smooth and mod.reset in ("subtract", "zero"):
        return (float(mod.beta), float(mod.threshold), mod.reset)
    return None


def lif_steps(x, neuron):
    """Spikes of a LIF over axis 0 of x (T, ...) for neuron = (beta, threshold, reset), or
    neuron(x) for a module: u = beta v + x[t], s = [u > th], v = u - th s (or u (1 - s)).

    No per-timestep slices and stack (each one an operation MLX dispatches): the membranes of
    all T steps are one array U, and step t adds beta v[t-1] to row t only (a 0/1 row mask),
    so the loop is T - 1 slices and elementwise work that mx.compile fuses.
    """
    if not isinstance(neuron, tuple):
        return neuron(x)
    beta, th, reset = neuron
    u, n = x, x.shape[0]
    for t in range(1, n):
        prev = u[t - 1:t]  # a slice, not u[t - 1] (a gather)
        s = (prev > th).astype(x.dtype)
        v = prev - th * s if reset == "subtract" else prev * (1.0 - s)
        u = u + _row(n, t, x.ndim, x.dtype) * (beta * v)  # u[t] = x[t] + beta v[t-1]; others + 0
    return (u > th).astype(x.dtype)


_ROWS = {}


def _row(n, t, ndim, dtype):
    """The constant (n, 1, ...) mask that is 1 at row t (made once, not once per token)."""
    key = (n, t, ndim, dtype)
    if key not in _ROWS:
        row = (mx.arange(n) == t).astype(dtype).reshape(n, *([1] * (ndim - 1)))
        mx.eval(row)
        _ROWS[key] = row
    return _ROWS[key]


def _norm(ln, x):
    return mx.fast.layer_norm(x, ln.gamma, ln.beta, ln.eps) if type(ln) is LayerNorm else ln(x)


def _linear(lin):
    """(W, b or None) of a plain Linear, else the module."""
    if type(lin) is not Linear:
        return lin
    return lin.W, (lin.b if "b" in lin else None)


def _apply(lin, x, gather=None):
    """lin(x): x @ W (+ b) as one batched matmul (no reshapes: each is one more operation).

    gather = (capacity, kind, counts): read only `capacity` rows of W, those of the input
    columns that are nonzero anywhere in x (spikes at any timestep), padded with silent ones
    (their zero inputs add exactly 0); counts[kind] keeps the largest number of nonzero columns
    seen, so the caller can tell when the capacity was too small (see TokenFunction)."""
    if not isinstance(lin, tuple):
        return lin(x)
    w, b = lin
    if gather is not None and gather[0] is not None and gather[0] < x.shape[-1]:
        cap, kind, counts = gather
        fired = (x != 0).reshape(-1, x.shape[-1]).any(axis=0)  # (K,)
        count = fired.astype(mx.int32).sum()
        counts[kind] = mx.maximum(counts[kind], count) if kind in counts else count
        rows = mx.argpartition(-fired.astype(mx.float32), kth=cap - 1)[:cap]  # fired first
        y = mx.take(x, rows, axis=-1) @ mx.take(w, rows, axis=0)
        return y if b is None else y + b
    return x @ w if b is None else x @ w + b


def _qkv_plan(attn):
    if isinstance(attn, DecaySDSA) or not isinstance(attn, (SDSA, MeanSDSA, SpikeMatrixAttention)):
        return None
    if isinstance(attn, SpikeMatrixAttention) and attn.power != 1:
        return None
    lins = [attn.q_proj, attn.k_proj, attn.v_proj]
    if any(type(lin) is not Linear for lin in lins) or len({"b" in lin for lin in lins}) > 1:
        return None
    wq, wk, wv = (lin.W for lin in lins)
    shift = bool(getattr(attn, "shift", False))
    w = mx.concatenate([wq, wk, wv], axis=1)  # (D, 3D)
    b = mx.concatenate([lin.b for lin in lins]) if "b" in lins[0] else None
    neurons = [_plain(getattr(attn, f"{n}_lif")) for n in "qkv"]
    same = neurons[0] is not None and neurons.count(neurons[0]) == 3
    mx.eval(w)
    return {"w": w, "b": b, "shift": shift, "kind": type(attn),
            "qkv_lif": neurons[0] if same else [getattr(attn, f"{n}_lif") for n in "qkv"],
            "attn_lif": _plain(attn.attn_lif) or attn.attn_lif, "out": _linear(attn.out_proj)}


def plan(model):
    """Per block: the fused weights and neuron parameters of a one-token step."""
    return [{"ln1": b.ln1, "ln2": b.ln2, "sn1": _plain(b.sn1) or b.sn1,
             "sn2": _plain(b.sn2) or b.sn2, "snh": _plain(b.sn_hidden) or b.sn_hidden,
             "fc1": _linear(b.fc1), "fc2": _linear(b.fc2), "attn": b.attn,
             "qkv": _qkv_plan(b.attn)} for b in model.blocks]


def _attention(p, x, st, pos, caps=None, counts=None):
    """The fused attention of one token: x (T, B, 1, D) -> (T, B, 1, D); st updated."""
    qp, attn = p["qkv"], p["attn"]
    if qp["shift"]:  # [x; x_k; x_v] @ [W_Q | W_K | W_V], keeping the diagonal blocks: three
        # rows where one would do, but the weights (which set the time) are read once
        prev = st.get("x_last", mx.zeros_like(x))
        st["x_last"] = x
        mk, mv = attn.shift_k, attn.shift_v
        rows = mx.stack([x, mk * x + (1 - mk) * prev, mv * x + (1 - mv) * prev])
        pre3 = _apply((qp["w"], qp["b"]), rows, _gather(caps, "qkv", counts))  # (3, T, B, 1, 3D)
        d = pre3.shape[-1] // 3
        pre = mx.concatenate([pre3[0, ..., :d], pre3[1, ..., d:2 * d], pre3[2, ..., 2 * d:]],
                             axis=-1)
    else:
        pre = _apply((qp["w"], qp["b"]), x, _gather(caps, "qkv", counts))  # (T, B, 1, 3D)
    d = pre.shape[-1] // 3
    if isinstance(qp["qkv_lif"], list):
        q, k, v = (lif_steps(pre[..., i * d:(i + 1) * d], n) for i, n in enumerate(qp["qkv_lif"]))
    else:
        spk = lif_steps(pre, qp["qkv_lif"])
        q, k, v = spk[..., :d], spk[..., d:2 * d], spk[..., 2 * d:]
    if qp["kind"] is SpikeMatrixAttention:
        t, b, h = q.shape[0], q.shape[1], attn.n_head
        qh, kh, vh = (a.reshape(t, b, h, 1, d // h) for a in (q, k, v))  # (T, B, H, 1, hd)
        s_state = mx.swapaxes(kh, -1, -2) * vh  # K^T V, (T, B, H, hd, hd)
        if "S" in st:
            s_state, kh = st["S"] + s_state, st["z"] + kh
        st["S"], st["z"] = s_state, kh
        r = (qh @ s_state) / mx.maximum((qh * kh).sum(axis=-1, keepdims=True), 1.0)
        return _apply(qp["out"], lif_steps(r.reshape(t, b, 1, d), qp["attn_lif"]),
                      _gather(caps, "out", counts))
    key = "s" if qp["kind"] is SDSA else "sum"  # the running sum of K AND V, (T, B, 1, D)
    total = st[key] + k * v if key in st else k * v
    st[key] = total
    if qp["kind"] is not SDSA:  # MeanSDSA: the running mean
        total = attn.gate_gain * (total / (pos + 1))
    return _apply(qp["out"], q * lif_steps(total, qp["attn_lif"]), _gather(caps, "out", counts))


def _gather(caps, kind, counts):
    return None if caps is None else (caps.get(kind), kind, counts)


def forward_one(model, layers, idx, positions, pos, states, caps=None):
    """(logits (B, 1, V), new layer states) of one token per row of idx (B, 1); pure MLX, so it
    can be compiled with the states as inputs and outputs. With caps ({"qkv", "out", "fc1",
    "fc2"}: capacity or None for dense), the spike-input matmuls read only the rows of the
    columns that fired (see _apply) and a third output holds {kind: largest count}."""
    counts = {}
    from spike_lib.mlx_impl.generate import attention_step

    states = [dict(st) for st in states]
    x0 = model.tok_emb(idx) + model.pos_emb(positions)  # (B, 1, D)
    x = mx.broadcast_to(x0, (model.num_steps, *x0.shape))  # (T, B, 1, D)
    for p, st in zip(layers, states):
        a = lif_steps(_norm(p["ln1"], x), p["sn1"])
        x = x + (_attention(p, a, st, pos, caps, counts) if p["qkv"] is not None
                 else attention_step(p["attn"], a, st, pos))
        h = lif_steps(_apply(p["fc1"], lif_steps(_norm(p["ln2"], x), p["sn2"]),
                             _gather(caps, "fc1", counts)), p["snh"])
        x = x + _apply(p["fc2"], h, _gather(caps, "fc2", counts))
    h = model.ln_f(x.mean(axis=0))
    logits = h @ model.tok_emb.W.T if model.cfg.tie_weights else model.lm_head(h)
    return (logits, states) if caps is None else (logits, states, counts)


class TokenFunction:
    """The compiled one-token step of a running-state model, reading only the weight rows of
    the inputs that spiked where that pays: one mx.compile'd forward_one per capacity set.

    Under mx.compile shapes are fixed, so each spike-input matmul (Q/K/V, the attention output,
    fc1, fc2) gathers a fixed number of rows, `caps[kind]`, a power of two. After each token
    the largest count of fired inputs is read back; if it exceeded a capacity, that capacity
    grows to the next power of two and the token is recomputed (the inputs are unchanged, so
    this is exact). A capacity above a quarter of the width turns into the dense matmul
    (None): gathering that many rows costs more than reading them all. Capacities only grow,
    so a model compiles a few variants, during its first tokens.
    """

    def __init__(self, model, layers):
        self.model, self.layers, self.fns = model, layers, {}
        cfg = model.cfg
        self.width = {"qkv": cfg.n_embd, "out": cfg.n_embd, "fc1": cfg.n_embd, "fc2": cfg.d_ff}
        self.caps = {k: self._cap(w // 16, w) for k, w in self.width.items()}

    @staticmethod
    def _cap(count, width):
        cap = 16
        while cap < count:
            cap *= 2
        return cap if cap <= width // 4 else None

    def function(self, caps):
        """The compiled forward_one for these capacities (traced once per capacity set); all
        dense: the plain forward_one, with no counts."""
        key = tuple(sorted(caps.items()))
        if key not in self.fns:
            dense = all(c is None for c in caps.values())
            self.fns[key] = mx.compile(lambda *args: forward_one(
                self.model, self.layers, *args, caps=None if dense else dict(caps)))
        return self.fns[key]

    def __call__(self, idx, positions, pos, states):
        while True:
            caps = dict(self.caps)
            out = self.function(caps)(idx, positions, pos, states)
            if len(out) == 2:  # every matmul dense
                return out
            logits, new, counts = out
            mx.eval(logits, new, counts)
            grown = {k: self._cap(int(c.item()), self.width[k]) for k, c in counts.items()
                     if caps[k] is not None and int(c.item()) > caps[k]}
            if not grown:
                return logits, new
            self.caps.update(grown)


_CACHE = {}  # id(model) -> (its parameter arrays, plan, function): at most 4 models


def cached(model, running):
    """(plan, function of (idx, positions, pos, states)) for the model's current weights.

    A running state has fixed shapes, so the function is a TokenFunction (mx.compile'd), and
    reused by every sequence until a parameter array of the model changes (MLX arrays are
    immutable: training or loading puts new arrays in place, which starts a new plan); the
    first token of a new sequence then costs no tracing. A key/value cache grows, so that
    function is not compiled.
    """
    params = [v for _, v in tree_flatten(model.parameters())]
    key = (id(model), bool(running))
    hit = _CACHE.get(key)
    if hit and len(hit[0]) == len(params) and all(a is b for a, b in zip(hit[0], params)):
        return hit[1], hit[2]
    layers = plan(model)
    if running:
        fn = TokenFunction(model, layers)
    else:
        def fn(*args):
            return forward_one(model, layers, *args)
    if len(_CACHE) >= 4:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (params, layers, fn)
    return layers, fn
