"""Checks for chapter 7's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/07_mlx_port.ipynb
"""

import math

import mlx.core as mx
import numpy as np

from spike_lib.core.config import Config
from spike_lib.core.surrogate import FastSigmoid
from spike_lib.numpy_impl.layers import LayerNorm


def _correct(name):
    print(f"{name}: correct")


def check_layernorm(fn):
    """Exercise 1: fn(x, gamma, beta, eps) = LayerNorm over the last axis, on MLX arrays."""
    rng = np.random.default_rng(5)
    x = rng.normal(2.0, 3.0, (3, 4, 6)).astype(np.float32)
    ref = LayerNorm(6)
    ref.params["gamma"] = rng.normal(1.0, 0.3, 6).astype(np.float32)
    ref.params["beta"] = rng.normal(0.0, 0.3, 6).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    want = ref(x)
    dx_ref = ref.backward(dout)
    args = [mx.array(a) for a in (x, ref.params["gamma"], ref.params["beta"])]
    got = np.array(fn(*args, 1e-5))
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    if np.allclose(got, (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True), atol=1e-4):
        raise AssertionError("apply gamma and beta after normalising: y = gamma * xhat + beta")
    assert np.allclose(got, want, atol=1e-4), (
        "normalise over the last axis: (x - mean) / sqrt(var + eps), var the mean square "
        "deviation (not the unbiased one), then y = gamma * xhat + beta")
    dx = mx.grad(lambda v: (fn(v, args[1], args[2], 1e-5) * mx.array(dout)).sum())(args[0])
    assert np.allclose(np.array(dx), dx_ref, atol=1e-4), (
        "the forward matches but its gradient does not: use only MLX operations (no NumPy, no "
        "mx.stop_gradient) so autodiff can follow every step")
    _correct("LayerNorm in MLX")


def check_spike(make_spike):
    """Exercise 2: make_spike(slope) -> spike(x): H(x) forward, 1 / (1 + k|x|)^2 backward."""
    x = mx.array([-1.0, -0.25, 0.0, 0.5, 2.0])
    w = mx.array([1.0, 2.0, 3.0, 4.0, 5.0])
    for slope in (2.0, 5.0):
        spike = make_spike(slope)
        y = np.array(spike(x))
        assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0], (
            f"forward {y.tolist()}: the spike is H(x) = 1 where x > 0, else 0 (0 at x = 0)")
        g = np.array(mx.grad(lambda v, s=spike: (s(v) * w).sum())(x))
        want = FastSigmoid(slope).grad(np.array(x)) * np.array(w)
        if np.allclose(g, 0.0):
            raise AssertionError("the gradient is zero: decorate with @mx.custom_function and "
                                 "give it a .vjp that returns the surrogate")
        assert np.allclose(g, want, rtol=1e-5), (
            f"slope {slope}: gradient {np.round(g, 4)}, expected {np.round(want, 4)}: the vjp "
            "returns cotangent * 1 / (1 + slope |x|)^2")
    _correct("fast-sigmoid spike")


def check_rel_err(fn):
    """Exercise 3: fn(a, b) = ||a - b|| / (||a|| + ||b||), 0 when both are zero."""
    cases = [([3.0, 4.0], [3.0, 4.0], 0.0), ([3.0, 4.0], [0.0, 0.0], 1.0),
             ([1.0, 0.0], [0.0, 1.0], math.sqrt(2) / 2), ([[2.0]], [[1.0]], 1 / 3)]
    for a, b, want in cases:
        got = float(fn(np.array(a), np.array(b)))
        assert math.isclose(got, want, abs_tol=1e-12), (
            f"a={a}, b={b}: got {got}, expected {want:.6f}. Use the L2 norm of the whole "
            "tensor, not elementwise ratios")
    got = float(fn(np.zeros(3), np.zeros(3)))
    assert got == 0.0, f"two zero tensors agree: got {got}; guard the denominator"
    _correct("normwise relative error")


def check_to_tree(fn):
    """Exercise 4: fn(state) turns {"blocks.0.ln1.gamma": array} into MLX's nested tree."""
    from mlx.utils import tree_flatten

    from spike_lib.mlx_impl.model import SpikeLLM

    model = SpikeLLM(Config.tiny(n_layer=2))
    state = {k: np.zeros_like(v) for k, v in model.state_dict().items()}
    tree = fn(state)
    assert isinstance(tree, dict) and "blocks" in tree, (
        "the tree is a dict of dicts keyed by the name's parts: tree['blocks'][0]['ln1']...")
    assert isinstance(tree["blocks"], list), (
        "numbered parts (blocks.0, blocks.1) become a list, as MLX keeps model.blocks")
    got = {k: tuple(v.shape) for k, v in tree_flatten(tree)}
    want = {k: tuple(v.shape) for k, v in state.items()}
    assert got == want, "flattening the tree must give back every name and shape"
    assert all(isinstance(v, mx.array) for _, v in tree_flatten(tree)), "leaves are mx.array"
    model.update(tree)
    assert float(model.tok_emb.W.abs().sum()) == 0.0
    _correct("names to tree")


def check_compiled_step(fn):
    """Exercise 5: fn(model, optimizer) returns a compiled step(x, y) -> loss."""
    from spike_lib.mlx_impl.model import SpikeLLM
    from spike_lib.mlx_impl.train import AdamW, make_step

    cfg = Config.tiny(vocab_size=20, block_size=8, n_embd=16, n_head=2, d_ff=32)
    rng = np.random.default_rng(0)
    x, y = (mx.array(rng.integers(0, 20, (4, 8))) for _ in range(2))
    mine, ref = SpikeLLM(cfg), SpikeLLM(cfg)
    opt_mine, opt_ref = AdamW(1e-2), AdamW(1e-2)
    step, ref_step = fn(mine, opt_mine), make_step(ref, opt_ref, clip=None)
    for i in range(3):
        loss = step(x, y)
        want = ref_step(x, y)[0]
        loss = loss[0] if isinstance(loss, (tuple, list)) else loss
        assert loss is not None and math.isclose(float(loss), float(want), rel_tol=1e-5), (
            f"step {i}: loss {loss} should be {want}: return the loss of nn.value_and_grad, call "
            "optimizer.update(model, grads) inside the step, and list model.state and "
            "optimizer.state as the compiled function's inputs and outputs")
    for (name, p), q in zip(mine.state_dict().items(), ref.state_dict().values()):
        assert np.allclose(p, q, atol=1e-6), (
            f"{name} differs after three steps: call optimizer.update(model, grads) inside the "
            "step, and optimizer.init(model.trainable_parameters()) before mx.compile")
    _correct("compiled training step")
