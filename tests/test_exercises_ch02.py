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
    models = [SpikeClassifier(cfg.replace(seed=s), 8, np.random.default_rng(s)) for s in range(3)]
    with pytest.raises(AssertionError, match="three seeds"):
        ch02.check_beat_target(models[0], data, target=0.0)
    with pytest.raises(AssertionError, match="does not beat 0.990"):
        ch02.check_beat_target(models, data, target=0.99)
    ch02.check_beat_target(models, data, target=0.0)
    assert "correct" in capsys.readouterr().out
    # the default target: the measured default mean plus one standard error of 3 seeds
    sd = np.std([0.320, 0.347, 0.320, 0.373, 0.413], ddof=1)
    assert ch02.DEFAULT_VAL_ACC == pytest.approx(0.355, abs=5e-4)
    assert ch02.TARGET_VAL_ACC == pytest.approx(0.355 + sd / np.sqrt(3), abs=1e-3)


def _shuffle_letters(idx, mask, rng):
    out = idx.copy()
    for b in range(len(idx)):
        out[b, mask[b]] = rng.permutation(idx[b, mask[b]])
    return out


def test_shuffle_invariance(capsys):
    ch02.check_shuffle_invariance(_shuffle_letters)
    out = capsys.readouterr().out
    assert "correct" in out and "with position embeddings" in out
    with pytest.raises(AssertionError, match="padding"):
        ch02.check_shuffle_invariance(lambda idx, mask, rng: rng.permutation(idx, axis=1))
    with pytest.raises(AssertionError, match="nothing moved"):
        ch02.check_shuffle_invariance(lambda idx, mask, rng: idx)
    with pytest.raises(AssertionError, match="keep its letters"):
        ch02.check_shuffle_invariance(lambda idx, mask, rng: np.where(mask, 1, 0))


def test_energy_ratio(capsys):
    def ratio(flops, rates, steps, mac=4.6, ac=0.9):
        snn = sum(f * steps * (mac if r is None else ac * r) for f, r in zip(flops, rates))
        return snn / sum(f * mac for f in flops)

    ch02.check_energy_ratio(ratio)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="every step"):  # real-valued layers paid once
        ch02.check_energy_ratio(lambda f, r, T: sum(x * (4.6 if q is None else T * 0.9 * q)
                                                    for x, q in zip(f, r)) / (4.6 * sum(f)))
