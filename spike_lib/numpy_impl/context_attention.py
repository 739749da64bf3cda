"""Attentions that read their context, in NumPy with hand-written backward passes (issue 13).

The port of spike_lib/mlx_impl/context_attention.py: the same classes, arguments, parameter
names and NAMES. Every class maps (T, B, L, D) to (T, B, L, D) causally (output l never reads
a token after l); selected by name through Config.attention:
    sdsa_mean, sdsa_shift             MeanSDSA: SDSA over the running mean of K AND V
    sdsa_decay, sdsa_decay_shift      DecaySDSA: over a per-channel decaying mean
    spike_matrix, spike_matrix_shift  SpikeMatrixAttention: normalised (Q K^T masked) V on spikes
    spike_matrix_running              the same numbers from the running state K^T V
    spike_matrix_decay(_shift)        the scores decay with distance, a learned leak per head
    hybrid, hybrid_relu, hybrid_shift HybridAttention: real scores, spiking V and output
    softmax_shift                     ShiftSoftmaxAttention: real softmax attention with shift
"_shift" adds the token shift (the previous token's input mixed into K and V).
Each backward is its forward's lines in reverse; smooth mode (Module.set_smooth) makes every
spike differentiable for finite-difference checks (tests/test_context_attention.py).
Taught in: the recall section (chapter 5).
"""

import math

import numpy as np

from spike_lib.core.neurons import decay_init  # noqa: F401 (SpikeMatrixAttention's leak; re-exported)
from spike_lib.numpy_impl.attention import NEG_INF, merge_heads, reverse_cumsum, split_heads
from spike_lib.numpy_impl.layers import Linear, softmax
from spike_lib.numpy_impl.module import Module
from spike_lib.numpy_impl.neurons import LIF


def token_shift(x):
    """x shifted one token later along the L axis (-2): out[..., l, :] = x[..., l-1, :], 0 at l=0."""
    out = np.zeros_like(x)
    out[..., 1:, :] = x[..., :-1, :]
    return out


def token_shift_backward(dout):
    """The backward of token_shift: dx[..., l, :] = dout[..., l+1, :], 0 at the last token."""
    dx = np.zeros_like(dout)
    dx[..., :-1, :] = dout[..., 1:, :]
    return dx


def causal_mask(n_tok, dtype=np.float32):
    """(L, L) float mask: M[l, j] = 1 if j <= l else 0."""
    return np.tril(np.ones((n_tok, n_tok), dtype))


def leak_matrix(w, n_tok):
    """W[c, l, j] = sigmoid(w_c)^(l - j) for j <= l, else 0, (C, L, L), and the distances l - j:
    a leak over tokens per channel (DecaySDSA) or per head (SpikeMatrixAttention(decay=True))."""
    log_lam = -np.logaddexp(0.0, -w)  # log sigmoid(w), (C,)
    pos = np.arange(n_tok)
    dist = np.maximum(pos[:, None] - pos[None, :], 0).astype(w.dtype)
    return np.exp(log_lam[:, None, None] * dist) * causal_mask(n_tok, w.dtype), dist


def _default_neuron(kind):
    return LIF(beta=0.5, threshold=0.5 if kind == "attn" else 1.0)


def _check_heads(n_embd, n_head):
    if not isinstance(n_head, int) or n_head < 1:
        raise ValueError(f"n_head={n_head!r} is invalid: it must be an integer >= 1")
    if n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} is invalid: it must be divisible by n_head={n_head}")


def _sum_to_channels(a, d):
    """Sum every axis but the last: the gradient of a (D,) parameter broadcast over a."""
    return a.reshape(-1, d).sum(axis=0)


