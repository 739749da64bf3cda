"""MLX SDSA and softmax attention: the NumPy numbers, and autodiff equal to the hand-written backward."""

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from mlx.utils import tree_flatten

from spike_lib.train.check import normwise_rel_error
from spike_lib.mlx_impl import attention as A
from spike_lib.numpy_impl import attention as NA


def _pair(kind, causal, **kw):
    cls_np, cls_mx = (NA.SDSA, A.SDSA) if kind == "sdsa" else (NA.SoftmaxAttention,
                                                               A.SoftmaxAttention)
    return (cls_np(8, 2, np.random.default_rng(0), causal=causal, **kw),
            cls_mx(8, 2, np.random.default_rng(0), causal=causal, **kw))


def _compare(ref, att, x, mask=None):
    """Forward and every gradient of L = sum(att(x) * dout); returns the worst normwise error."""
    ref.zero_grad()
    y = ref(x, mask) if mask is not None else ref(x)
    dout = np.random.default_rng(11).standard_normal(y.shape).astype(np.float32)
    dx_ref = ref.backward(dout)

    def loss(params, xm):
        att.update(params)
        return ((att(xm, mask) if mask is not None else att(xm)) * mx.array(dout)).sum()

    dp, dx = mx.grad(loss, argnums=(0, 1))(att.trainable_parameters(), mx.array(x))
    errs = {"y": normwise_rel_error(np.array(att(mx.array(x), mask) if mask is not None else att(mx.array(x))), y),
            "x": normwise_rel_error(np.array(dx), dx_ref)}
    ref_grads = {n: g for n, _, g in ref.named_parameters()}
    for name, g in tree_flatten(dp):
        if np.abs(ref_grads[name]).max() < 1e-5:  # softmax ignores the key bias: dk_proj.b = 0
            assert np.abs(np.array(g)).max() < 1e-5, name
            continue
        errs[name] = normwise_rel_error(np.array(g), ref_grads[name])
    assert set(ref_grads) == {n for n, _ in tree_flatten(dp)}  # the same parameter names
    return errs


def test_split_merge_heads():
    x = mx.arange(2 * 3 * 4).reshape(2, 3, 4)  # (B, L, D)
    h = A.split_heads(x, 2)
    assert h.shape == (2, 2, 3, 2)
    assert h[0, 1, 0].tolist() == [2, 3]  # head 1 holds channels 2..3
    assert mx.array_equal(A.merge_heads(h), x)
    with pytest.raises(ValueError, match="divisible"):
        A.split_heads(x, 3)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("detach", [True, False])
def test_sdsa_matches_numpy(causal, detach):
    ref, att = _pair("sdsa", causal, detach_reset=detach)
    x = np.random.default_rng(1).normal(0.6, 1.0, (3, 2, 5, 8)).astype(np.float32)
    errs = _compare(ref, att, x)
    assert max(errs.values()) < 1e-5, errs
    assert 0.05 < float(ref.modules["q_lif"].last_spk.mean()) < 0.95  # spikes and silences


def test_sdsa_padding_mask():
    ref, att = _pair("sdsa", False)
    x = np.random.default_rng(2).normal(0.6, 1.0, (2, 2, 4, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    assert max(_compare(ref, att, x, mask).values()) < 1e-5


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_attention_matches_numpy(causal):
    ref, att = _pair("softmax", causal)
    x = np.random.default_rng(3).standard_normal((2, 5, 8)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    assert max(_compare(ref, att, x).values()) < 1e-5
    assert max(_compare(ref, att, x, mask).values()) < 1e-5


def test_causal_attention_ignores_the_future():
    _, att = _pair("softmax", True)
    x = np.random.default_rng(4).standard_normal((1, 6, 8)).astype(np.float32)
    x2 = x.copy()
    x2[:, 4:] += 1.0
    a, b = np.array(att(mx.array(x))), np.array(att(mx.array(x2)))
    assert np.abs(a[:, :4] - b[:, :4]).max() < 1e-6 and np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-3


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible by n_head=3"):
        A.SDSA(8, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(T, B, L, D\)"):
        A.SDSA(8, 2, np.random.default_rng(0))(mx.zeros((2, 4, 8)))
    with pytest.raises(ValueError, match="mask must have shape"):
        A.SoftmaxAttention(8, 2, np.random.default_rng(0))(mx.zeros((1, 4, 8)), np.ones((1, 3)))
