"""The fused Q/K/V (+ token shift) plan (spike_lib.core.fused_plan): hand-computed matrices, the
attentions it fuses, and the same numbers in both ports' plans."""

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.core.fused_plan import fuse_qkv, fused_kind, plain_lif, qkv_plan
from spike_lib.numpy_impl import context_attention as ctx
from spike_lib.numpy_impl import generate_fast as gf
from spike_lib.numpy_impl.attention import SDSA, SoftmaxAttention
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.numpy_impl.neurons import LIF

WQ = np.array([[1, 2], [3, 4]], np.float32)
WK = np.array([[5, 6], [7, 8]], np.float32)
WV = np.array([[9, 10], [11, 12]], np.float32)


def test_fuse_without_shift_is_the_three_matrices_side_by_side():
    w, b = fuse_qkv(WQ, WK, WV, biases=(np.ones(2), 2 * np.ones(2), 3 * np.ones(2)))
    np.testing.assert_array_equal(w, [[1, 2, 5, 6, 9, 10], [3, 4, 7, 8, 11, 12]])
    np.testing.assert_array_equal(b, [1, 1, 2, 2, 3, 3])
    assert fuse_qkv(WQ, WK, WV)[1] is None


def test_fuse_with_shift_hand_values_and_the_mixed_inputs():
    mk, mv = np.array([0.5, 0.25], np.float32), np.array([1.0, 0.0], np.float32)
    w, _ = fuse_qkv(WQ, WK, WV, shift=(mk, mv))
    # columns: [W_Q, diag(mu_k) W_K, diag(mu_v) W_V | diag(1 - mu_k) W_K, diag(1 - mu_v) W_V]
    np.testing.assert_array_equal(w, [[1, 2, 2.5, 3, 9, 10, 2.5, 3, 0, 0],
                                      [3, 4, 1.75, 2, 0, 0, 5.25, 6, 11, 12]])
    x, prev = np.array([1.0, 2.0], np.float32), np.array([3.0, -1.0], np.float32)
    got = (x @ w)[:6] + np.concatenate([[0, 0], (prev @ w)[6:]])  # prev's share, one token early
    xk, xv = mk * x + (1 - mk) * prev, mv * x + (1 - mv) * prev  # the module's token shift
    np.testing.assert_allclose(got, np.concatenate([x @ WQ, xk @ WK, xv @ WV]), rtol=1e-6)


def test_plain_lif_reads_beta_threshold_reset_of_a_spiking_lif_only():
    assert plain_lif(LIF(beta=0.7, threshold=0.9, reset="zero"), LIF) == (0.7, 0.9, "zero", 1)
    assert plain_lif(LIF(levels=4), LIF) == (0.9, 1.0, "subtract", 4)
    smooth = LIF()
    smooth.set_smooth(True)
    assert plain_lif(smooth, LIF) is None
    assert plain_lif(object(), LIF) is None


def test_fused_kind_of_each_attention():
    rng = np.random.default_rng(0)
    assert fused_kind(SDSA(8, 2, rng), gf.CLASSES) == "sdsa"
    assert fused_kind(ctx.MeanSDSA(8, 2, rng, shift=True), gf.CLASSES) == "mean"
    assert fused_kind(ctx.DecaySDSA(8, 2, rng), gf.CLASSES) is None  # a decaying state
    assert fused_kind(ctx.SpikeMatrixAttention(8, 2, rng), gf.CLASSES) == "matrix"
    assert fused_kind(ctx.SpikeMatrixAttention(8, 2, rng, power=2), gf.CLASSES) is None
    assert fused_kind(ctx.SpikeMatrixAttention(8, 2, rng, decay=True), gf.CLASSES) == "matrix"
    assert fused_kind(SoftmaxAttention(8, 2, rng), gf.CLASSES) is None


def test_qkv_plan_falls_back_on_mixed_biases_and_splits_differing_neurons():
    attn = ctx.SpikeMatrixAttention(2, 1, np.random.default_rng(0))
    lif = (0.5, 1.0, "subtract")
    with_b = [(WQ, np.zeros(2)), (WK, np.zeros(2)), (WV, np.zeros(2))]
    p = qkv_plan(attn, gf.CLASSES, with_b, [lif, lif, lif])
    assert p["kind"] == "matrix" and p["qkv_lif"] == lif and p["b"].shape == (6,)
    assert not p["shift"] and p["w"].shape == (2, 6)
    assert qkv_plan(attn, gf.CLASSES, with_b, [lif, lif, (0.9, 1.0, "zero")])["qkv_lif"] is None
    mixed = [(WQ, np.zeros(2)), (WK, None), (WV, np.zeros(2))]
    assert qkv_plan(attn, gf.CLASSES, mixed, [lif] * 3) is None
    assert qkv_plan(attn, gf.CLASSES, [with_b[0], None, with_b[2]], [lif] * 3) is None


@pytest.mark.parametrize("name", ["sdsa", "sdsa_shift", "spike_matrix_shift"])
def test_both_ports_plan_the_same_fused_matrix(name):
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf
    from spike_lib.mlx_impl.model import SpikeLLM as MlxLLM

    cfg = Config.tiny(attention=name)
    want, got = gf.plan(SpikeLLM(cfg)), mgf.plan(MlxLLM(cfg))  # same seed, same weights
    for p, q in zip(want, got):
        assert p["qkv"]["shift"] == q["qkv"]["shift"] == name.endswith("shift")
        np.testing.assert_array_equal(np.array(q["qkv"]["w"]), p["qkv"]["w"])
        np.testing.assert_array_equal(np.array(q["qkv"]["b"]), p["qkv"]["b"])
