"""Chapter 1's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import math

import numpy as np
import pytest

from spike_lib.core.neurons import lif_backward, lif_forward
from spike_lib.core.surrogate import ArcTan
from spike_lib.exercises import ch01


def test_lif_by_hand_in_snntorch_convention(capsys):
    # U = 0.25, 0.125, 1.0625 (spike), 0.53125 + 1.2 - 1, 0.5 * 0.73125
    ch01.check_lif_by_hand([0.25, 0.125, 1.0625, 0.73125, 0.365625], [0, 0, 1, 0, 0])
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="course's 'subtract' reset"):  # threshold leaked
        ch01.check_lif_by_hand([0.25, 0.125, 1.0625, 1.23125, 0.115625], [0, 0, 1, 1, 0])
    with pytest.raises(AssertionError, match=r"mem\[3\]"):  # forgot the reset
        ch01.check_lif_by_hand([0.25, 0.125, 1.0625, 1.73125, 0.865625], [0, 0, 1, 1, 0])
    with pytest.raises(AssertionError, match="one per timestep"):
        ch01.check_lif_by_hand([0.25], [0])


def _refractory_rate(x, beta, threshold, r):
    if x <= threshold * (1 - beta):
        return 0.0
    n = math.floor(math.log(1 - threshold * (1 - beta) / x) / math.log(beta)) + 1
    return 1.0 / (n + r)


def test_refractory_rate(capsys):
    ch01.check_refractory_rate(_refractory_rate)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="n\\* \\+ r"):  # Eq. 1.5 without the refractory time
        ch01.check_refractory_rate(lambda x, b, th, r: _refractory_rate(x, b, th, 0))


def test_spikingjelly_translation(capsys):
    ch01.check_spikingjelly_translation(
        lambda tau, v_th, hard: (1 - 1 / tau, 1 / tau, v_th, "zero" if hard else "subtract"))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="Euler"):
        ch01.check_spikingjelly_translation(
            lambda tau, v_th, hard: (math.exp(-1 / tau), 1 / tau, v_th, "zero" if hard else "subtract"))
    with pytest.raises(AssertionError, match="divides the input"):
        ch01.check_spikingjelly_translation(
            lambda tau, v_th, hard: (1 - 1 / tau, 1.0, v_th, "zero" if hard else "subtract"))
    with pytest.raises(AssertionError, match="v_reset=0 is the zero reset"):
        ch01.check_spikingjelly_translation(lambda tau, v_th, hard: (1 - 1 / tau, 1 / tau, v_th, "zero"))


def test_gaussian_surrogate(capsys):
    erf = np.vectorize(math.erf)
    grad = lambda z, s: np.exp(-0.5 * (z / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    smooth = lambda z, s: 0.5 * (1 + erf(z / (s * math.sqrt(2))))  # noqa: E731
    ch01.check_gaussian_surrogate(grad, smooth)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="area 1"):  # unnormalised bump
        ch01.check_gaussian_surrogate(lambda z, s: np.exp(-0.5 * (z / s) ** 2), smooth)
    with pytest.raises(AssertionError, match="G' is not g"):
        ch01.check_gaussian_surrogate(grad, lambda z, s: 0.5 * (1 + np.tanh(z / s)))


def test_bptt_after_leak(capsys):
    def backward(dspk, mem, spk, beta, threshold):
        g, dx = ArcTan().grad, np.empty_like(mem)
        du_next = np.zeros_like(mem[0])
        for t in reversed(range(len(mem))):
            ds = dspk[t] - threshold * du_next
            du_next = dx[t] = beta * du_next + ds * g(mem[t] - threshold)
        return dx

    ch01.check_bptt_after_leak(backward)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="detached gradient"):
        ch01.check_bptt_after_leak(
            lambda d, m, s, b, th: lif_backward(d, m, s, b, th, "subtract_after_leak", "arctan"))
    with pytest.raises(AssertionError, match="'subtract' reset's backward"):
        ch01.check_bptt_after_leak(
            lambda d, m, s, b, th: lif_backward(d, m, s, b, th, "subtract", "arctan", False))
    with pytest.raises(AssertionError, match="walk t backwards"):
        ch01.check_bptt_after_leak(lambda d, m, s, b, th: d)


def test_target_time(capsys):
    task = ch01.target_time_task()
    inp, beta, thr = task["inp"], task["beta"], task["threshold"]
    assert inp.shape == (30, 20)
    y = np.zeros((30, 3))
    y[task["t_target"], [0, 1, 2]] = 1
    rng = np.random.default_rng(1)
    W = rng.normal(0, 0.3, (20, 3))
    m, v = np.zeros_like(W), np.zeros_like(W)
    for step in range(1, 301):  # adam, lr 0.02
        spk, mem = lif_forward(inp @ W, beta, thr)
        dW = inp.T @ lif_backward(spk - y, mem, spk, beta, thr)
        m, v = 0.9 * m + 0.1 * dW, 0.999 * v + 0.001 * dW**2
        W -= 0.02 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    ch01.check_target_time(W)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"output 0 fires at \[\]"):
        ch01.check_target_time(np.zeros((20, 3)))
    with pytest.raises(AssertionError, match="shape"):
        ch01.check_target_time(np.zeros((3, 20)))
