"""Chapter 6's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import math

import numpy as np
import pytest

from spike_lib.exercises import ch06
from spike_lib.numpy_impl.layers import cross_entropy, softmax
from spike_lib.numpy_impl.optim import clip_grad_norm


def test_ce_grad(capsys):
    def grad(z, y):
        p = softmax(z)
        np.put_along_axis(p, y[..., None], np.take_along_axis(p, y[..., None], -1) - 1, -1)
        return p / y.size

    ch06.check_ce_grad(grad)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="6 times too large"):
        ch06.check_ce_grad(lambda z, y: grad(z, y) * y.size)
    with pytest.raises(AssertionError, match="softmax"):
        ch06.check_ce_grad(lambda z, y: softmax(z) / y.size)


def test_cumsum_backward(capsys):
    ch06.check_cumsum_backward(lambda ds: np.flip(np.cumsum(np.flip(ds, -2), -2), -2))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="run backwards"):
        ch06.check_cumsum_backward(lambda ds: np.cumsum(ds, -2))


def test_bits_per_char(capsys):
    ch06.check_bits_per_char(lambda loss, n, c: loss * n / (math.log(2) * c))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="divide by the characters"):
        ch06.check_bits_per_char(lambda loss, n, c: loss / math.log(2))


def _top_p(p, top_p):
    order = np.argsort(-p, kind="stable")
    n = int(np.searchsorted(np.cumsum(p[order]), top_p - 1e-12)) + 1
    out = np.zeros_like(p)
    out[order[:n]] = p[order[:n]]
    return out / out.sum()


def test_top_p(capsys):
    ch06.check_top_p(_top_p)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="keep the original order"):
        ch06.check_top_p(lambda p, t: np.sort(_top_p(p, t))[::-1])


def test_train_step(capsys):
    def step(model, opt, x, y, clip):
        loss, dlogits = cross_entropy(model(x), y)
        model.zero_grad()
        model.backward(dlogits)
        clip_grad_norm(model, clip)
        opt.step()
        return loss

    ch06.check_train_step(step)
    assert "correct" in capsys.readouterr().out

    def no_zero_grad(model, opt, x, y, clip):
        loss, dlogits = cross_entropy(model(x), y)
        model.backward(dlogits)
        clip_grad_norm(model, clip)
        opt.step()
        return loss

    with pytest.raises(AssertionError, match="zero the gradients"):
        ch06.check_train_step(no_zero_grad)
