"""Chapter 9's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import re
import string
from collections import Counter

import numpy as np
import pytest

from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.exercises import ch09


def masked_targets(seq, n_prompt):
    y = np.array(seq[1:])
    y[: n_prompt - 1] = IGNORE_INDEX
    return y


def test_masked_targets(capsys):
    ch09.check_masked_targets(masked_targets)
    assert "correct" in capsys.readouterr().out

    def off_by_one(seq, n_prompt):
        y = np.array(seq[1:])
        y[:n_prompt] = IGNORE_INDEX
        return y

    with pytest.raises(AssertionError, match="off by one"):
        ch09.check_masked_targets(off_by_one)
    with pytest.raises(AssertionError, match="every target is kept"):
        ch09.check_masked_targets(lambda seq, n: np.array(seq[1:]))


def test_lora_params(capsys):
    ch09.check_lora_params(lambda n_in, n_out, r: r * (n_in + n_out))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="frozen W"):
        ch09.check_lora_params(lambda n_in, n_out, r: n_in * n_out)
    with pytest.raises(AssertionError, match="got"):
        ch09.check_lora_params(lambda n_in, n_out, r: r * n_in * n_out)


def _norm(text):
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def token_f1(pred, gold):
    p, g = _norm(pred), _norm(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or common == 0:
        return float(p == g)
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def test_token_f1(capsys):
    ch09.check_token_f1(token_f1)
    assert "correct" in capsys.readouterr().out

    def sets(pred, gold):  # ignores multiplicity
        p, g = set(_norm(pred)), set(_norm(gold))
        common = len(p & g)
        return 0.0 if common == 0 else 2 * common / (len(p) + len(g))

    with pytest.raises(AssertionError, match="multiplicity"):
        ch09.check_token_f1(sets)


def lora_backward(x, W, A, B, scale, dy):
    h = x @ A
    dB = scale * h.T @ dy
    dh = scale * dy @ B.T
    return x.T @ dh, dB, dy @ W.T + dh @ A.T


def test_lora_backward(capsys):
    ch09.check_lora_backward(lora_backward)
    assert "correct" in capsys.readouterr().out

    def no_scale(x, W, A, B, scale, dy):
        dA, dB, dx = lora_backward(x, W, A, B, scale, dy)
        return dA, dB / scale, dx

    with pytest.raises(AssertionError, match="scale"):
        ch09.check_lora_backward(no_scale)

    def base_only_dx(x, W, A, B, scale, dy):
        dA, dB, _ = lora_backward(x, W, A, B, scale, dy)
        return dA, dB, dy @ W.T

    with pytest.raises(AssertionError, match="adapter's path"):
        ch09.check_lora_backward(base_only_dx)


def test_mlx_lora(capsys):
    mx = pytest.importorskip("mlx.core")

    def lora(x, W, b, A, B, scale):
        return x @ W + b + scale * ((x @ A) @ B)

    ch09.check_mlx_lora(lora)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="autodiff"):
        ch09.check_mlx_lora(lambda x, W, b, A, B, s: x @ W + b + s * mx.stop_gradient((x @ A) @ B))
