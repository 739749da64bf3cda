"""LIF forward/backward and the encodings: hand-computed values, gradient checks, bad input."""

import math

import numpy as np
import pytest

from spike_lib.core.config import LIFConfig
from spike_lib.core.gradcheck import check_module, numerical_grad, rel_error
from spike_lib.core.neurons import (
    beta_from_tau,
    direct_encode,
    latency_encode,
    lif_backward,
    lif_forward,
    rate_encode,
)
from spike_lib.numpy_impl.neurons import LIF


def test_leaky_decay_snntorch_style():
    # snnTorch's test_leaky: beta = 0.5, input [0.25, 0, ...] halves the membrane every step
    spk, mem = lif_forward(np.array([0.25, 0.0, 0.0, 0.0]), beta=0.5, threshold=1.0)
    np.testing.assert_array_equal(mem, [0.25, 0.125, 0.0625, 0.03125])
    np.testing.assert_array_equal(spk, [0, 0, 0, 0])


@pytest.mark.parametrize("reset, last_mem", [("subtract", 0.625), ("zero", 0.6)])
def test_spike_and_both_resets(reset, last_mem):
    # u = 0.6, 0.9, 1.05 (spike) then v = 0.05 (subtract) or 0 (zero); u4 = 0.5 v + 0.6
    spk, mem = lif_forward(np.full(4, 0.6), beta=0.5, threshold=1.0, reset=reset)
    np.testing.assert_array_equal(spk, [0, 0, 1, 0])
    np.testing.assert_allclose(mem, [0.6, 0.9, 1.05, last_mem], atol=1e-12)


def test_exactly_at_threshold_does_not_fire():
    spk, _ = lif_forward(np.array([1.0, 1.5]), beta=0.0, threshold=1.0)
    np.testing.assert_array_equal(spk, [0, 1])


def test_single_timestep_and_integer_input():
    spk, mem = lif_forward(np.array([[2, 0, 1]]), beta=0.5, threshold=1.0)  # T = 1, ints
    assert spk.shape == mem.shape == (1, 3)
    assert mem.dtype == np.float64  # integers are promoted, not truncated
    np.testing.assert_array_equal(spk, [[1, 0, 0]])
    spk, mem = lif_forward(np.array([2, 0, 1]), beta=0.5, threshold=1.0)  # (T,) of ints
    np.testing.assert_array_equal(mem, [2.0, 0.5, 1.25])  # v = 1 after the first spike
    np.testing.assert_array_equal(spk, [1, 0, 1])


def test_float32_stays_float32():
    spk, mem = lif_forward(np.ones((3, 2), dtype=np.float32))
    assert spk.dtype == mem.dtype == np.float32


def test_beta_one_subtract_counts_match_closed_form():
    # beta = 1, subtract reset: v[t] = t x - n threshold, so n_T = ceil(T x / threshold) - 1
    T, threshold = 200, 0.7
    x = np.array([0.013, 0.1, 0.33, 0.5, 0.69])
    spk, _ = lif_forward(direct_encode(x, T), beta=1.0, threshold=threshold)
    np.testing.assert_array_equal(spk.sum(0), np.ceil(T * x / threshold) - 1)


