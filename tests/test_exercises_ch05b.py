"""Chapter 5b's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import numpy as np
import pytest

from spike_lib.exercises import ch05b
from spike_lib.train.probes import log_softmax


def test_kl(capsys):
    def kl(zp, zq):
        lp, lq = log_softmax(np.asarray(zp, float)), log_softmax(np.asarray(zq, float))
        return (np.exp(lp) * (lp - lq)).sum(-1)

    ch05b.check_kl(kl)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="KL\\(q \\|\\| p\\)"):
        ch05b.check_kl(lambda zp, zq: kl(zq, zp))
    with pytest.raises(AssertionError, match="softmax of the logits"):
        ch05b.check_kl(lambda zp, zq: (np.asarray(zp) - np.asarray(zq)).sum(-1) * 0 + 1e-3 *
                       np.arange(2) * 0 + np.array([1.0, 0.0]))


def test_gate_on(capsys):
    ch05b.check_gate_on(lambda kv, th: (np.cumsum(kv, axis=0) >= th).mean(axis=1))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="running sum"):
        ch05b.check_gate_on(lambda kv, th: (kv >= th).mean(axis=1))


def test_batchnorm_fold(capsys):
    def fold(W, b, mean, var, gamma, beta, eps):
        s = gamma / np.sqrt(var + eps)
        return W * s, (b - mean) * s + beta

    ch05b.check_batchnorm_fold(fold)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="scale each output column"):
        ch05b.check_batchnorm_fold(lambda W, b, m, v, g, be, e: (W * g, b + be))
