"""MLX LIF and spike_fn: the same numbers as NumPy, and mx.grad equal to the hand-written BPTT."""

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")

from spike_lib.core.config import LIFConfig
from spike_lib.core.gradcheck import rel_error
from spike_lib.mlx_impl.neurons import LIF, lif_forward
from spike_lib.mlx_impl.spike import spike_fn
from spike_lib.core.neurons import lif_backward
from spike_lib.core.neurons import lif_forward as np_lif_forward
from spike_lib.core.surrogate import SURROGATES, get_surrogate

RESETS = ["subtract", "zero", "subtract_after_leak"]  # the last: snnTorch's convention


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_spike_fn_forward_is_step_and_grad_is_surrogate(name):
    x = mx.array([-1.0, -0.3, 0.0, 0.2, 1.5])
    spike = spike_fn(name)
    assert spike(x).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    grad = mx.grad(lambda v: (spike(v) * mx.array([1.0, 2.0, 3.0, 4.0, 5.0])).sum())(x)
    ref = get_surrogate(name).grad(np.array(x, dtype=np.float64)) * [1, 2, 3, 4, 5]
    np.testing.assert_allclose(np.array(grad), ref, rtol=2e-5, atol=1e-7)  # float32


def test_spike_fn_is_cached_and_scaled():
    assert spike_fn("arctan") is spike_fn("arctan", 2.0)
    g = mx.grad(lambda v: spike_fn("rectangular", 0.5)(v).sum())(mx.array([0.0, 0.3]))
    assert g.tolist() == [2.0, 0.0]  # 1/w inside |x| < w/2


def _lif_grad(x, dout, reset, surrogate, detach, smooth=False, beta=0.8):
    def loss(xm):
        spk, _ = lif_forward(xm, beta, 1.0, reset, surrogate, smooth, detach)
        return (spk * mx.array(dout)).sum()

    return np.array(mx.grad(loss)(mx.array(x)))


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("smooth", [False, True])
def test_forward_matches_numpy(reset, smooth):
    x = np.random.default_rng(0).normal(0.5, 0.8, (10, 3, 4)).astype(np.float32)
    spk, mem = lif_forward(mx.array(x), 0.8, 1.0, reset, "arctan", smooth)
    ref_spk, ref_mem = np_lif_forward(x, 0.8, 1.0, reset, "arctan", smooth)
    np.testing.assert_allclose(np.array(spk), ref_spk, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(mem), ref_mem, rtol=1e-5, atol=1e-6)
    if not smooth:
        assert 0.1 < ref_spk.mean() < 0.6  # the test sees spikes and silences


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("reset", RESETS)
def test_autodiff_matches_hand_written_bptt(reset, detach, surrogate):
    rng = np.random.default_rng(1)
    x = rng.normal(0.5, 0.8, (12, 3, 5)).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    spk, mem = np_lif_forward(x, 0.8, 1.0, reset, surrogate)
    ref = lif_backward(dout, mem, spk, 0.8, 1.0, reset, surrogate, detach)
    assert rel_error(_lif_grad(x, dout, reset, surrogate, detach), ref) <= 1e-4


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("reset", RESETS)
def test_autodiff_matches_bptt_in_smooth_mode(reset, detach):
    rng = np.random.default_rng(2)
    x = rng.normal(0.5, 0.8, (9, 4)).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    spk, mem = np_lif_forward(x, 0.8, 1.0, reset, "sigmoid", smooth=True)
    ref = lif_backward(dout, mem, spk, 0.8, 1.0, reset, "sigmoid", detach)
    mine = _lif_grad(x, dout, reset, "sigmoid", detach, smooth=True)
    assert rel_error(mine, ref) <= 1e-4


class _Layer(nn.Module):
    def __init__(self, W, **lif_kwargs):
        super().__init__()
        self.W = W
        self.lif = LIF(**lif_kwargs)

    def __call__(self, inp):
        return self.lif(inp @ self.W)  # (T, N_in) @ (N_in, N_out)


