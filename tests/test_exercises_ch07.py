"""Chapter 7's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import warnings

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from mlx import nn
from mlx.utils import tree_unflatten

from spike_lib.exercises import ch07
from spike_lib.mlx_impl.train import loss_fn

warnings.filterwarnings("ignore", "MLX is using its slow", RuntimeWarning)


def layernorm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return gamma * (x - mean) / mx.sqrt(var + eps) + beta


def test_layernorm(capsys):
    ch07.check_layernorm(layernorm)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="gamma and beta"):
        ch07.check_layernorm(lambda x, g, b, e: layernorm(x, 1.0, 0.0, e))
    with pytest.raises(AssertionError, match="gradient"):  # right numbers, autodiff cut
        ch07.check_layernorm(lambda x, g, b, e: mx.stop_gradient(layernorm(x, g, b, e)))


def make_spike(slope):
    @mx.custom_function
    def spike(x):
        return (x > 0).astype(x.dtype)

    @spike.vjp
    def spike_vjp(x, dspk, spk):
        return dspk / (1.0 + slope * mx.abs(x)) ** 2

    return spike


def test_spike(capsys):
    ch07.check_spike(make_spike)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="custom_function"):
        ch07.check_spike(lambda slope: lambda x: (x > 0).astype(x.dtype))
    with pytest.raises(AssertionError, match="x > 0"):
        ch07.check_spike(lambda slope: lambda x: (x >= 0).astype(x.dtype))


def test_rel_err(capsys):
    def rel_err(a, b):
        den = np.linalg.norm(a) + np.linalg.norm(b)
        return 0.0 if den == 0 else np.linalg.norm(a - b) / den

    ch07.check_rel_err(rel_err)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="L2 norm"):
        ch07.check_rel_err(lambda a, b: np.max(np.abs(a - b) / (np.abs(a) + np.abs(b) + 1e-12)))
    with pytest.raises(AssertionError, match="guard"):
        ch07.check_rel_err(lambda a, b: np.float64(np.linalg.norm(a - b)) / np.float64(
            np.linalg.norm(a) + np.linalg.norm(b)) if np.any(a) or np.any(b) else np.nan)


def test_to_tree(capsys):
    ch07.check_to_tree(lambda state: tree_unflatten([(k, mx.array(v)) for k, v in state.items()]))
    assert "correct" in capsys.readouterr().out

    def dict_only(state):  # nested dicts with "0" keys: blocks should be a list
        tree = {}
        for name, v in state.items():
            *parts, leaf = name.split(".")
            node = tree
            for p in parts:
                node = node.setdefault(p, {})
            node[leaf] = mx.array(v)
        return tree

    with pytest.raises(AssertionError, match="list"):
        ch07.check_to_tree(dict_only)


def test_compiled_step(capsys):
    def compiled_step(model, optimizer):
        optimizer.init(model.trainable_parameters())
        state = [model.state, optimizer.state]
        vg = nn.value_and_grad(model, loss_fn)

        def step(x, y):
            loss, grads = vg(model, x, y)
            optimizer.update(model, grads)
            return loss

        return mx.compile(step, inputs=state, outputs=state)

    ch07.check_compiled_step(compiled_step)
    assert "correct" in capsys.readouterr().out

    def no_update(model, optimizer):
        vg = nn.value_and_grad(model, loss_fn)
        return lambda x, y: vg(model, x, y)[0]

    with pytest.raises(AssertionError, match="optimizer.update"):
        ch07.check_compiled_step(no_update)