class _Base(Module):
    """Projections q, k, v, out (drawn from rng in that order) and the optional token shift.

        x_k[l] = mu_k * x[l] + (1 - mu_k) * x[l-1]          x[-1] = 0
        x_v[l] = mu_v * x[l] + (1 - mu_v) * x[l-1]
    mu_k, mu_v (parameters shift_k, shift_v) start as a ramp 0 ... 1 over the channels.
    Backward: dmu = sum (dx_k * (x[l] - x[l-1])); x gets mu dx_k here and (1 - mu) dx_k one
    token earlier.
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True):
        super().__init__()
        _check_heads(n_embd, n_head)
        self.n_embd, self.n_head, self.shift = n_embd, n_head, bool(shift)
        self.causal = True
        for name in ("q", "k", "v", "out"):
            self.add_module(f"{name}_proj", Linear(n_embd, n_embd, rng, bias=bias))
        if self.shift:
            ramp = np.linspace(0.0, 1.0, n_embd, dtype=np.float32)
            self.add_param("shift_k", ramp.copy())
            self.add_param("shift_v", ramp.copy())
        self._neuron = neuron or _default_neuron

    def _inputs(self, x, mask=None):
        """(x_q, x_k, x_v): x itself, or with token shift the mixes for K and V."""
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects (T, B, L, D), got shape {x.shape}")
        if mask is not None:
            raise ValueError(f"{type(self).__name__} is a causal language-model attention and "
                             "takes no padding mask: crop the batch to equal lengths")
        self.x_in = x  # for last_spikes (a reference, not a copy)
        if not self.shift:
            return x, x, x
        mk, mv = self.params["shift_k"], self.params["shift_v"]
        prev = token_shift(x)
        self.xdiff = x - prev  # (T, B, L, D)
        return x, mk * x + (1 - mk) * prev, mv * x + (1 - mv) * prev

    def _inputs_backward(self, dxq, dxk, dxv):
        if not self.shift:
            return dxq + dxk + dxv
        mk, mv = self.params["shift_k"], self.params["shift_v"]
        self.grads["shift_k"] += _sum_to_channels(dxk * self.xdiff, self.n_embd)
        self.grads["shift_v"] += _sum_to_channels(dxv * self.xdiff, self.n_embd)
        dprev = (1 - mk) * dxk + (1 - mv) * dxv
        return dxq + mk * dxk + mv * dxv + token_shift_backward(dprev)

    def _spikes(self, name, x):
        return self.modules[f"{name}_lif"](self.modules[f"{name}_proj"](x))

    def last_spikes(self) -> dict:
        """{"x", "q", "k", "v"}: the last forward's input and Q, K, V spikes, (T, B, L, D) each,
        for spike_lib.core.energy.attention_rates (real-valued Q, K are left out)."""
        out = {"x": self.x_in}
        for name in "qkv":
            lif = self.modules.get(f"{name}_lif")
            if lif is not None and getattr(lif, "last_spk", None) is not None:
                out[name] = lif.last_spk
        return out

    def _spikes_backward(self, name, dspk):
        return self.modules[f"{name}_proj"].backward(self.modules[f"{name}_lif"].backward(dspk))


class MeanSDSA(_Base):
    """SDSA over the running mean of K AND V: a gate that does not saturate.

        Q, K, V = SN(x W_Q), SN(x_k W_K), SN(x_v W_V)                 spikes (T, B, L, D)
        m[l] = (1 / (l + 1)) sum_{j <= l} K[j] * V[j]        in [0, 1] (D-level spikes too)
        y[l] = (Q[l] * SN_attn(a * m[l])) W_O                         a: per-channel gain
    The running sum of SDSA (chapter 5) only grows, so its gate SN(sum) becomes a monotone
    OR; the mean m[l] can fall again. a (gate_gain, learned, initialised at 4) sets the
    fraction of tokens at which a channel opens: SN_attn fires when a m > attn_threshold.
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True, gain=4.0):
        super().__init__(n_embd, n_head, rng, neuron, shift, bias)
        for name in ("q", "k", "v"):
            self.add_module(f"{name}_lif", self._neuron("qkv"))
        self.add_module("attn_lif", self._neuron("attn"))
        self.add_param("gate_gain", np.full(n_embd, gain, dtype=np.float32))

    def running(self, kv):
        """m[l] = mean_{j <= l} kv[j] over axis -2."""
        n = np.arange(1, kv.shape[-2] + 1, dtype=kv.dtype)[:, None]
        return np.cumsum(kv, axis=-2) / n

    def running_backward(self, dm):
        n = np.arange(1, dm.shape[-2] + 1, dtype=dm.dtype)[:, None]
        return reverse_cumsum(dm / n, -2)

    def forward(self, x, mask=None):
        xq, xk, xv = self._inputs(x, mask)
        q, k, v = self._spikes("q", xq), self._spikes("k", xk), self._spikes("v", xv)
        kv = k * v  # AND of two spike trains, (T, B, L, D)
        m = self.running(kv)
        g = self.modules["attn_lif"](self.params["gate_gain"] * m)  # (T, B, L, D) spikes
        self.cache = (q, k, v, m, g)
        return self.modules["out_proj"](q * g)

    def backward(self, dout):
        q, k, v, m, g = self.cache
        dy = self.modules["out_proj"].backward(dout)
        dq, dg = dy * g, dy * q
        dgm = self.modules["attn_lif"].backward(dg)
        self.grads["gate_gain"] += _sum_to_channels(dgm * m, self.n_embd)
        dkv = self.running_backward(dgm * self.params["gate_gain"])
        dxq = self._spikes_backward("q", dq)
        dxk = self._spikes_backward("k", dkv * v)
        dxv = self._spikes_backward("v", dkv * k)
        return self._inputs_backward(dxq, dxk, dxv)


