"""Chapter 8e's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import numpy as np
import pytest

from spike_lib.exercises import ch08e


def _mask(n, lam):
    d = np.subtract.outer(np.arange(n), np.arange(n))
    return np.where(d >= 0, float(lam) ** np.maximum(d, 0), 0.0)


def test_decay_mask(capsys):
    ch08e.check_decay_mask(_mask)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="later keys"):
        ch08e.check_decay_mask(lambda n, lam: float(lam) ** np.abs(np.subtract.outer(np.arange(n), np.arange(n))))
    with pytest.raises(AssertionError, match="falls with the distance"):
        ch08e.check_decay_mask(lambda n, lam: np.tril(np.ones((n, n))))
    with pytest.raises(AssertionError, match="exponent is >= 0"):
        ch08e.check_decay_mask(lambda n, lam: np.tril(float(lam) ** np.subtract.outer(np.arange(n), np.arange(n)).T))


def _attn(q, k, v, lam, floor):
    a = (q @ np.swapaxes(k, -1, -2)) * _mask(q.shape[-2], lam)
    return (a @ v) / np.maximum(a.sum(axis=-1, keepdims=True), floor)


def test_decayed_attention(capsys):
    ch08e.check_decayed_attention(_attn)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="must leak"):
        ch08e.check_decayed_attention(lambda q, k, v, lam, f: _attn(q, k, v, 1.0, f))
    with pytest.raises(AssertionError, match="normalise"):
        ch08e.check_decayed_attention(lambda q, k, v, lam, f: ((q @ np.swapaxes(k, -1, -2)) * _mask(q.shape[-2], lam)) @ v)
    with pytest.raises(AssertionError, match="max\\(floor"):
        ch08e.check_decayed_attention(lambda q, k, v, lam, f: (
            (a := (q @ np.swapaxes(k, -1, -2)) * _mask(q.shape[-2], lam)) @ v) / (a.sum(axis=-1, keepdims=True) + 1e-9))


def _running(q, k, v, lam, floor, leak_z=True, leak_s=True):
    s, z, out = np.zeros((q.shape[1], v.shape[1])), np.zeros(q.shape[1]), np.zeros_like(v)
    for i in range(q.shape[0]):
        s = (lam if leak_s else 1.0) * s + np.outer(k[i], v[i])
        z = (lam if leak_z else 1.0) * z + k[i]
        out[i] = q[i] @ s / max(floor, q[i] @ z)
    return out


def test_running(capsys):
    ch08e.check_running(_running)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="leak both states"):
        ch08e.check_running(lambda q, k, v, lam, f: _running(q, k, v, 1.0, f))
    with pytest.raises(AssertionError, match="z must leak"):
        ch08e.check_running(lambda q, k, v, lam, f: _running(q, k, v, lam, f, leak_z=False))
    with pytest.raises(AssertionError, match="Eq. 8e.1's numbers"):
        ch08e.check_running(lambda q, k, v, lam, f: np.roll(_running(q, k, v, lam, f), 1, axis=0))


def _macs(n_tok, d, h, form):
    return h * n_tok * (n_tok + 1) // 2 if form == "quadratic" else n_tok * (h * (d // h) ** 2 + d)


def test_decay_macs(capsys):
    ch08e.check_decay_macs(_macs)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="causal scores"):
        ch08e.check_decay_macs(lambda n, d, h, f: n * n * h if f == "quadratic" else _macs(n, d, h, f))
    with pytest.raises(AssertionError, match="times H"):
        ch08e.check_decay_macs(lambda n, d, h, f: n * (n + 1) // 2 if f == "quadratic" else _macs(n, d, h, f))
    with pytest.raises(AssertionError, match="d_h x d_h"):
        ch08e.check_decay_macs(lambda n, d, h, f: n * d * d if f == "running" else _macs(n, d, h, f))
    with pytest.raises(AssertionError, match="z \\(D entries"):
        ch08e.check_decay_macs(lambda n, d, h, f: n * h * (d // h) ** 2 if f == "running" else _macs(n, d, h, f))
