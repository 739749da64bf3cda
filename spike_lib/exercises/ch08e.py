"""Checks for chapter 8e's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/08e_a_leaking_state.ipynb
"""

import numpy as np

from spike_lib.numpy_impl.context_attention import SpikeMatrixAttention


def _correct(name):
    print(f"{name}: correct")


def _reference(q, k, v, lam, floor=1.0):
    """r = (A V) / max(floor, sum_j A), A[l, j] = (q[l] . k[j]) lam^(l - j) [j <= l] (Eq. 8e.1)."""
    pos = np.arange(q.shape[-2])
    dist = pos[:, None] - pos[None, :]
    mask = np.where(dist >= 0, float(lam) ** np.maximum(dist, 0), 0.0)
    a = (q @ np.swapaxes(k, -1, -2)) * mask
    return (a @ v) / np.maximum(a.sum(axis=-1, keepdims=True), floor)


def _spikes(rng, shape, p=0.4):
    return (rng.random(shape) < p).astype(np.float64)


def check_decay_mask(fn):
    """Exercise 1: fn(n_tok, lam) = the (L, L) matrix Lambda[l, j] = lam^(l - j) for j <= l and
    0 above the diagonal (Eq. 8e.1)."""
    got = np.asarray(fn(4, 0.5), dtype=float)
    assert got.shape == (4, 4), f"one factor per (query l, key j): shape (4, 4), got {got.shape}"
    if np.allclose(got, got.T):
        raise AssertionError("a query must not see later keys: Lambda[l, j] = 0 for j > l")
    if np.isclose(got[1, 0], 1.0) and np.isclose(got[2, 0], 1.0):
        raise AssertionError("the factor falls with the distance l - j: lam^(l - j)")
    if np.isclose(got[3, 0], 0.5**-3):
        raise AssertionError("lam^(l - j) with l the query and j the key: the exponent is >= 0")
    want = np.tril(0.5 ** np.subtract.outer(np.arange(4), np.arange(4)).clip(0))
    assert np.allclose(got, want), f"for lam = 1/2 want\n{want}\ngot\n{got}"
    assert np.allclose(np.asarray(fn(3, 1.0), dtype=float), np.tril(np.ones((3, 3)))), (
        "lam = 1 must give the causal mask of chapter 8c's spike_matrix (no leak)")
    _correct("decay mask")


def check_decayed_attention(fn):
    """Exercise 2: fn(q, k, v, lam, floor) = (A V) / max(floor, sum_j A) with
    A = (Q K^T) * Lambda (Eq. 8e.1), for spikes q, k, v of shape (..., L, d)."""
    rng = np.random.default_rng(3)
    q, k, v = (_spikes(rng, (2, 6, 4)) for _ in range(3))
    got = np.asarray(fn(q, k, v, 0.7, 1.0), dtype=float)
    want = _reference(q, k, v, 0.7, 1.0)
    assert got.shape == want.shape, f"one output per query and channel: {want.shape}, got {got.shape}"
    if np.allclose(got, _reference(q, k, v, 1.0, 1.0)):
        raise AssertionError("the scores must leak: multiply Q K^T by the decay mask of exercise 1")
    a = (q @ np.swapaxes(k, -1, -2)) * np.tril(0.7 ** np.subtract.outer(np.arange(6), np.arange(6)).clip(0))
    if np.allclose(got, a @ v):
        raise AssertionError("normalise: divide A V by max(floor, sum_j A[l, j]), row by row")
    if np.allclose(got, (a @ v) / (a.sum(axis=-1, keepdims=True) + 1e-9)):
        raise AssertionError("the denominator is max(floor, sum_j A): a row with no coincidence "
                             "must give 0, not 0 / 0")
    assert np.allclose(got, want), "compare with Eq. 8e.1 line by line"
    att = SpikeMatrixAttention(4, 1, np.random.default_rng(0), decay=True)
    att.params["decay_logit"][...] = np.log(0.7 / 0.3)  # sigmoid(w) = 0.7
    lib = att.mix(q[None, :, None].astype(np.float32), k[None, :, None].astype(np.float32),
                  v[None, :, None].astype(np.float32))[0, :, 0]
    assert np.allclose(got, lib, atol=1e-5), "your output must equal spike_lib's SpikeMatrixAttention(decay=True)"
    _correct("decayed matrix attention")


def check_running(fn):
    """Exercise 3: fn(q, k, v, lam, floor) computes Eq. 8e.1 by the recurrence of Eq. 8e.2,
    S[l] = lam S[l-1] + k[l]^T v[l], z[l] = lam z[l-1] + k[l], r[l] = q[l] S[l] / max(floor,
    q[l] . z[l]), one position at a time, for q, k, v of shape (L, d)."""
    rng = np.random.default_rng(4)
    q, k, v = (_spikes(rng, (7, 3), p=0.7) for _ in range(3))
    got = np.asarray(fn(q, k, v, 0.6, 1.0), dtype=float)
    want = _reference(q, k, v, 0.6, 1.0)
    assert got.shape == want.shape, f"one output per position and channel: {want.shape}, got {got.shape}"
    if np.allclose(got, _reference(q, k, v, 1.0, 1.0)):
        raise AssertionError("leak both states before adding the new token: S = lam S + k^T v "
                             "and z = lam z + k")
    pos = np.arange(7)
    one = np.tril(0.6 ** np.subtract.outer(pos, pos).clip(0)) * (q @ k.T)
    if np.allclose(got, (one @ v) / np.maximum((q @ np.cumsum(k, axis=0).T).diagonal()[:, None], 1.0)):
        raise AssertionError("z must leak too, or the denominator counts old keys at full weight")
    assert np.allclose(got, want), ("the recurrence must give Eq. 8e.1's numbers: add k[l]^T v[l] "
                                    "after the leak and read S[l] with q[l] at the same position")
    _correct("running form")


def check_decay_macs(fn):
    """Exercise 4: fn(n_tok, n_embd, n_head, form) = the real multiplications the leak costs per
    sequence and timestep: "quadratic" one per causal score, H L (L + 1) / 2; "running" the
    states S (H d_h^2 entries) and z (D entries) each scaled once per token, L (H d_h^2 + D)."""
    got = fn(128, 256, 4, "quadratic")
    if got == 128 * 128 * 4:
        raise AssertionError("only the causal scores (j <= l) exist: L (L + 1) / 2 per head")
    if got == 128 * 129 // 2:
        raise AssertionError("each head has its own scores and its own lambda: times H")
    assert got == 4 * 128 * 129 // 2, f"quadratic, L=128, D=256, H=4: want {4 * 128 * 129 // 2}, got {got}"
    got = fn(128, 256, 4, "running")
    if got == 128 * 256 * 256:
        raise AssertionError("a head's state is d_h x d_h with d_h = D / H, not D x D")
    if got == 128 * 4 * 64 * 64:
        raise AssertionError("z (D entries per token) leaks too")
    assert got == 128 * (4 * 64 * 64 + 256), f"running: want {128 * (4 * 64 * 64 + 256)}, got {got}"
    assert fn(10, 8, 2, "quadratic") == 110 and fn(10, 8, 2, "running") == 10 * (2 * 16 + 8), (
        "check a small case by hand: L = 10, D = 8, H = 2")
    _correct("the leak's multiplications")