@pytest.mark.parametrize("reset", RESETS)
def test_value_and_grad_of_weights_matches_numpy(reset):
    rng = np.random.default_rng(3)
    inp = (rng.random((20, 8)) < 0.3).astype(np.float32)  # (T, N_in) spikes
    W = rng.normal(0.0, 0.6, (8, 5)).astype(np.float32)
    target = rng.random(5).astype(np.float32)
    model = _Layer(mx.array(W), beta=0.9, reset=reset, detach_reset=False)

    def loss_fn(model, inp):
        return ((model(inp).mean(0) - mx.array(target)) ** 2).sum()

    loss, grads = nn.value_and_grad(model, loss_fn)(model, mx.array(inp))
    spk, mem = np_lif_forward(inp @ W, 0.9, 1.0, reset)
    rate = spk.mean(0)
    dspk = np.broadcast_to(2 * (rate - target) / len(spk), spk.shape)
    dW = inp.T @ lif_backward(dspk, mem, spk, 0.9, 1.0, reset, detach_reset=False)
    assert float(loss) == pytest.approx(float(((rate - target) ** 2).sum()), rel=1e-6)
    assert rel_error(np.array(grads["W"]), dW) <= 1e-4
    assert set(grads) == {"W", "lif"} and not grads["lif"]  # LIF has no parameters


def test_lif_module():
    lif = LIF.from_config(
        LIFConfig(beta=0.5, reset="zero", surrogate="sigmoid", surrogate_scale=5.0)
    )
    assert lif.surrogate.slope == 5.0 and lif.reset == "zero"
    assert np.isnan(lif.firing_rate())
    spk = lif(mx.full((4, 2), 0.6))
    assert np.array(spk)[:, 0].tolist() == [0, 0, 1, 0]
    assert lif.firing_rate() == pytest.approx(0.25)
    assert lif.parameters() == {}  # last_spk is statistics, not a parameter
    assert lif.set_smooth().smooth
    assert 0.0 < float(lif(mx.full((4, 2), 0.6)).max()) < 1.0  # smooth: no binary spikes


def test_single_timestep_and_integer_input():
    spk, mem = lif_forward(mx.array([[2, 0, 1]]), beta=0.5)
    assert spk.shape == mem.shape == (1, 3) and mem.dtype == mx.float32
    assert spk.tolist() == [[1.0, 0.0, 0.0]]
    spk, mem = lif_forward([2, 0, 1], beta=0.5)
    assert mem.tolist() == [2.0, 0.5, 1.25] and spk.tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "kwargs, field",
    [({"beta": 1.2}, "beta"), ({"threshold": 0}, "threshold"), ({"reset": "hard"}, "reset")],
)
def test_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        lif_forward(mx.ones((3,)), **kwargs)
    with pytest.raises(ValueError, match=field):
        LIF(**kwargs)
    with pytest.raises(ValueError, match="time axis"):
        lif_forward(mx.array(1.0))


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_fused_lif_gradient_through_spikes_and_membranes_equals_the_autodiff_loop(reset):
    """lif_forward's one-custom-function LIF (hand-written BPTT) against autodiff through the
    per-timestep loop with spike_fn, for a loss that reads both spk and mem."""
    rng = np.random.default_rng(3)
    x = mx.array(rng.normal(0.5, 0.8, (6, 3, 5)).astype(np.float32))
    a, b = (mx.array(rng.standard_normal((6, 3, 5)).astype(np.float32)) for _ in range(2))
    spike = spike_fn("arctan")

    def loop(x):
        v, spks, mems = mx.zeros(x.shape[1:]), [], []
        for t in range(x.shape[0]):
            u = 0.8 * v + x[t]
            s = spike(u - 1.0)
            r = mx.stop_gradient(s)
            v = u - 1.0 * r if reset == "subtract" else u * (1.0 - r)
            spks.append(s)
            mems.append(u)
        return mx.stack(spks), mx.stack(mems)

    def loss(fn):
        return lambda x: (fn(x)[0] * a).sum() + (fn(x)[1] * b).sum()

    fused = lambda x: lif_forward(x, 0.8, 1.0, reset, "arctan")
    for got, want in zip(fused(x), loop(x)):
        np.testing.assert_array_equal(np.array(got), np.array(want))
    np.testing.assert_allclose(np.array(mx.grad(loss(fused))(x)),
                               np.array(mx.grad(loss(loop))(x)), rtol=1e-6, atol=1e-6)
