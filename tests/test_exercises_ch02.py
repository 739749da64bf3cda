"""Chapter 2's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.data.colors import load_colors
from spike_lib.exercises import ch02
from spike_lib.numpy_impl.classifier import SpikeClassifier


def test_sdsa_by_hand(capsys):
    ch02.check_sdsa_by_hand([[1, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]])  # sums [2, 1, 2, 0]
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="threshold 1.5"):  # fired on a sum of 1
        ch02.check_sdsa_by_hand([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0]])
    with pytest.raises(AssertionError, match="one row per token"):
        ch02.check_sdsa_by_hand([[1, 0, 1, 0]])
    with pytest.raises(AssertionError, match="0 or 1"):
        ch02.check_sdsa_by_hand(np.full((3, 4), 2.0))


def test_op_count(capsys):
    ch02.check_op_count(lambda n, d: (n * d, 2 * n * n * d))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="additions"):
        ch02.check_op_count(lambda n, d: (n * n * d, 2 * n * n * d))
    with pytest.raises(AssertionError, match="MACs"):
        ch02.check_op_count(lambda n, d: (n * d, n * n * d))


def test_causal_kv(capsys):
    ch02.check_causal_kv(lambda k, v: np.cumsum(k * v, axis=1))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="timesteps"):
        ch02.check_causal_kv(lambda k, v: np.cumsum(k * v, axis=0))
    with pytest.raises(AssertionError, match="cumulative"):
        ch02.check_causal_kv(lambda k, v: np.broadcast_to((k * v).sum(1, keepdims=True), k.shape))


def test_kv_backward(capsys):
    ch02.check_kv_backward(lambda ds, k, v: (ds * v, ds * k))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="is v, not k"):
        ch02.check_kv_backward(lambda ds, k, v: (ds * k, ds * v))
    with pytest.raises(AssertionError, match="broadcast"):
        ch02.check_kv_backward(lambda ds, k, v: (ds, ds))


def test_beat_target(capsys):
    data = load_colors()
    cfg = Config.tiny(vocab_size=data.vocab_size, block_size=data.block_size)
    model = SpikeClassifier(cfg, 8, np.random.default_rng(0))
    with pytest.raises(AssertionError, match="does not beat 0.990"):
        ch02.check_beat_target(model, data, target=0.99)
    ch02.check_beat_target(model, data, target=0.0)
    assert "correct" in capsys.readouterr().out
