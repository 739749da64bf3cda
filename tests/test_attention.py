"""SDSA and softmax attention: hand-computed examples, masking, causality and gradient checks."""

import numpy as np
import pytest

from spike_lib.core.gradcheck import numerical_grad
from spike_lib.numpy_impl.attention import (
    SDSA,
    SoftmaxAttention,
    merge_heads,
    reverse_cumsum,
    sdsa_ops,
    softmax_attention_ops,
    split_heads,
)


def close(mine, ref, tol=1e-6):
    mine, ref = np.asarray(mine), np.asarray(ref)
    return float(np.abs(mine - ref).max() / max(np.abs(ref).max(), 1e-2)) < tol


def gradcheck(module, x, rng, mask=None):
    dout = rng.standard_normal(module.forward(x, mask).shape)
    module.zero_grad()
    dx = module.backward(dout)

    def f():
        return float(np.sum(module.forward(x, mask) * dout))

    assert close(dx, numerical_grad(f, x)), "dx disagrees with finite differences"
    for name, p, g in module.named_parameters():
        assert close(g.copy(), numerical_grad(f, p)), f"d{name} disagrees with finite differences"


def hand_sdsa(causal=False):
    """D=2, one head: Q = x, K = both channels copy x[:, 0], V = x; attn_threshold 1.5."""
    a = SDSA(2, 1, np.random.default_rng(0), causal=causal, attn_threshold=1.5)
    a.params, m = {}, a.modules
    for name, w in (("q", [[2, 0], [0, 2]]), ("k", [[2, 2], [0, 0]]), ("v", [[2, 0], [0, 2]]),
                    ("out", [[1, 0], [0, 1]])):
        m[f"{name}_proj"].params["W"][...] = w
    x = np.array([[[[1, 0], [0, 1], [1, 1]]]], dtype=np.float32)  # (T=1, B=1, L=3, D=2)
    return a, x


def test_split_merge_heads_layout():
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)  # (B, L, D)
    h = split_heads(x, 2)  # (B, H, L, D/H)
    assert h.shape == (2, 2, 3, 2)
    assert np.array_equal(h[0, 1, 0], [2, 3])  # head 1 holds channels 2..3
    assert np.array_equal(merge_heads(h), x)
    with pytest.raises(ValueError, match="divisible"):
        split_heads(x, 3)


def test_reverse_cumsum():
    assert np.array_equal(reverse_cumsum(np.array([1, 2, 3]), 0), [6, 5, 3])


def test_sdsa_hand_example():
    # K = [[1,1],[0,0],[1,1]], V = x, K*V = [[1,0],[0,0],[1,1]], column sum [2, 1]
    # SN with threshold 1.5 fires on channel 0 only, so the output keeps Q's channel 0
    a, x = hand_sdsa()
    out = a(x)
    assert np.array_equal(a.modules["k_lif"].last_spk[0, 0], [[1, 1], [0, 0], [1, 1]])
    assert np.array_equal(a.modules["attn_lif"].last_spk[0, 0, 0], [[1, 0]])
    assert np.array_equal(out[0, 0], [[1, 0], [0, 0], [1, 0]])


def test_sdsa_hand_example_causal():
    # cumulative sums [[1,0],[1,0],[2,1]]: only position 2, channel 0 crosses 1.5
    a, x = hand_sdsa(causal=True)
    assert np.array_equal(a(x)[0, 0], [[0, 0], [0, 0], [1, 0]])


def test_sdsa_core_is_binary_and_matches_formula(rng):
    a = SDSA(8, 2, rng)
    x = (rng.random((3, 2, 5, 8)) < 0.5).astype(np.float32)
    a(x)
    m = a.modules
    q, k, v = (m[f"{n}_lif"].last_spk for n in "qkv")
    core = m["out_proj"].x
    assert set(np.unique(core)) <= {0.0, 1.0}  # spikes in, spikes out: no multiplication needed
    s = (k * v).sum(axis=2, keepdims=True)  # (T, B, 1, D): heads change nothing in SDSA-1
    g = m["attn_lif"].last_spk.swapaxes(2, 3).reshape(s.shape)
    assert np.array_equal(g, m["attn_lif"].forward(s[:, :, None, :, :])[:, :, 0])
    assert np.array_equal(core, q * g)


def test_sdsa_padding_and_causality(rng):
    a = SDSA(8, 2, rng)
    x = (rng.random((2, 1, 6, 8)) < 0.5).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 0, 0]], bool)
    short = a(x[:, :, :4])
    padded = a(x, mask)
    assert np.allclose(padded[:, :, :4], short)  # padding tokens add nothing to sum K*V
    c = SDSA(8, 2, rng, causal=True)
    y1 = c(x)
    x2 = x.copy()
    x2[:, :, 3:] = 1.0 - x2[:, :, 3:]  # change the future
    y2 = c(x2)
    assert np.array_equal(y1[:, :, :3], y2[:, :, :3])  # earlier positions cannot see it
    assert not np.array_equal(y1[:, :, 3:], y2[:, :, 3:])


@pytest.mark.parametrize("causal", [False, True])
def test_sdsa_gradcheck_smooth(causal, rng):
    a = SDSA(8, 2, rng, causal=causal, detach_reset=False).astype(np.float64).set_smooth()
    x = rng.standard_normal((3, 2, 4, 8))
    gradcheck(a, x, rng)
    gradcheck(a, x, rng, mask=np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool))


def test_softmax_attention_uniform_hand_example():
    # W_Q = W_K = 0 gives equal scores: each output is the mean of the visible values
    a = SoftmaxAttention(2, 1, np.random.default_rng(0))
    for n in "qk":
        a.modules[f"{n}_proj"].params["W"][...] = 0
    a.modules["v_proj"].params["W"][...] = np.eye(2)
    a.modules["out_proj"].params["W"][...] = np.eye(2)
    x = np.array([[[1.0, 0.0], [3.0, 6.0], [2.0, 3.0]]], dtype=np.float32)
    assert np.allclose(a(x)[0], [[2.0, 3.0]] * 3)
    assert np.allclose(a(x, np.array([[1, 1, 0]]))[0], [[2.0, 3.0]] * 3)
    a.causal = True
    assert np.allclose(a(x)[0], [[1.0, 0.0], [2.0, 3.0], [2.0, 3.0]])


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_attention_gradcheck(causal, rng):
    a = SoftmaxAttention(8, 2, rng, causal=causal).astype(np.float64)
    x = rng.standard_normal((2, 2, 4, 8))  # (T, B, L, D): leading dims are batch-like
    gradcheck(a, x, rng)
    gradcheck(a, x, rng, mask=np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool))


def test_op_counts():
    assert sdsa_ops(10, 32) == {"and": 320, "add": 320, "mask": 320, "mul": 0, "exp": 0}
    assert softmax_attention_ops(10, 32, n_head=2) == {"mac": 6400, "exp": 200}


def test_bad_inputs(rng):
    with pytest.raises(ValueError, match="divisible by n_head"):
        SDSA(10, 3, rng)
    with pytest.raises(ValueError, match="divisible by n_head"):
        SoftmaxAttention(10, 4, rng)
    with pytest.raises(ValueError, match=r"\(T, B, L, D\)"):
        SDSA(4, 2, rng)(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="mask must have shape"):
        SDSA(4, 2, rng)(np.zeros((1, 2, 3, 4)), np.ones((2, 4)))
