"""MLX multi-level spikes (levels = D > 1, values j/D in [0, 1]): the NumPy spikes and
membranes, and mx.grad equal to the hand-written BPTT with the surrogate averaged over the D
levels."""

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from test_neurons_levels import COUNT, COUNT_ZERO, MEM, MEM_ZERO, X

from spike_lib.core.neurons import lif_backward
from spike_lib.core.neurons import lif_forward as np_lif_forward
from spike_lib.core.surrogate import SURROGATES
from spike_lib.mlx_impl.blocks import ClampLIF
from spike_lib.mlx_impl.neurons import LIF, lif_forward
from spike_lib.mlx_impl.spike import spike_fn
from spike_lib.numpy_impl.blocks import ClampLIF as NpClampLIF
from spike_lib.train.check import normwise_rel_error

GRAD_TOL = 1e-6  # normwise, float32: MLX and NumPy round tanh and exp differently (~5e-8)

RESETS = ["subtract", "zero", "subtract_after_leak"]


def _x(seed, shape=(8, 3, 5)):
    return np.random.default_rng(seed).normal(1.0, 1.5, shape).astype(np.float32)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_multi_level_spikes_by_hand(reset):
    # tests/test_neurons_levels.py's neurons (threshold 1.5, D = 3, levels 0.5, 1, 1.5):
    # u = 4.0 saturates at s = 1, u = 1.0 and 1.5 sit on a level and do not fire it
    x = mx.array(X.astype(np.float32))
    spk, mem = lif_forward(x, 0.5, 1.5, reset, levels=3)
    count, want_mem = (COUNT, MEM) if reset == "subtract" else (COUNT_ZERO, MEM_ZERO)
    np.testing.assert_array_equal(np.array(spk), (count / 3).astype(np.float32))
    np.testing.assert_allclose(np.array(mem), want_mem, atol=1e-6)
    lif = LIF(0.5, 1.5, reset, levels=3)
    lif(x)
    assert lif.firing_rate() == pytest.approx(count.sum() / 60)  # 14/60: mean spike value


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("detach", [True, False])
def test_forward_matches_numpy(reset, smooth, detach):
    x = _x(0)
    spk, mem = lif_forward(mx.array(x), 0.8, 0.7, reset, "arctan", smooth, detach, levels=3)
    ref_spk, ref_mem = np_lif_forward(x, 0.8, 0.7, reset, "arctan", smooth, levels=3)
    if smooth:
        np.testing.assert_allclose(np.array(spk), ref_spk, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(np.array(spk), ref_spk)
        np.testing.assert_array_equal(np.unique(ref_spk), np.arange(4, dtype=np.float32) / 3)
    np.testing.assert_allclose(np.array(mem), ref_mem, rtol=1e-5, atol=1e-5)


def _grad(x, dout, reset, surrogate, detach, smooth=False):
    def loss(xm):
        spk, _ = lif_forward(xm, 0.8, 0.7, reset, surrogate, smooth, detach, levels=3)
        return (spk * mx.array(dout)).sum()

    return np.array(mx.grad(loss)(mx.array(x)))


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("reset", RESETS)
def test_autodiff_matches_hand_written_bptt(reset, detach, surrogate):
    x = _x(1)
    dout = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    spk, mem = np_lif_forward(x, 0.8, 0.7, reset, surrogate, levels=3)
    ref = lif_backward(dout, mem, spk, 0.8, 0.7, reset, surrogate, detach, levels=3)
    assert normwise_rel_error(_grad(x, dout, reset, surrogate, detach), ref) <= GRAD_TOL


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("reset", RESETS)
def test_autodiff_matches_bptt_in_smooth_mode(reset, detach):
    x = _x(3, (9, 4))
    dout = np.random.default_rng(4).standard_normal(x.shape).astype(np.float32)
    spk, mem = np_lif_forward(x, 0.8, 0.7, reset, "sigmoid", smooth=True, levels=3)
    ref = lif_backward(dout, mem, spk, 0.8, 0.7, reset, "sigmoid", detach, levels=3)
    mine = _grad(x, dout, reset, "sigmoid", detach, smooth=True)
    assert normwise_rel_error(mine, ref) <= GRAD_TOL


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_fused_lif_equals_the_autodiff_loop_for_three_levels(reset):
    """The one-custom-function LIF (hand-written BPTT) against autodiff through a per-timestep
    loop of one spike_fn per level (level thresholds (k / 3) 0.7), for a loss that reads both
    spk and mem."""
    rng = np.random.default_rng(5)
    x = mx.array(_x(6, (6, 3, 5)) * 0.4)  # membranes around the levels, every one seen
    a, b = (mx.array(rng.standard_normal((6, 3, 5)).astype(np.float32)) for _ in range(2))
    spike = spike_fn("arctan")

    def loop(x):
        v, spks, mems = mx.zeros(x.shape[1:]), [], []
        for t in range(x.shape[0]):
            u = 0.8 * v + x[t]
            s = (spike(u - (1 / 3) * 0.7) + spike(u - (2 / 3) * 0.7) + spike(u - 0.7)) / 3
            r = mx.stop_gradient(s)
            v = u - 0.7 * r if reset == "subtract" else u * (1.0 - (r > 0))
            spks.append(s)
            mems.append(u)
        return mx.stack(spks), mx.stack(mems)

    def loss(fn):
        return lambda x: (fn(x)[0] * a).sum() + (fn(x)[1] * b).sum()

    fused = lambda x: lif_forward(x, 0.8, 0.7, reset, "arctan", levels=3)
    for got, want in zip(fused(x), loop(x)):
        np.testing.assert_array_equal(np.array(got), np.array(want))
    assert float(loop(x)[0].max()) == 1.0
    np.testing.assert_array_equal(np.unique(np.array(loop(x)[0])),
                                  np.arange(4, dtype=np.float32) / 3)
    np.testing.assert_allclose(np.array(mx.grad(loss(fused))(x)),
                               np.array(mx.grad(loss(loop))(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_clamp_lif_matches_numpy(reset):
    x = _x(7, (6, 4))
    kw = {"beta": 0.8, "threshold": 0.7, "reset": reset, "detach_reset": False, "levels": 3}
    ref = NpClampLIF(1.8, **kw)
    want = ref(x)
    lif = ClampLIF(1.8, **kw)
    np.testing.assert_array_equal(np.array(lif(mx.array(x))), want)
    # levels 0.7 / 3, 1.4 / 3, 0.7; the clamp at 1.8 is above them all: s = 1 at most
    np.testing.assert_array_equal(np.unique(want), np.arange(4, dtype=np.float32) / 3)
    dout = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)
    grad = mx.grad(lambda xm: (lif(xm) * mx.array(dout)).sum())(mx.array(x))
    assert normwise_rel_error(np.array(grad), ref.backward(dout)) <= GRAD_TOL
