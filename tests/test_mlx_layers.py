"""MLX layers: the NumPy layers' numbers and, through autodiff, their hand-written gradients."""

import math

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from spike_lib.train.check import normwise_rel_error
from spike_lib.mlx_impl import layers as L
from spike_lib.numpy_impl import layers as N


def _grads(module, x, dout):
    """d sum(module(x) * dout) / d(x, params) with MLX autodiff."""
    def loss(params, xm):
        module.update(params)
        return (module(xm) * mx.array(dout)).sum()

    dp, dx = mx.grad(loss, argnums=(0, 1))(module.trainable_parameters(), mx.array(x))
    return np.array(dx), {k: np.array(v) for k, v in dp.items()}


def test_linear_same_seed_same_weights_and_gradients():
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 6)).astype(np.float32)  # (T, B, L, D)
    ref = N.Linear(6, 5, np.random.default_rng(0))
    lin = L.Linear(6, 5, np.random.default_rng(0))
    assert np.array_equal(np.array(lin.W), ref.params["W"])
    y = ref(x)
    assert normwise_rel_error(np.array(lin(mx.array(x))), y) < 1e-6
    dout = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
    dx_ref = ref.backward(dout)
    dx, dp = _grads(lin, x, dout)
    assert normwise_rel_error(dx, dx_ref) < 1e-6
    assert normwise_rel_error(dp["W"], ref.grads["W"]) < 1e-6
    assert normwise_rel_error(dp["b"], ref.grads["b"]) < 1e-6
    assert lin.flops(10) == 300 and "b" not in L.Linear(6, 5, np.random.default_rng(0), bias=False)


def test_layernorm_gradients_match_numpy():
    x = np.random.default_rng(7).normal(1.0, 2.0, (3, 4, 8)).astype(np.float32)
    ref, ln = N.LayerNorm(8), L.LayerNorm(8)
    y = np.array(ln(mx.array(x)))
    assert np.allclose(y.mean(-1), 0, atol=1e-5) and np.allclose(y.std(-1), 1, atol=1e-3)
    assert normwise_rel_error(y, ref(x)) < 1e-6
    dout = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)
    dx_ref = ref.backward(dout)
    dx, dp = _grads(ln, x, dout)
    assert normwise_rel_error(dx, dx_ref) < 1e-5
    assert normwise_rel_error(dp["gamma"], ref.grads["gamma"]) < 1e-6
    assert normwise_rel_error(dp["beta"], ref.grads["beta"]) < 1e-6


def test_embedding_and_gelu_hand_values():
    emb = L.Embedding(4, 2, np.random.default_rng(0))
    ref = N.Embedding(4, 2, np.random.default_rng(0))
    assert np.array_equal(np.array(emb(mx.array([[3, 0]]))), ref(np.array([[3, 0]])))
    with pytest.raises(ValueError, match="integer"):
        emb(mx.array([0.5]))
    g = np.array(L.GELU()(mx.array([0.0, 1.0, -1.0])))
    c = math.sqrt(2 / math.pi)
    want = 0.5 * (1 + math.tanh(c * 1.044715))  # x = 1
    assert np.allclose(g, [0.0, want, want - 1.0], atol=1e-6)  # gelu(-x) = gelu(x) - x


def test_dropout_scales_and_switches_off():
    drop = L.Dropout(0.25)
    mx.random.seed(0)
    y = np.array(drop(mx.ones((4000,))))
    assert set(np.unique(y).tolist()) == {0.0, np.float32(4 / 3)}  # kept units are scaled by 1 / (1 - p)
    assert abs((y == 0).mean() - 0.25) < 0.03
    drop.eval()
    assert np.array_equal(np.array(drop(mx.ones((5,)))), np.ones(5))
    with pytest.raises(ValueError, match="p < 1"):
        L.Dropout(1.0)


def test_cross_entropy_hand_values_and_ignore_index():
    # uniform logits over 4 classes: the loss is ln 4 at every position
    assert L.cross_entropy(mx.zeros((2, 3, 4)), mx.zeros((2, 3), mx.int32)).item() == \
        pytest.approx(math.log(4), rel=1e-6)
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]], np.float32))
    got = L.cross_entropy(mx.array(logits), mx.array([0, -1]), ignore_index=-1).item()
    assert got == pytest.approx(-math.log(0.5), rel=1e-6)  # the ignored row does not count
    z = np.random.default_rng(9).standard_normal((2, 5, 7)).astype(np.float32)
    t = np.random.default_rng(10).integers(0, 7, (2, 5))
    assert L.cross_entropy(mx.array(z), mx.array(t)).item() == \
        pytest.approx(N.cross_entropy(z, t)[0], rel=1e-6)
    with pytest.raises(ValueError, match="disagree"):
        L.cross_entropy(mx.zeros((2, 3, 4)), mx.zeros((3, 2), mx.int32))


def test_bad_arguments():
    with pytest.raises(ValueError, match="last dim 6"):
        L.Linear(6, 5, np.random.default_rng(0))(mx.zeros((2, 4)))
    with pytest.raises(TypeError, match="default_rng"):
        L.Linear(6, 5, rng=0)
    with pytest.raises(ValueError, match="n_out"):
        L.Linear(6, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="eps"):
        L.LayerNorm(4, eps=0.0)