class DecaySDSA(MeanSDSA):
    """SDSA over a per-channel decaying mean of K AND V (a leak over tokens):

        m[l] = sum_{j <= l} lambda^(l - j) K[j] V[j] / sum_{j <= l} lambda^(l - j)
        y[l] = (Q[l] * SN_attn(a * m[l])) W_O,   lambda = sigmoid(w) per channel (learned)
    w is decay_logit; lambda starts spread over the channels, 1 - 2^-1 ... 1 - 2^-7
    (half-lives of 1 to 88 tokens). Computed as one (D, L, L) causal decay matrix per channel
    times kv, W[d, l, j] = lambda_d^(l - j) [j <= l], as the MLX port does. Backward:
    dW = ds^T kv + dn (n = the row sums of W), d log(lambda) = sum dW W (l - j),
    dw = d log(lambda) sigmoid(-w).
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True, gain=4.0):
        super().__init__(n_embd, n_head, rng, neuron, shift, bias, gain)
        lam = 1.0 - 2.0 ** -np.linspace(1.0, 7.0, n_embd)
        self.add_param("decay_logit", np.log(lam / (1 - lam)).astype(np.float32))

    def decay_matrix(self, n_tok):
        """W[d, l, j] = lambda_d^(l - j) for j <= l, else 0; (D, L, L), and the distances l - j."""
        return leak_matrix(self.params["decay_logit"], n_tok)

    def running(self, kv):
        n_tok, d = kv.shape[-2:]
        w, dist = self.decay_matrix(n_tok)  # (D, L, L)
        flat = np.moveaxis(kv.reshape(-1, n_tok, d), -1, 0)  # (D, N, L)
        s = flat @ np.swapaxes(w, -1, -2)  # (D, N, L): s[d, n, l] = sum_j w[d, l, j] kv[d, n, j]
        norm = w.sum(axis=-1)[:, None, :]  # (D, 1, L)
        self.decay_cache = (w, dist, flat, s, norm, kv.shape)
        return np.moveaxis(s / norm, 0, -1).reshape(kv.shape)

    def running_backward(self, dm):
        w, dist, flat, s, norm, shape = self.decay_cache
        n_tok, d = shape[-2:]
        dmf = np.moveaxis(dm.reshape(-1, n_tok, d), -1, 0)  # (D, N, L)
        ds = dmf / norm
        dnorm = -(dmf * s / norm**2).sum(axis=1)  # (D, L)
        dflat = ds @ w  # (D, N, L)
        dw = np.swapaxes(ds, -1, -2) @ flat + dnorm[:, :, None]  # (D, L, L)
        dlog_lam = (dw * w * dist).sum(axis=(1, 2))  # (D,)
        logit = self.params["decay_logit"]
        self.grads["decay_logit"] += dlog_lam * (0.5 - 0.5 * np.tanh(0.5 * logit))  # sigmoid(-w)
        return np.moveaxis(dflat, 0, -1).reshape(shape)


class SpikeMatrixAttention(_Base):
    """Matrix-state spike-driven attention (the SDSA-3 / Spikformer SSA family), causal:

        Q, K, V = SN(x W_Q), SN(x_k W_K), SN(x_v W_V)         spikes, split into H heads
        A[l, j] = (Q[l] . K[j]) [j <= l]                      coincidences (i j / D^2 each)
        y[l] = SN_attn( sum_j A[l, j] V[j] / max(1, sum_j A[l, j]) ) W_O
    form="quadratic" builds A (L x L per head); form="running" keeps the d x d state
        S[l] = sum_{j <= l} K[j]^T V[j],  z[l] = sum_{j <= l} K[j],
        y[l] = SN_attn( Q[l] S[l] / max(1, Q[l] . z[l]) ) W_O
    the same numbers (integer sums for binary spikes, exact in float32), O(L d^2) instead of
    O(L^2 d). Here the
    running form loops over positions with one d x d state; its backward runs the loop in
    reverse and recovers each earlier state by subtracting K[l]^T V[l].
    power p > 1 sharpens the lookup: A = (Q . K)^p (a real multiplication per score).
    decay=True lets the scores leak with distance, one learned rate per head (RetNet's decay,
    a membrane leak applied to the state S over tokens instead of over timesteps):
        A[l, j] = (Q[l] . K[j]) lambda_h^(l - j) [j <= l],   lambda_h = sigmoid(w_h)
    w is decay_logit (H,), lambda starting spread over the heads, 1 - 2^-3 ... 1 - 2^-8 (half-
    lives of 5 to 177 tokens). In the running form the state leaks, S[l] = lambda S[l-1] +
    K[l]^T V[l], z[l] = lambda z[l-1] + K[l]: one real multiplication per state entry and token.
    Backward: d log(lambda_h) = sum dA A (l - j), dw = d log(lambda) sigmoid(-w).
    max(1, s) passes its gradient to s only where s > 1 (as mx.maximum does at s = 1).
    With spikes of D + 1 levels (Config.spike_levels = D) a score can be any multiple of
    1 / D^2, so the floor is the smallest non-zero score, 1 / D^2 (self.floor): the output is
    the average of V over the scores whenever some score is not zero, as for binary spikes.
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
            self.add_module(f"{name}_lif", self._neuron("qkv"))
        self.add_module("attn_lif", self._neuron("attn"))
        self.floor = 1.0 / getattr(self.modules["q_lif"], "levels", 1) ** 2  # max(floor, sum A)
        if self.decay:
            self.add_param("decay_logit", decay_init(n_head))

    def score_mask(self, n_tok, dtype=np.float32):
        """(H, L, L) factors of the scores: lambda_h^(l - j) [j <= l] with decay (and the
        distances l - j), else the causal mask (1, L, L) and None."""
        if not self.decay:
            return causal_mask(n_tok, dtype)[None], None
        return leak_matrix(self.params["decay_logit"], n_tok)

    def mix(self, q, k, v):
        """sum_j A[l, j] V[j] / max(1, sum_j A[l, j]) for heads (..., H, L, hd)."""
        if self.form == "running":
            z = np.cumsum(k, axis=-2)  # (..., L, hd)
            den = (q * z).sum(axis=-1, keepdims=True)
            num = np.empty_like(q)
            state = np.zeros(q.shape[:-2] + (q.shape[-1],) * 2, q.dtype)  # (..., hd, hd)
            for j in range(q.shape[-2]):
                state += k[..., j, :, None] * v[..., j, None, :]
                num[..., j, :] = np.einsum("...i,...ij->...j", q[..., j, :], state)
            self.mix_cache = (q, k, v, z, den, state)
        else:
            self.mask, self.dist = self.score_mask(q.shape[-2], q.dtype)  # (H or 1, L, L)
            m = self.mask
            a0 = q @ np.swapaxes(k, -1, -2)  # (..., H, L, L)
            a = (a0**self.power if self.power != 1 else a0) * m
            num = a @ v
            den = a.sum(axis=-1, keepdims=True)
            self.mix_cache = (q, k, v, a0, a, den)
        r = num / np.maximum(den, self.floor)
        self.r = r
        return r

    def mix_backward(self, dr):
        den = self.mix_cache[-2] if self.form == "running" else self.mix_cache[-1]
        dnum = dr / np.maximum(den, self.floor)
        dden = (-(dr * self.r).sum(axis=-1, keepdims=True) / np.maximum(den, self.floor)
                * (den > self.floor))
        if self.form == "quadratic":
            q, k, v, a0, a, _ = self.mix_cache
            da = dnum @ np.swapaxes(v, -1, -2) + dden  # (..., L, L)
            if self.decay:
                dlog = (da * a).reshape(-1, *a.shape[-3:]).sum(axis=0)  # (H, L, L)
                dlog = (dlog * self.dist).sum(axis=(1, 2))
                logit = self.params["decay_logit"]
                self.grads["decay_logit"] += dlog * (0.5 - 0.5 * np.tanh(0.5 * logit))
            da = da * self.mask
            if self.power != 1:
                da = da * self.power * a0 ** (self.power - 1)
            return da @ k, np.swapaxes(da, -1, -2) @ q, np.swapaxes(a, -1, -2) @ dnum
        q, k, v, z, _, state = self.mix_cache
        dq = dden * z
        dk = reverse_cumsum(dden * q, -2)
        dv = np.empty_like(v)
        state = state.copy()
        dstate = np.zeros_like(state)
        for j in reversed(range(q.shape[-2])):
            dq[..., j, :] += np.einsum("...j,...ij->...i", dnum[..., j, :], state)
            dstate += q[..., j, :, None] * dnum[..., j, None, :]
            dk[..., j, :] += np.einsum("...ij,...j->...i", dstate, v[..., j, :])
            dv[..., j, :] = np.einsum("...i,...ij->...j", k[..., j, :], dstate)
            state -= k[..., j, :, None] * v[..., j, None, :]
        return dq, dk, dv

    def forward(self, x, mask=None):
        xq, xk, xv = self._inputs(x, mask)
        q, k, v = (split_heads(self._spikes(n, xi), self.n_head)
                   for n, xi in (("q", xq), ("k", xk), ("v", xv)))  # (T, B, H, L, hd) spikes
        return self.modules["out_proj"](self.modules["attn_lif"](merge_heads(self.mix(q, k, v))))

    def backward(self, dout):
        dg = self.modules["out_proj"].backward(dout)
        dr = split_heads(self.modules["attn_lif"].backward(dg), self.n_head)
        dq, dk, dv = self.mix_backward(dr)
        return self._inputs_backward(*(self._spikes_backward(n, merge_heads(d))
                                       for n, d in (("q", dq), ("k", dk), ("v", dv))))


