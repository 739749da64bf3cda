"""Chapter 1's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import math

import numpy as np
import pytest

from spike_lib.exercises import ch01
from spike_lib.core.neurons import lif_backward, lif_forward
from spike_lib.core.surrogate import ArcTan


def test_lif_by_hand(capsys):
    ch01.check_lif_by_hand([0.25, 0.125, 1.0625, 0.78125, 0.390625], [0, 0, 1, 0, 0])
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"mem\[3\]"):  # forgot the reset
        ch01.check_lif_by_hand([0.25, 0.125, 1.0625, 1.28125, 0.640625], [0, 0, 1, 0, 0])
    with pytest.raises(AssertionError, match="one per timestep"):
        ch01.check_lif_by_hand([0.25], [0])


def test_fast_sigmoid_grad(capsys):
    ch01.check_fast_sigmoid_grad(lambda x, k: 1 / (1 + k * np.abs(x)) ** 2)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="absolute value"):
        ch01.check_fast_sigmoid_grad(lambda x, k: 1 / (1 + k * x) ** 2)


def _zero_reset_rate(x, beta, threshold):
    if x <= threshold * (1 - beta):
        return 0.0
    return 1.0 / (math.floor(math.log(1 - threshold * (1 - beta) / x) / math.log(beta)) + 1)


def test_zero_reset_rate(capsys):
    ch01.check_zero_reset_rate(_zero_reset_rate)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="rate should be"):  # the beta = 1 answer x / threshold
        ch01.check_zero_reset_rate(lambda x, beta, threshold: min(x / threshold, 1.0))


def test_bptt_zero_reset(capsys):
    def backward(dspk, mem, spk, beta, threshold):
        g, dx, dv = ArcTan().grad, np.empty_like(mem), np.zeros_like(mem[0])
        for t in reversed(range(len(mem))):
            du = dv * (1 - spk[t]) + dspk[t] * g(mem[t] - threshold)
            dx[t], dv = du, beta * du
        return dx

    ch01.check_bptt_zero_reset(backward)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"multiplied by \(1 - s\)"):
        ch01.check_bptt_zero_reset(
            lambda d, m, s, b, th: lif_backward(d, m, s, b, th, "subtract", "arctan")
        )
    with pytest.raises(AssertionError, match="walk t backwards"):
        ch01.check_bptt_zero_reset(lambda d, m, s, b, th: d)


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
