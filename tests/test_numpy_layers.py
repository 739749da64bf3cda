"""numpy_impl/layers.py: Linear, Embedding, LayerNorm, GELU, Dropout, cross_entropy (hand values, gradchecks)."""

import math

import numpy as np
import pytest

from spike_lib.core.gradcheck import numerical_grad
from spike_lib.numpy_impl.layers import (
    GELU,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    cross_entropy,
    softmax,
)


def close(mine, ref, tol=1e-6):
    """max |mine - ref| relative to the largest |ref| (at least 0.01: exact-zero grads pass)."""
    mine, ref = np.asarray(mine), np.asarray(ref)
    return float(np.abs(mine - ref).max() / max(np.abs(ref).max(), 1e-2)) < tol


def gradcheck(module, x, rng):
    """Backward of L = sum(forward(x) * dout) vs central differences, for x and every param."""
    dout = rng.standard_normal(module.forward(x).shape)
    module.zero_grad()
    dx = module.backward(dout)

    def f():
        return float(np.sum(module.forward(x) * dout))

    assert close(dx, numerical_grad(f, x)), "dx disagrees with finite differences"
    for name, p, g in module.named_parameters():
        assert close(g.copy(), numerical_grad(f, p)), f"d{name} disagrees with finite differences"


def test_linear_hand_values():
    lin = Linear(2, 2, np.random.default_rng(0))
    lin.params["W"][...] = [[1.0, 2.0], [3.0, 4.0]]
    lin.params["b"][...] = [0.5, -0.5]
    y = lin(np.array([[1.0, 1.0], [2.0, 0.0]], dtype=np.float32))
    assert np.allclose(y, [[4.5, 5.5], [2.5, 3.5]])
    dx = lin.backward(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    assert np.allclose(dx, [[1.0, 3.0], [2.0, 4.0]])  # dy W^T
    assert np.allclose(lin.grads["W"], [[1.0, 2.0], [1.0, 0.0]])  # x^T dy
    assert np.allclose(lin.grads["b"], [1.0, 1.0])
    assert lin.flops(n_tokens=3) == 12


def test_linear_any_leading_dims_and_gradcheck(rng):
    lin = Linear(5, 3, rng).astype(np.float64)
    x = rng.standard_normal((2, 3, 4, 5))  # (T, B, L, D)
    assert lin(x).shape == (2, 3, 4, 3)
    gradcheck(lin, x, rng)
    nobias = Linear(5, 3, rng, bias=False)
    assert set(nobias.params) == {"W"}


def test_linear_init_scale_and_errors():
    lin = Linear(400, 300, np.random.default_rng(0), gain=2.0)
    assert abs(lin.params["W"].std() - 2.0 / 20.0) < 0.002  # gain / sqrt(n_in)
    with pytest.raises(TypeError, match="numpy Generator"):
        Linear(3, 3, rng=0)
    with pytest.raises(ValueError, match="last dim 3"):
        Linear(3, 3, np.random.default_rng(0))(np.ones((2, 4)))
    with pytest.raises(ValueError, match="n_in"):
        Linear(0, 3, np.random.default_rng(0))


def test_embedding_lookup_and_scatter_add():
    emb = Embedding(4, 2, np.random.default_rng(0))
    emb.params["W"][...] = np.arange(8).reshape(4, 2)
    idx = np.array([[1, 3, 1]])
    assert np.array_equal(emb(idx), [[[2, 3], [6, 7], [2, 3]]])
    assert emb.backward(np.ones((1, 3, 2), dtype=np.float32)) is None
    assert np.array_equal(emb.grads["W"], [[0, 0], [2, 2], [0, 0], [1, 1]])  # row 1 read twice
    with pytest.raises(ValueError, match="out of range"):
        emb(np.array([4]))
    with pytest.raises(ValueError, match="integer"):
        emb(np.array([0.5]))


def test_layernorm_hand_values_and_gradcheck(rng):
    ln = LayerNorm(3, eps=1e-12)
    y = ln(np.array([1.0, 2.0, 3.0]))
    assert np.allclose(y, [-math.sqrt(1.5), 0.0, math.sqrt(1.5)])  # var = 2/3
    ln = LayerNorm(6).astype(np.float64)
    ln.params["gamma"][...] = rng.standard_normal(6)
    ln.params["beta"][...] = rng.standard_normal(6)
    gradcheck(ln, rng.standard_normal((2, 3, 6)), rng)


def test_gelu_values_and_gradcheck(rng):
    g = GELU()
    y = g(np.array([0.0, 1.0, -1.0]))
    assert np.allclose(y, [0.0, 0.8411919906, -0.1588080094])  # tanh form
    gradcheck(GELU(), rng.standard_normal((3, 4)) * 2, rng)


def test_dropout_train_and_eval():
    drop = Dropout(0.5, np.random.default_rng(0))
    x = np.ones((1000,), dtype=np.float32)
    y = drop(x)
    assert set(np.unique(y)) == {0.0, 2.0}  # kept units are scaled by 1 / (1 - p)
    assert np.array_equal(drop.backward(x), y)
    drop.training = False
    assert np.array_equal(drop(x), x)
    with pytest.raises(ValueError, match="p < 1"):
        Dropout(1.0, np.random.default_rng(0))


def test_cross_entropy_hand_values():
    loss, dz = cross_entropy(np.zeros((2, 4)), np.array([1, 3]))
    assert math.isclose(loss, math.log(4))  # uniform over 4 classes
    expected = np.full((2, 4), 0.25 / 2)
    expected[0, 1] -= 0.5
    expected[1, 3] -= 0.5
    assert np.allclose(dz, expected)  # (softmax - onehot) / N


def test_cross_entropy_gradcheck_and_ignore(rng):
    z = rng.standard_normal((2, 3, 5))
    t = np.array([[0, 2, -1], [4, -1, 1]])
    loss, dz = cross_entropy(z, t, ignore_index=-1)
    keep = t != -1
    logp = np.log(softmax(z))
    assert math.isclose(loss, -np.mean(np.take_along_axis(logp, np.where(keep, t, 0)[..., None],
                                                          -1)[..., 0][keep]))
    assert np.all(dz[~keep] == 0)
    num = numerical_grad(lambda: cross_entropy(z, t, ignore_index=-1)[0], z)
    assert close(dz, num)


def test_cross_entropy_bad_inputs():
    with pytest.raises(ValueError, match="shape of logits"):
        cross_entropy(np.zeros((2, 4)), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        cross_entropy(np.zeros((2, 4)), np.array([1, 4]))