class HybridAttention(_Base):
    """Scores from membrane potentials, values and output as spikes:

        Q = x W_Q,  K = x_k W_K                   real: the membrane input before a threshold
        V = SN(x_v W_V)                           spikes
        A = softmax(Q K^T / sqrt(d_h) + M)        per timestep and head; M = -inf after l
        y = SN_attn(A V) W_O                      A V is a weighted fraction of V's spikes
    score="relu" uses A = ReLU(Q K^T / sqrt(d_h)) [j <= l] / (sum_j ReLU(...) + 1e-6) instead.
    x W_Q and x W_K are accumulates on spikes; Q K^T is a real multiplication per score, and
    A V adds a real weight where V spiked. No q_lif, k_lif.
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=False, bias=True,
                 score="softmax"):
        super().__init__(n_embd, n_head, rng, neuron, shift, bias)
        if score not in ("softmax", "relu"):
            raise ValueError(f"score={score!r} is invalid: choose 'softmax' or 'relu'")
        self.score = score
        self.add_module("v_lif", self._neuron("qkv"))
        self.add_module("attn_lif", self._neuron("attn"))

    def weights(self, q, k):
        """The attention weights A (..., H, L, L) of real q, k (..., H, L, hd)."""
        n_tok = q.shape[-2]
        scale = 1.0 / math.sqrt(q.shape[-1])
        s = (q @ np.swapaxes(k, -1, -2)) * scale
        m = causal_mask(n_tok, q.dtype)
        if self.score == "softmax":
            a = softmax(np.where(m > 0, s, NEG_INF), axis=-1).astype(q.dtype)
            self.w_cache = (a, None, scale)
            return a
        relu = np.maximum(s, 0.0) * m
        den = relu.sum(axis=-1, keepdims=True) + 1e-6
        a = relu / den
        self.w_cache = (a, (s > 0) * m / den, scale)
        return a

    def weights_backward(self, da):
        a, relu_grad, scale = self.w_cache
        dsum = (da * a).sum(axis=-1, keepdims=True)
        if relu_grad is None:  # softmax: ds = A (dA - sum_j A dA); masked entries have A = 0
            return a * (da - dsum) * scale
        return (da - dsum) * relu_grad * scale  # A = r / (sum r + 1e-6), r = ReLU(s) M

    def forward(self, x, mask=None):
        xq, xk, xv = self._inputs(x, mask)
        m = self.modules
        q = split_heads(m["q_proj"](xq), self.n_head)  # (T, B, H, L, hd) real
        k = split_heads(m["k_proj"](xk), self.n_head)
        v = split_heads(self._spikes("v", xv), self.n_head)  # spikes
        a = self.weights(q, k)
        self.cache = (q, k, v, a)
        return m["out_proj"](m["attn_lif"](merge_heads(a @ v)))

    def backward(self, dout):
        m = self.modules
        q, k, v, a = self.cache
        dr = split_heads(m["attn_lif"].backward(m["out_proj"].backward(dout)), self.n_head)
        ds = self.weights_backward(dr @ np.swapaxes(v, -1, -2))
        dv = np.swapaxes(a, -1, -2) @ dr
        dxq = m["q_proj"].backward(merge_heads(ds @ k))
        dxk = m["k_proj"].backward(merge_heads(np.swapaxes(ds, -1, -2) @ q))
        return self._inputs_backward(dxq, dxk, self._spikes_backward("v", merge_heads(dv)))


class ShiftSoftmaxAttention(HybridAttention):
    """Softmax attention with token shift, all real-valued (the softmax twin of hybrid_shift):

        Q = x W_Q,  K = x_k W_K,  V = x_v W_V,  y = softmax(Q K^T / sqrt(d_h) + M) V W_O
    x_k, x_v as in _Base (token shift). No neurons: a plain transformer's attention.
    """

    def __init__(self, n_embd, n_head, rng, neuron=None, shift=True, bias=True):
        _Base.__init__(self, n_embd, n_head, rng, neuron, shift, bias)
        self.score = "softmax"

    def forward(self, x, mask=None):
        xq, xk, xv = self._inputs(x, mask)
        m = self.modules
        q, k, v = (split_heads(m[f"{n}_proj"](xi), self.n_head)
                   for n, xi in (("q", xq), ("k", xk), ("v", xv)))  # (T, B, H, L, hd) real
        a = self.weights(q, k)
        self.cache = (q, k, v, a)
        return m["out_proj"](merge_heads(a @ v))

    def backward(self, dout):
        m = self.modules
        q, k, v, a = self.cache
        dr = split_heads(m["out_proj"].backward(dout), self.n_head)
        ds = self.weights_backward(dr @ np.swapaxes(v, -1, -2))
        dxq = m["q_proj"].backward(merge_heads(ds @ k))
        dxk = m["k_proj"].backward(merge_heads(np.swapaxes(ds, -1, -2) @ q))
        dxv = m["v_proj"].backward(merge_heads(np.swapaxes(a, -1, -2) @ dr))
        return self._inputs_backward(dxq, dxk, dxv)


# name -> (class, keyword arguments); Config(attention=name) builds it (numpy backend)
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
    from spike_lib.numpy_impl.blocks import make_neuron  # blocks dispatches here: import late

    if cfg.attention not in NAMES:
        raise ValueError(f"attention={cfg.attention!r} is not a context attention: choose one "
                         f"of {sorted(NAMES)}")
    cls, kw = NAMES[cfg.attention]
    return cls(cfg.n_embd, cfg.n_head, rng, neuron=lambda kind: make_neuron(cfg, kind), **kw)
