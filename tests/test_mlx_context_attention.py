"""Context attentions in MLX: exact causality, the docstrings' formulas by hand, selectable by name."""

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from spike_lib.core.config import Config
from spike_lib.mlx_impl import context_attention as C
from spike_lib.mlx_impl.attention import SoftmaxAttention
from spike_lib.mlx_impl.model import SpikeLLM


def _spikes(shape, seed=1, p=0.4):
    return (np.random.default_rng(seed).random(shape) < p).astype(np.float32)


def _build(name, d=16, h=2):
    cls, kw = C.NAMES[name]
    att = cls(d, h, np.random.default_rng(0), **kw)
    if hasattr(att, "gate_gain"):  # open the gates, so a later token can change the output
        att.gate_gain = mx.full((d,), 40.0)
        for p in (att.q_proj, att.k_proj, att.v_proj):  # and make Q, K, V fire often
            p.W = p.W * 4.0
    return att


@pytest.mark.parametrize("name", sorted(C.NAMES))
@pytest.mark.parametrize("j", [0, 3, 6])
def test_exact_causality(name, j):
    att = _build(name)
    x = _spikes((2, 3, 7, 16))
    x2 = x.copy()
    x2[:, :, j] = 1.0 - x2[:, :, j]  # change token j
    y, y2 = np.array(att(mx.array(x))), np.array(att(mx.array(x2)))
    np.testing.assert_array_equal(y[:, :, :j], y2[:, :, :j])  # outputs before j: bit for bit
    assert np.abs(y[:, :, j:] - y2[:, :, j:]).max() > 0  # token j is read (the test can fail)


@pytest.mark.parametrize("name", sorted(C.NAMES))
def test_selectable_by_name_and_causal_in_the_model(name):
    cfg = Config(vocab_size=20, block_size=8, n_layer=1, n_embd=16, n_head=2, d_ff=16,
                 num_steps=2, attention=name)
    model = SpikeLLM(cfg)
    cls = C.NAMES[name][0]
    assert type(model.blocks[0].attn) is cls
    idx = np.random.default_rng(2).integers(0, 20, (2, 8))
    idx2 = idx.copy()
    idx2[:, 5] = (idx2[:, 5] + 7) % 20
    a, b = np.array(model(idx)), np.array(model(idx2))
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    twin = SpikeLLM(cfg.replace(spiking=False))  # the non-spiking twin builds and runs too
    assert np.isfinite(np.array(twin(idx))).all()


def test_token_shift_by_hand():
    x = mx.array(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    np.testing.assert_array_equal(np.array(C.token_shift(x)), [[0, 0], [1, 2], [3, 4]])


def test_shift_mix_by_hand():
    att = C.MeanSDSA(2, 1, np.random.default_rng(0), shift=True)
    np.testing.assert_allclose(np.array(att.shift_k), [0.0, 1.0])  # the ramp over channels
    x = mx.array(np.array([[[[1.0, 1.0], [0.0, 0.0]]]]))  # (T, B, L, D) = (1, 1, 2, 2)
    _, xk, _ = att._inputs(x)
    # channel 0 (mu = 0) takes the previous token, channel 1 (mu = 1) the current one
    np.testing.assert_allclose(np.array(xk)[0, 0], [[0.0, 1.0], [1.0, 0.0]])


def test_running_mean_by_hand():
    att = C.MeanSDSA(4, 1, np.random.default_rng(0))
    kv = mx.array(np.array([1.0, 0.0, 1.0, 1.0])[:, None])  # (L, 1)
    np.testing.assert_allclose(np.array(att.running(kv))[:, 0], [1, 0.5, 2 / 3, 0.75], rtol=1e-6)


def test_decaying_mean_equals_its_recurrence():
    att = C.DecaySDSA(8, 2, np.random.default_rng(0))
    kv = _spikes((2, 3, 9, 8), seed=4)
    got = np.array(att.running(mx.array(kv)))
    lam = 1 / (1 + np.exp(-np.array(att.decay_logit, dtype=np.float64)))
    s, n, want = np.zeros((2, 3, 8)), 0.0, np.zeros_like(got, dtype=np.float64)
    for t in range(9):  # s = lambda s + kv, n = lambda n + 1, m = s / n
        s, n = lam * s + kv[:, :, t], lam * n + 1
        want[:, :, t] = s / n
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert lam.min() == pytest.approx(0.5) and lam.max() == pytest.approx(1 - 2**-7)


def test_spike_matrix_quadratic_and_running_agree_with_the_formula():
    quad = C.SpikeMatrixAttention(8, 2, np.random.default_rng(0))
    run = C.SpikeMatrixAttention(8, 2, np.random.default_rng(0), form="running")
    q, k, v = (_spikes((2, 3, 2, 6, 4), seed=s, p=0.5) for s in (5, 6, 7))
    a, b = (np.array(m.mix(mx.array(q), mx.array(k), mx.array(v))) for m in (quad, run))
    np.testing.assert_array_equal(a, b)  # integer sums: exact in float32
    want = np.zeros_like(a)
    for l in range(6):  # y[l] = sum_{j<=l} (q[l].k[j]) v[j] / max(1, sum_{j<=l} q[l].k[j])
        sc = np.einsum("...d,...jd->...j", q[..., l, :], k[..., : l + 1, :])
        want[..., l, :] = np.einsum("...j,...jd->...d", sc, v[..., : l + 1, :]) / np.maximum(
            sc.sum(-1, keepdims=True), 1)
    np.testing.assert_allclose(a, want, rtol=1e-6)
    with pytest.raises(ValueError, match="form='sideways' is invalid"):
        C.SpikeMatrixAttention(8, 2, np.random.default_rng(0), form="sideways")


@pytest.mark.parametrize("score", ["softmax", "relu"])
def test_hybrid_weights_by_hand(score):
    att = C.HybridAttention(8, 1, np.random.default_rng(0), score=score)
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5, 8))
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(8)
    mask = np.tril(np.ones((5, 5), bool))
    if score == "softmax":
        e = np.where(mask, np.exp(s - s.max(-1, keepdims=True)), 0)
        want = e / e.sum(-1, keepdims=True)
    else:
        r = np.where(mask, np.maximum(s, 0), 0)
        want = r / (r.sum(-1, keepdims=True) + 1e-6)
    got = np.array(att.weights(mx.array(q.astype(np.float32)), mx.array(k.astype(np.float32))))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_softmax_shift_without_shift_is_softmax_attention():
    att = C.ShiftSoftmaxAttention(8, 2, np.random.default_rng(0))
    att.shift_k = att.shift_v = mx.ones((8,))  # mu = 1: no previous token
    ref = SoftmaxAttention(8, 2, np.random.default_rng(0), causal=True)
    x = mx.array(np.random.default_rng(4).standard_normal((2, 3, 5, 8)).astype(np.float32))
    np.testing.assert_allclose(np.array(att(x)), np.array(ref(x)), rtol=1e-5, atol=1e-6)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="not a context attention"):
        C.make_context_attention(Config(), np.random.default_rng(0))
