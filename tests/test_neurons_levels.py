"""Multi-level spikes, s = (1/D) sum_{k=1..D} H(u - k threshold / D) in {0, 1/D, ..., 1}:
hand-computed values, D = 1 equal to the binary LIF number for number, the in-place path equal
to the definition at ties, gradient checks in smooth mode (I-LIF, Luo et al. 2024, normalised
to [0, 1]; SpikeLM, Xing et al. 2024)."""

import numpy as np
import pytest

from spike_lib.core.gradcheck import check_module, numerical_grad, rel_error
from spike_lib.core.neurons import (
    fire,
    fire_grad,
    fired,
    level_thresholds,
    lif_backward,
    lif_forward,
)
from spike_lib.core.surrogate import get_surrogate
from spike_lib.numpy_impl.blocks import ClampLIF
from spike_lib.numpy_impl.neurons import LIF

# four neurons over T = 5, beta 0.5, threshold 1.5, D = 3: level thresholds 0.5, 1.0, 1.5
# (exact in binary), s = count / 3, soft reset v = u - 1.5 s = u - 0.5 count (columns):
#   a: u = 0.3 (0 levels), 0.15 + 0.6 = 0.75 (1: s = 1/3, v = 0.25),
#      0.125 + 0.9 = 1.025 (2: s = 2/3, v = 0.025), 0.0125 + 1.6 = 1.6125 (3: s = 1, v = 0.1125),
#      0.05625 (0)
#   b: u = 4.0 saturates: 8 levels of 0.5 lie below it, s = 1 (3 levels), v = 4 - 1.5 = 2.5;
#      u = 1.25 (2 levels: s = 2/3, v = 0.25); u = 0.125, 0.0625, 0.03125 (0)
#   c: u = 1.0 exactly on the second level: only the first is crossed, s = 1/3, v = 0.5;
#      then u = 0.25, 0.125, 0.0625, 0.03125
#   d: u = 1.5 exactly on the top level: two levels, s = 2/3, v = 1.5 - 1 = 0.5; then halves
X = np.array([[0.3, 4.0, 1.0, 1.5], [0.6, 0.0, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0],
              [1.6, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
COUNT = np.array([[0, 3, 1, 2], [1, 2, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0]])
MEM = [[0.3, 4.0, 1.0, 1.5], [0.75, 1.25, 0.25, 0.25], [1.025, 0.125, 0.125, 0.125],
       [1.6125, 0.0625, 0.0625, 0.0625], [0.05625, 0.03125, 0.03125, 0.03125]]
# "zero": any spike empties the membrane (1 - min(3 s, 1) = 0): a sees u = 0.3, 0.15 + 0.6 =
# 0.75 (1 level), 0.9 (1 level: not above 1.0), 1.6 (3 levels), 0
COUNT_ZERO = np.array([[0, 3, 1, 2], [1, 0, 0, 0], [1, 0, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0]])
MEM_ZERO = [[0.3, 4.0, 1.0, 1.5], [0.75, 0.0, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0],
            [1.6, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]


def test_level_thresholds_end_exactly_at_the_threshold():
    assert level_thresholds(1.5, 3) == [0.5, 1.0, 1.5]
    # (k / D) threshold: the top level is the threshold itself, where k threshold / D is not
    # (3 x 0.1 / 3 = 0.10000000000000002)
    assert level_thresholds(0.1, 3)[-1] == 0.1 and 3 * 0.1 / 3 != 0.1
    assert level_thresholds(0.7, 1) == [0.7]


def test_multi_level_spikes_and_soft_reset_by_hand():
    spk, mem = lif_forward(X, beta=0.5, threshold=1.5, levels=3)
    np.testing.assert_array_equal(spk, COUNT / 3)
    assert set(np.unique(spk * 3).round(12)) == {0, 1, 2, 3}  # every level, 1 at most
    np.testing.assert_allclose(mem, MEM, atol=1e-12)
    lif = LIF(beta=0.5, threshold=1.5, levels=3)  # the in-place float32 path, same numbers
    np.testing.assert_array_equal(lif(X.astype(np.float32)), (COUNT / 3).astype(np.float32))
    np.testing.assert_allclose(lif.cache[0], MEM, atol=1e-6)
    # the mean spike VALUE: counts 6 + 5 + 1 + 2 = 14 over 20 entries, each worth 1/3
    assert lif.firing_rate() == pytest.approx(14 / 60)


def test_multi_level_spikes_and_zero_reset_by_hand():
    spk, mem = lif_forward(X, beta=0.5, threshold=1.5, reset="zero", levels=3)
    np.testing.assert_array_equal(spk, COUNT_ZERO / 3)
    np.testing.assert_allclose(mem, MEM_ZERO, atol=1e-12)
    lif = LIF(beta=0.5, threshold=1.5, reset="zero", levels=3)
    np.testing.assert_array_equal(lif(X.astype(np.float32)),
                                  (COUNT_ZERO / 3).astype(np.float32))
    np.testing.assert_allclose(lif.cache[0], MEM_ZERO, atol=1e-6)


def test_zero_reset_factor_is_exactly_one_for_every_spike():
    # min(D s, 1): 41 fl(1/41) rounds below 1 in float32 (0.99999994), the factor must not
    s = np.array([0, 1, 2, 41], np.float32) / np.float32(41)
    assert np.float32(41) * s[1] < 1
    np.testing.assert_array_equal(fired(s, 41), [0, 1, 1, 1])
    np.testing.assert_array_equal(fired(np.array([0.0, 1.0]), 1), [0, 1])  # D = 1: s itself


@pytest.mark.parametrize("detach, expected", [(True, [7 / 12, 0.5]), (False, [11 / 24, 0.5])])
def test_backward_averages_the_surrogate_over_levels_by_hand(detach, expected):
    # rectangle of width 2 (g = 0.5 where |z| < 1), threshold 1.5, D = 3 (levels 0.5, 1, 1.5):
    # u0 = 1.8 fires 3 levels (s = 1, v = 0.3); z = 1.3, 0.8, 0.3: g = (0 + 0.5 + 0.5) / 3 = 1/3
    # u1 = 0.15 + 0.5 = 0.65 fires 1 level; z = 0.15, -0.35, -0.85: g = 1.5 / 3 = 0.5
    # detached: du1 = 0.5, du0 = 1/3 + 0.5 du1 = 7/12; undetached the reset takes
    # threshold x dv0 = 1.5 x 0.25 from ds0: du0 = 0.25 + (1 - 0.375) / 3 = 11/24
    sg = get_surrogate("rectangular", 2.0)
    spk, mem = lif_forward(np.array([1.8, 0.5]), 0.5, 1.5, "subtract", sg, levels=3)
    np.testing.assert_array_equal(spk, [1, 1 / 3])
    np.testing.assert_allclose(fire_grad(mem, 1.5, 3, sg), [1 / 3, 0.5])
    dx = lif_backward(np.ones(2), mem, spk, 0.5, 1.5, "subtract", sg, detach, levels=3)
    np.testing.assert_allclose(dx, expected, atol=1e-12)


def binary_lif(x, beta, threshold, reset, sg, smooth):
    """The binary LIF as it was written before levels existed (the reference for D = 1)."""
    spk, mem = np.empty_like(x), np.empty_like(x)
    v = np.zeros_like(x[0])
    for t in range(x.shape[0]):
        u = beta * v + x[t]
        s = sg.smooth(u - threshold) if smooth else sg.forward(u - threshold)
        v = u - threshold * s if reset == "subtract" else u * (1.0 - s)
        mem[t], spk[t] = u, s
    return spk, mem


def binary_lif_backward(dspk, mem, spk, beta, threshold, reset, sg, detach_reset):
    dx, dv = np.empty_like(mem), np.zeros_like(mem[0])
    for t in reversed(range(mem.shape[0])):
        u, s = mem[t], spk[t]
        if reset == "subtract":
            du, ds = dv, dspk[t] - (0.0 if detach_reset else threshold * dv)
        else:
            du, ds = dv * (1.0 - s), dspk[t] - (0.0 if detach_reset else u * dv)
        du = du + ds * sg.grad(u - threshold)
        dx[t] = du
        dv = beta * du
    return dx


@pytest.mark.parametrize("dtype, reset, detach, smooth", [
    (np.float32, "subtract", True, False),  # the in-place fast path
    (np.float32, "zero", True, False), (np.float64, "subtract", False, False),
    (np.float64, "zero", False, True), (np.float32, "subtract", True, True)])
def test_one_level_is_the_binary_lif_bit_for_bit(dtype, reset, detach, smooth):
    rng = np.random.default_rng(5)
    x = rng.normal(0.6, 0.8, (9, 4, 6)).astype(dtype)
    dspk = rng.standard_normal(x.shape).astype(dtype)
    sg = get_surrogate("arctan", 2.0)
    ref_spk, ref_mem = binary_lif(x, 0.7, 0.9, reset, sg, smooth)
    ref_dx = binary_lif_backward(dspk, ref_mem, ref_spk, 0.7, 0.9, reset, sg, detach)
    lif = LIF(0.7, 0.9, reset, "arctan", 2.0, detach, levels=1).set_smooth(smooth)
    np.testing.assert_array_equal(lif(x), ref_spk)
    np.testing.assert_array_equal(lif.cache[0], ref_mem)
    np.testing.assert_array_equal(lif.backward(dspk), ref_dx)
    spk, mem = lif_forward(x, 0.7, 0.9, reset, sg, smooth, levels=1)
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_array_equal(lif_backward(dspk, mem, spk, 0.7, 0.9, reset, sg, detach, 1),
                                  ref_dx)
    if not smooth:
        assert 0.1 < ref_spk.mean() < 0.6  # spikes and silences both seen


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.7, 1.0])
def test_fast_count_equals_the_sum_of_steps_at_and_around_every_level(threshold):
    # u = x at t = 0: membranes exactly at (k / D) threshold (as float32 rounds it) and one ulp
    # on either side, where a count from u D / threshold would be off by one (0.3 / 0.1 > 3)
    levels = 4
    at = np.array([(k / levels) * threshold for k in range(levels + 2)], np.float32)
    u = np.concatenate([at, np.nextafter(at, np.float32(np.inf)),
                        np.nextafter(at, np.float32(-np.inf)), -at])
    count = sum((u > np.float32(th)).astype(np.float32)
                for th in level_thresholds(threshold, levels))
    want = count / np.float32(levels)
    assert set(np.unique(want)) == {0, 0.25, 0.5, 0.75, 1}
    np.testing.assert_array_equal(want[:levels + 2], [0, 0, 0.25, 0.5, 0.75, 1])  # ties: no
    lif = LIF(0.5, threshold, levels=levels)
    np.testing.assert_array_equal(lif(u[None]), want[None])
    np.testing.assert_array_equal(fire(u, threshold, levels), want)
    np.testing.assert_array_equal(lif_forward(u[None], 0.5, threshold, levels=levels)[0],
                                  want[None])


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_fast_path_equals_lif_forward_and_backward_over_time(reset):
    rng = np.random.default_rng(6)
    x = rng.normal(0.5, 0.8, (8, 5, 7)).astype(np.float32)
    dspk = rng.standard_normal(x.shape).astype(np.float32)
    lif = LIF(0.8, 0.6, reset, levels=3)
    spk, mem = lif_forward(x, 0.8, 0.6, reset, lif.surrogate, levels=3)
    np.testing.assert_array_equal(lif(x), spk)
    np.testing.assert_array_equal(lif.cache[0], mem)
    np.testing.assert_array_equal(lif.backward(dspk),
                                  lif_backward(dspk, mem, spk, 0.8, 0.6, reset, lif.surrogate,
                                               levels=3))
    np.testing.assert_array_equal(np.unique(spk), np.arange(4, dtype=np.float32) / 3)


@pytest.mark.parametrize("reset", ["subtract", "zero", "subtract_after_leak"])
@pytest.mark.parametrize("surrogate", ["sigmoid", "arctan", "rectangular"])
def test_lif_backward_gradcheck_three_levels_smooth_mode(reset, surrogate):
    rng = np.random.default_rng(7)
    x = rng.normal(1.2, 1.2, (6, 2, 4))
    dout = rng.standard_normal(x.shape)
    spk, mem = lif_forward(x, 0.8, 1.0, reset, surrogate, smooth=True, levels=3)
    assert spk.max() > 0.8 and spk.max() < 1.0 + 1e-9  # the upper levels are in play

    def loss():
        return float(np.sum(lif_forward(x, 0.8, 1.0, reset, surrogate, True, levels=3)[0] * dout))

    exact = lif_backward(dout, mem, spk, 0.8, 1.0, reset, surrogate, False, levels=3)
    assert rel_error(exact, numerical_grad(loss, x)) < 1e-6
    lif = LIF(0.8, 1.0, reset, surrogate, detach_reset=False, levels=3).set_smooth(True)
    assert check_module(lif, x, rng, eps=1e-5)["x"] < 1e-6  # the module: lif_backward again


def test_clamp_lif_fires_multi_level_spikes_and_gradchecks(rng):
    # threshold 1.5, D = 3 (levels 0.5, 1, 1.5), c = 2.5 clips u = 5.2 to 2.5: s = 1,
    # v = 2.5 - 1.5 = 1.0; u = 0.5 sits on the first level: s = 0 (unclipped: v = 3.7,
    # u = 1.85, s = 1)
    lif = ClampLIF(2.5, beta=0.5, threshold=1.5, levels=3)
    spk = lif(np.array([[5.2], [0.0]]))
    np.testing.assert_array_equal(spk[:, 0], [1, 0])
    np.testing.assert_allclose(lif.cache[0][:, 0], [2.5, 0.5])
    smooth = ClampLIF(2.5, beta=0.7, threshold=1.0, detach_reset=False, levels=3)
    x = rng.standard_normal((4, 3, 5)) * 2
    assert check_module(smooth.set_smooth(True), x, rng)["x"] < 1e-7
    zero = ClampLIF(2.5, beta=0.7, threshold=1.0, reset="zero", detach_reset=False, levels=3)
    assert check_module(zero.set_smooth(True), x, rng)["x"] < 1e-7


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_levels_name_the_argument(bad):
    with pytest.raises(ValueError, match=r"levels=.* is invalid: it must be an integer >= 1"):
        LIF(levels=bad)
    with pytest.raises(ValueError, match="levels"):
        lif_forward(np.ones(3), levels=bad)
