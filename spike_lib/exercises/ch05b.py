"""Checks for chapter 5b's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/05b_spikellm_context.ipynb
"""

import numpy as np


def _correct(name):
    print(f"{name}: correct")


def check_kl(fn):
    """Exercise 1: fn(logits_p, logits_q) = KL(p || q) in nats for each row of (..., V) logits."""
    zp = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    zq = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    out = np.asarray(fn(zp, zq), dtype=float)
    p = np.exp(zp) / np.exp(zp).sum(-1, keepdims=True)
    want = (p * (np.log(p) - np.log(1 / 3))).sum(-1)
    assert out.shape == (2,), f"shape {out.shape}: one KL per row, (2,)"
    assert abs(out[1]) < 1e-12, "KL(p || p) must be 0: equal logits give equal distributions"
    if np.allclose(out, (np.full((2, 3), 1 / 3) * (np.log(1 / 3) - np.log(p))).sum(-1)):
        raise AssertionError("that is KL(q || p): weight the log ratio by p, the original")
    assert np.allclose(out, want), (
        f"got {out}, want {want}: KL(p || q) = sum_i p_i (log p_i - log q_i), with p and q "
        "the softmax of the logits (subtract the max before exp)")
    _correct("KL divergence")


def check_gate_on(fn):
    """Exercise 2: fn(kv, threshold) = fraction of channels whose gate H(S_l - threshold) is on
    at each position l, S the running sum of kv (L, D) over positions (T = 1)."""
    kv = np.array([[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]], float)  # (L=4, D=3)
    out = np.asarray(fn(kv, 0.5), dtype=float)
    want = np.array([1, 2, 2, 3]) / 3
    assert out.shape == (4,), f"shape {out.shape}: one fraction per position, (L,) = (4,)"
    if np.allclose(out, kv.mean(axis=1)):
        raise AssertionError("that is the fraction of K AND V spikes at each position; the gate "
                             "reads the running sum np.cumsum(kv, axis=0)")
    assert np.allclose(out, want), (
        f"got {out}, want {want}: S = np.cumsum(kv, axis=0); on = S >= threshold; "
        "then the mean over channels. Once on, a channel stays on")
    _correct("gate saturation")


def check_batchnorm_fold(fn):
    """Exercise 3: fn(W, b, mean, var, gamma, beta, eps) = (W2, b2) with
    gamma (x W + b - mean) / sqrt(var + eps) + beta = x W2 + b2 for every x."""
    rng = np.random.default_rng(3)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    mean, var = rng.standard_normal(3), rng.random(3) + 0.5
    gamma, beta, eps = rng.standard_normal(3), rng.standard_normal(3), 1e-5
    W2, b2 = (np.asarray(a, dtype=float) for a in fn(W, b, mean, var, gamma, beta, eps))
    assert W2.shape == W.shape and b2.shape == b.shape, (
        f"shapes {W2.shape}, {b2.shape}: the folded layer has the original's, {W.shape}, {b.shape}")
    x = rng.standard_normal((5, 4))
    want = gamma * (x @ W + b - mean) / np.sqrt(var + eps) + beta
    assert np.allclose(x @ W2 + b2, want), (
        "scale each output column: W2 = W * s with s = gamma / sqrt(var + eps), and "
        "b2 = (b - mean) * s + beta")
    _correct("BatchNorm fold")