def test_zero_reset_period_matches_closed_form():
    # from rest u_n = x (1 - beta^n) / (1 - beta): the period is the first n with u_n > threshold
    beta, threshold, T = 0.8, 1.0, 240
    x = np.array([0.25, 0.3, 0.5, 1.2])
    spk, _ = lif_forward(direct_encode(x, T), beta, threshold, reset="zero")
    period = np.floor(np.log(1 - threshold * (1 - beta) / x) / np.log(beta)) + 1
    np.testing.assert_array_equal(period, [8, 5, 3, 1])
    np.testing.assert_array_equal(spk.sum(0), T // period)
    assert lif_forward(np.full(T, 0.2), beta, threshold, "zero")[0].sum() == 0  # rheobase 0.2


@pytest.mark.parametrize("detach, expected", [(True, [0.75, 1.5, 1.0]), (False, [0.0, 1.0, 1.0])])
def test_backward_hand_computed(detach, expected):
    # rectangular surrogate of width 1: g = 1 at u - threshold = -0.4, -0.1, 0.05
    spk, mem = lif_forward(np.full(3, 0.6), 0.5, 1.0, "subtract", "rectangular")
    dx = lif_backward(
        np.array([0.0, 1.0, 1.0]),
        mem,
        spk,
        0.5,
        1.0,
        "subtract",
        "rectangular",
        detach_reset=detach,
    )
    np.testing.assert_allclose(dx, expected, atol=1e-12)


def snntorch_leaky(x, beta, threshold):
    """snnTorch's Leaky(reset_mechanism="subtract") written out: U = beta U + x - S_prev thr."""
    mem, spk_prev, mems, spks = 0.0, 0.0, [], []
    for x_t in x:
        mem = beta * mem + x_t - spk_prev * threshold
        spk_prev = float(mem > threshold)
        mems.append(mem)
        spks.append(spk_prev)
    return np.array(spks), np.array(mems)


@pytest.mark.parametrize("reset, spikes, mems", [
    # u = 1.5 fires; "subtract" leaks the surplus: 0.5 * 0.5 + 0.8 = 1.05 fires again
    ("subtract", [1, 1, 0, 0], [1.5, 1.05, 0.025, 0.0125]),
    # snnTorch takes the whole threshold after the leak: 0.5 * 1.5 + 0.8 - 1 = 0.55, no spike
    ("subtract_after_leak", [1, 0, 0, 0], [1.5, 0.55, 0.275, 0.1375]),
    ("zero", [1, 0, 0, 0], [1.5, 0.8, 0.4, 0.2]),
])
def test_reset_conventions_on_a_pulse_that_spikes(reset, spikes, mems):
    spk, mem = lif_forward(np.array([1.5, 0.8, 0.0, 0.0]), beta=0.5, threshold=1.0, reset=reset)
    np.testing.assert_array_equal(spk, spikes)
    np.testing.assert_allclose(mem, mems, atol=1e-12)


def test_subtract_after_leak_is_snntorch_and_subtract_is_not():
    x = np.random.default_rng(4).uniform(0.0, 1.2, 200)
    ref_spk, ref_mem = snntorch_leaky(x, 0.7, 1.0)
    spk, mem = lif_forward(x, 0.7, 1.0, "subtract_after_leak")
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_allclose(mem, ref_mem, atol=1e-12)
    soft, _ = lif_forward(x, 0.7, 1.0, "subtract")
    assert 0 < (soft != ref_spk).sum() and soft.sum() > ref_spk.sum()  # snnTorch resets harder


@pytest.mark.parametrize("detach, expected", [(True, [1.25, 0.5, 1.0]), (False, [0.75, 0.5, 1.0])])
def test_backward_subtract_after_leak_hand_computed(detach, expected):
    # x = 1.2, 0.6, 0.6: u = 1.2 (spike), 0.6 + 0.6 - 1 = 0.2, 0.1 + 0.6 = 0.7; g = 1 at
    # u - 1 = 0.2 and -0.3, 0 at -0.8. Undetached, s[0] gets -1 * dL/du[1] = -0.5
    spk, mem = lif_forward(np.array([1.2, 0.6, 0.6]), 0.5, 1.0, "subtract_after_leak", "rectangular")
    np.testing.assert_allclose(mem, [1.2, 0.2, 0.7], atol=1e-12)
    dx = lif_backward(np.array([1.0, 0.0, 1.0]), mem, spk, 0.5, 1.0, "subtract_after_leak",
                      "rectangular", detach_reset=detach)
    np.testing.assert_allclose(dx, expected, atol=1e-12)


def test_beta_from_tau_is_the_rc_decay():
    assert beta_from_tau(2.0) == pytest.approx(math.exp(-0.5))  # 0.607, not Euler's 0.5
    assert beta_from_tau(10.0, dt=1.0) == pytest.approx(0.904837, abs=1e-6)
    assert beta_from_tau(1.0, dt=1e-3) == pytest.approx(1 - 1e-3, abs=1e-6)
    with pytest.raises(ValueError, match="tau"):
        beta_from_tau(0.0)


@pytest.mark.parametrize("reset", ["subtract", "zero", "subtract_after_leak"])
@pytest.mark.parametrize("surrogate", ["sigmoid", "fast_sigmoid", "arctan", "rectangular"])
def test_gradcheck_smooth_mode(reset, surrogate):
    rng = np.random.default_rng(0)
    lif = LIF(0.8, 1.0, reset, surrogate, detach_reset=False).set_smooth(True)
    errors = check_module(lif, rng.normal(0.5, 0.7, (7, 2, 3)), rng)
    assert errors["x"] < 1e-6


def test_detach_reset_is_not_the_exact_gradient():
    rng = np.random.default_rng(1)
    x = rng.normal(0.6, 0.7, (8, 4))
    dout = rng.standard_normal(x.shape)
    spk, mem = lif_forward(x, 0.8, 1.0, "subtract", "arctan", smooth=True)

    def loss():
        return float(np.sum(lif_forward(x, 0.8, 1.0, "subtract", "arctan", smooth=True)[0] * dout))

    numeric = numerical_grad(loss, x)
    exact = lif_backward(dout, mem, spk, 0.8, 1.0, "subtract", "arctan", detach_reset=False)
    detached = lif_backward(dout, mem, spk, 0.8, 1.0, "subtract", "arctan", detach_reset=True)
    assert rel_error(exact, numeric) < 1e-6
    assert rel_error(detached, numeric) > 1e-2


def test_lif_module_from_config_and_rate():
    cfg = LIFConfig(beta=0.5, threshold=1.0, reset="zero", surrogate="sigmoid", surrogate_scale=5.0)
    lif = LIF.from_config(cfg)
    assert lif.surrogate.slope == 5.0 and lif.reset == "zero"
    assert math.isnan(lif.firing_rate())
    spk = lif(np.full((4, 2), 0.6))  # spikes at t = 2 only, as in the hand-computed case
    assert lif.firing_rate() == pytest.approx(0.25)
    dx = lif.backward(np.ones_like(spk))
    assert dx.shape == (4, 2)
    assert lif.num_params() == 0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"beta": -0.1}, "beta"),
        ({"beta": 1.5}, "beta"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": -1.0}, "threshold"),
        ({"reset": "soft"}, "reset"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, field):
    with pytest.raises(ValueError, match=field):
        lif_forward(np.ones(3), **kwargs)
    with pytest.raises(ValueError, match=field):
        LIF(**kwargs)


@pytest.mark.parametrize("x", [np.float64(1.0), np.zeros((0, 3))])
def test_bad_shape_names_x(x):
    with pytest.raises(ValueError, match=r"x has shape .*time axis T >= 1"):
        lif_forward(x)


def test_direct_encode():
    x = np.array([[0.1, 0.2], [0.3, 0.4]])
    out = direct_encode(x, 3)
    assert out.shape == (3, 2, 2)
    np.testing.assert_array_equal(out[2], x)
    out[0, 0, 0] = 9.0  # a real copy, not a view of x
    assert x[0, 0] == 0.1


def test_rate_encode_counts():
    rng = np.random.default_rng(0)
    T = 2000
    out = rate_encode(np.array([0.0, 1.0, 0.3]), T, rng)
    assert out.shape == (T, 3) and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert out[:, 0].sum() == 0 and out[:, 1].sum() == T
    assert abs(out[:, 2].mean() - 0.3) < 4 * math.sqrt(0.3 * 0.7 / T)  # within 4 sigma


def test_latency_encode_times():
    out = latency_encode(np.array([1.0, 0.5, 0.0, 0.25]), 5)  # t = rint((1 - x) * 4)
    assert out.shape == (5, 4)
    np.testing.assert_array_equal(out.sum(0), [1, 1, 0, 1])  # one spike each; x = 0 never
    np.testing.assert_array_equal(out.argmax(0)[[0, 1, 3]], [0, 2, 3])
    grid = latency_encode(np.array([[1.0, 0.0], [0.5, 0.75]]), 3)
    assert grid.shape == (3, 2, 2)
    np.testing.assert_array_equal(grid.argmax(0), [[0, 0], [1, 0]])  # rint(0.5) = 0 (even)


@pytest.mark.parametrize("bad", [0, -2, 2.5])
def test_encoders_reject_bad_num_steps(bad):
    rng = np.random.default_rng(0)
    for call in (
        lambda: direct_encode(0.5, bad),
        lambda: rate_encode(0.5, bad, rng),
        lambda: latency_encode(0.5, bad),
    ):
        with pytest.raises(ValueError, match="num_steps"):
            call()


def test_encoders_reject_out_of_range_x():
    with pytest.raises(ValueError, match=r"x in \[0, 1\]"):
        rate_encode(np.array([0.5, 1.2]), 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"x in \[0, 1\]"):
        latency_encode(np.array([-0.1]), 4)
