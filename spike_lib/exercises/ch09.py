"""Checks for chapter 9's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/09_finetuning_lora.ipynb
"""

import math

import numpy as np

from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.numpy_impl.layers import Linear
from spike_lib.numpy_impl.lora import LoRALinear


def _correct(name):
    print(f"{name}: correct")


def check_masked_targets(fn):
    """Exercise 1: fn(seq, n_prompt) -> targets y (len(seq) - 1,), IGNORE_INDEX off the answer."""
    seq = [10, 11, 12, 13, 20, 21, 5]  # 4 prompt tokens, then the answer 20 21 and newline 5
    y = np.asarray(fn(seq, 4))
    assert y.shape == (6,), f"y has shape {y.shape}: one target per input token, len(seq) - 1"
    want = [IGNORE_INDEX] * 3 + [20, 21, 5]
    if y.tolist() == [IGNORE_INDEX] * 4 + [21, 5]:
        raise AssertionError("off by one: the target at position n_prompt - 1 (the last prompt "
                             "token) is the first answer token")
    if y.tolist() == seq[1:]:
        raise AssertionError("every target is kept: set the prompt's targets to IGNORE_INDEX")
    assert y.tolist() == want, f"got {y.tolist()}, expected {want}"
    assert np.asarray(fn([1, 2], 1)).tolist() == [2]
    _correct("answer-only targets")


def check_lora_params(fn):
    """Exercise 2: fn(n_in, n_out, rank) = parameters of one LoRA adapter."""
    for n_in, n_out, r in ((256, 256, 8), (256, 1024, 4), (3, 5, 1)):
        got = fn(n_in, n_out, r)
        if got == n_in * n_out:
            raise AssertionError("that is the frozen W: count A (n_in x r) and B (r x n_out)")
        assert got == r * (n_in + n_out), f"({n_in}, {n_out}, r={r}): got {got}"
    _correct("LoRA parameter count")


def check_token_f1(fn):
    """Exercise 3: fn(prediction, gold) = SQuAD token F1 (normalised, bag of tokens)."""
    cases = [("26 June 1960", "June 1960", 0.8), ("The Nile", "nile", 1.0), ("Lyon", "Paris", 0.0),
             ("x y y", "y y z", 2 / 3), ("", "Paris", 0.0)]
    for pred, gold, want in cases:
        got = float(fn(pred, gold))
        assert math.isclose(got, want, abs_tol=1e-9), (
            f"F1({pred!r}, {gold!r}) = {got}, expected {want:.4f}: normalise (lower case, no "
            "punctuation, no a/an/the), count common tokens with multiplicity (Counter &), "
            "P = common / len(pred), R = common / len(gold), F1 = 2PR / (P + R)")
    _correct("token F1")


def _layer(seed=0, n_in=5, n_out=4, rank=2):
    rng = np.random.default_rng(seed)
    lin = LoRALinear(Linear(n_in, n_out, rng).astype(np.float64), rank, 3.0, rng)
    lin.params["B"] = rng.standard_normal((rank, n_out))
    x = rng.standard_normal((6, n_in))
    dy = rng.standard_normal((6, n_out))
    return lin, x, dy


def check_lora_backward(fn):
    """Exercise 4: fn(x, W, A, B, scale, dy) -> (dA, dB, dx) of y = x W + scale (x A) B."""
    lin, x, dy = _layer()
    lin(x)
    dx_ref = lin.backward(dy)
    p = lin.params
    dA, dB, dx = (np.asarray(v) for v in fn(x, p["W"], p["A"], p["B"], lin.scale, dy))
    assert dB.shape == p["B"].shape and dA.shape == p["A"].shape, (
        f"dA {dA.shape}, dB {dB.shape}: gradients have the parameters' shapes "
        f"{p['A'].shape}, {p['B'].shape}")
    if np.allclose(dB, lin.grads["B"] / lin.scale):
        raise AssertionError("dB is missing the scale alpha / r")
    assert np.allclose(dB, lin.grads["B"]), "dB = scale * (x A)^T dy"
    assert np.allclose(dA, lin.grads["A"]), "dA = x^T (scale * dy B^T)"
    if np.allclose(dx, dy @ p["W"].T):
        raise AssertionError("dx misses the adapter's path: add (scale * dy B^T) A^T")
    assert np.allclose(dx, dx_ref), "dx = dy W^T + scale * dy B^T A^T"
    _correct("LoRA backward")


def check_mlx_lora(fn):
    """Exercise 5: fn(x, W, b, A, B, scale) in MLX; autodiff must give the NumPy LoRA gradients."""
    import mlx.core as mx

    lin, x, dy = _layer(1)
    lin.astype(np.float32)
    x, dy = x.astype(np.float32), dy.astype(np.float32)
    want = lin(x)
    lin.backward(dy)
    p = {k: mx.array(v) for k, v in lin.params.items()}
    got = np.array(fn(mx.array(x), p["W"], p["b"], p["A"], p["B"], lin.scale))
    assert got.shape == want.shape, f"output shape {got.shape}, expected {want.shape}"
    assert np.allclose(got, want, atol=1e-5), "y = x W + b + scale * (x A) B"

    def loss(a, b_mat):
        return (fn(mx.array(x), p["W"], p["b"], a, b_mat, lin.scale) * mx.array(dy)).sum()

    dA, dB = mx.grad(loss, argnums=(0, 1))(p["A"], p["B"])
    assert np.allclose(np.array(dB), lin.grads["B"], atol=1e-4), (
        "dB differs from the NumPy backward: use MLX operations only, so autodiff can follow")
    assert np.allclose(np.array(dA), lin.grads["A"], atol=1e-4), "dA differs from NumPy's"
    _correct("LoRA in MLX")
