"""Chapter 5's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import numpy as np
import pytest

from spike_lib.exercises import ch05
from spike_lib.numpy_impl.model import forward_macs


def test_direct_encoding(capsys):
    ch05.check_direct_encoding(lambda x0, t: np.broadcast_to(x0, (t,) + x0.shape))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="time comes first"):
        ch05.check_direct_encoding(lambda x0, t: np.stack([x0] * t, axis=-1))
    with pytest.raises(AssertionError, match="same x0"):
        ch05.check_direct_encoding(lambda x0, t: np.stack([x0 / t] * t))


def test_causal_kv_sum(capsys):
    ch05.check_causal_kv_sum(lambda k, v: np.cumsum(k * v, axis=-2))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="one value per position"):
        ch05.check_causal_kv_sum(lambda k, v: (k * v).sum(axis=-2, keepdims=True))
    with pytest.raises(AssertionError, match="over channels"):
        ch05.check_causal_kv_sum(lambda k, v: np.cumsum(k * v, axis=-1))
    with pytest.raises(AssertionError, match="future token"):
        ch05.check_causal_kv_sum(lambda k, v: np.flip(np.cumsum(np.flip(k * v, -2), -2), -2))


def _params(cfg):
    d, f = cfg.n_embd, cfg.d_ff
    block = 4 * d + 4 * (d * d + d) + d * f + f + f * d + d
    head = 0 if cfg.tie_weights else d * cfg.vocab_size
    return (cfg.vocab_size + cfg.block_size) * d + cfg.n_layer * block + 2 * d + head


def test_param_count(capsys):
    ch05.check_param_count(_params)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="tie_weights=True"):
        ch05.check_param_count(lambda cfg: _params(cfg.replace(tie_weights=False)))


def test_forward_macs(capsys):
    ch05.check_forward_macs(forward_macs)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="softmax attention adds"):
        ch05.check_forward_macs(lambda cfg, b, n: forward_macs(cfg.replace(attention="sdsa"), b, n))


def test_block_by_hand(capsys):
    def by_hand(block, x):
        m = block.modules
        x = x + m["attn"](m["sn1"](m["ln1"](x)))
        return x + m["fc2"](m["sn_hidden"](m["fc1"](m["sn2"](m["ln2"](x)))))

    ch05.check_block_by_hand(by_hand)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="shortcut adds the branch"):
        ch05.check_block_by_hand(lambda block, x: block.modules["attn"](x))
