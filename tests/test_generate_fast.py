"""The one-token fast path of carried-state generation (spike_lib.numpy_impl.generate_fast):
its pieces against hand-computed values and the modules, and the fused step against the window
while chunks of one and of several tokens alternate (the two paths share one state)."""

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.numpy_impl import generate_fast as gf
from spike_lib.numpy_impl.layers import LayerNorm
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.numpy_impl.neurons import LIF


def test_lif_steps_hand_values_for_both_resets():
    x = np.array([[1.5], [0.8]], np.float32)  # u0 = 1.5 fires; v0 = 0.5 (subtract) or 0 (zero)
    # subtract: u1 = 0.5 * 0.5 + 0.8 = 1.05 > 1 fires; zero: u1 = 0.8 stays silent
    np.testing.assert_array_equal(gf.lif_steps(x, (0.5, 1.0, "subtract")), [[1.0], [1.0]])
    np.testing.assert_array_equal(gf.lif_steps(x, (0.5, 1.0, "zero")), [[1.0], [0.0]])


def test_lif_steps_equals_the_lif_module():
    x = np.random.default_rng(0).normal(0.6, 1.0, (4, 3, 1, 16)).astype(np.float32)
    for reset in ("subtract", "zero"):
        lif = LIF(beta=0.7, threshold=0.9, reset=reset)
        np.testing.assert_array_equal(gf.lif_steps(x, gf._plain(lif)), lif(x))
    smooth = LIF()
    smooth.set_smooth(True)
    assert gf._plain(smooth) is None  # smooth mode: the module itself is called


def test_spike_matmul_reads_only_the_spiked_rows_and_equals_the_dense_product():
    w = np.arange(12, dtype=np.float32).reshape(3, 4)  # rows [0..3], [4..7], [8..11]
    x = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    b = np.ones(4, np.float32)
    want = [[9, 11, 13, 15], [9, 10, 11, 12]]  # rows 0 + 2 (+ 1), row 2 (+ 1)
    np.testing.assert_array_equal(gf.matmul(x, w, b, spikes=True), want)
    np.testing.assert_array_equal(gf.matmul(x, w, b), want)
    np.testing.assert_array_equal(gf.matmul(np.zeros((2, 3), np.float32), w, None, True), 0.0)


def test_layer_norm_equals_the_module_bit_for_bit():
    ln = LayerNorm(24)
    ln.params["gamma"][:] = np.linspace(0.5, 1.5, 24)
    ln.params["beta"][:] = 0.1
    x = np.random.default_rng(1).normal(2.0, 3.0, (2, 3, 1, 24)).astype(np.float32)
    np.testing.assert_array_equal(gf.layer_norm(x, ln), ln(x))


@pytest.mark.parametrize("name", ["sdsa", "sdsa_mean", "spike_matrix_shift", "hybrid_shift"])
def test_one_token_and_chunk_steps_alternate_on_one_state(name):
    model = SpikeLLM(Config.tiny(attention=name)).train(False)
    ids = np.random.default_rng(5).integers(0, model.cfg.vocab_size, (2, 16))
    want = model(ids)
    parts, state, i = [], None, 0
    for n in (3, 1, 1, 4, 1, 2, 1, 1, 1, 1):
        logits, state = model.step(ids[:, i:i + n], state)
        parts.append(logits)
        i += n
    assert "plan" in state and state["pos"] == 16
    np.testing.assert_allclose(np.concatenate(parts, axis=1), want, rtol=0, atol=2e-5)


def test_the_plan_fuses_q_k_v_and_the_token_shift_into_one_matrix():
    model = SpikeLLM(Config.tiny(attention="spike_matrix_shift"))
    attn = model.blocks[0].modules["attn"]
    p = gf._qkv_plan(attn)
    d = model.cfg.n_embd
    assert p["w"].shape == (2 * d, 3 * d) and p["shift"]
    wk, mk = attn.modules["k_proj"].params["W"], attn.params["shift_k"]
    np.testing.assert_allclose(p["w"][:d, d:2 * d], mk[:, None] * wk)
    np.testing.assert_allclose(p["w"][d:, d:2 * d], (1 - mk)[:, None] * wk)
    np.testing.assert_array_equal(p["w"][d:, :d], 0.0)  # the previous token has no Q
    assert gf._qkv_plan(SpikeLLM(Config.tiny(attention="softmax")).blocks[0].modules["attn"]) \
        is None


def test_mlx_lif_steps_hand_values_and_the_module():
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf
    from spike_lib.mlx_impl.neurons import LIF as MlxLIF

    x = mx.array([[1.5], [0.8]])  # as the NumPy hand test: subtract fires twice, zero once
    np.testing.assert_array_equal(np.array(mgf.lif_steps(x, (0.5, 1.0, "subtract"))), [[1], [1]])
    np.testing.assert_array_equal(np.array(mgf.lif_steps(x, (0.5, 1.0, "zero"))), [[1], [0]])
    xs = np.random.default_rng(0).normal(0.6, 1.0, (4, 3, 16)).astype(np.float32)
    for reset in ("subtract", "zero"):
        lif = MlxLIF(beta=0.7, threshold=0.9, reset=reset)
        np.testing.assert_array_equal(np.array(mgf.lif_steps(mx.array(xs), mgf._plain(lif))),
                                      np.array(lif(mx.array(xs))))


def test_mlx_one_token_steps_use_one_compiled_plan_and_match_numpy():
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl.model import SpikeLLM as MlxLLM

    cfg = Config.tiny(attention="spike_matrix_shift")
    model, ref = MlxLLM(cfg), SpikeLLM(cfg).train(False)  # same seed, same weights
    model.train(False)
    ids = np.random.default_rng(6).integers(0, cfg.vocab_size, (1, 12))
    got, state = model.step(ids[:, :4])
    want, ref_state = ref.step(ids[:, :4])
    for i in range(4, 12):
        got, state = model.step(ids[:, i:i + 1], state)
        want, ref_state = ref.step(ids[:, i:i + 1], ref_state)
        np.testing.assert_allclose(np.array(got), want, rtol=0, atol=1e-4)
    assert "plan" in state and "compiled" in state


def test_mlx_compiled_token_function_is_reused_until_a_weight_changes():
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf
    from spike_lib.mlx_impl.model import SpikeLLM as MlxLLM

    model = MlxLLM(Config.tiny(tie_weights=False))  # lm_head: W, no bias
    model.train(False)
    ids = np.array([[3, 1, 4, 1]])
    _, s1 = model.step(ids[:, :2])
    _, s1 = model.step(ids[:, 2:3], s1)
    _, s2 = model.step(ids[:, :2])
    first, s2 = model.step(ids[:, 2:3], s2)
    assert s1["compiled"] is s2["compiled"]  # a second sequence reuses the traced function
    model.lm_head.W = model.lm_head.W * 0.0  # new weights: a new plan, and new logits
    _, s3 = model.step(ids[:, :2])
    zero, s3 = model.step(ids[:, 2:3], s3)
    assert s3["compiled"] is not s1["compiled"]
    assert np.abs(np.array(first)).max() > 0
    np.testing.assert_array_equal(np.array(zero), 0.0)  # h @ 0: the new weights were read
    assert len(mgf._CACHE) <= 4 and mx is not None


def test_mlx_gathered_matmul_reads_the_fired_rows_and_equals_the_dense_product():
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf

    w = mx.array(np.arange(24, dtype=np.float32).reshape(6, 4))  # row i: [4i .. 4i + 3]
    x = mx.array(np.array([[[0, 1, 0, 0, 0, 1]], [[0, 1, 0, 1, 0, 0]]], np.float32))  # (T, 1, K)
    want = [[[24, 26, 28, 30]], [[16, 18, 20, 22]]]  # rows 1 + 5, rows 1 + 3
    counts = {}
    got = mgf._apply((w, None), x, (4, "fc2", counts))  # columns 1, 3, 5 fired: 3 of capacity 4
    np.testing.assert_array_equal(np.array(got), want)
    assert counts["fc2"].item() == 3
    got = mgf._apply((w, mx.ones(4)), x, (1, "fc2", counts))  # capacity 1 < 3: one row only
    assert counts["fc2"].item() == 3 and not np.array_equal(np.array(got), np.add(want, 1))
    counts = {}
    np.testing.assert_array_equal(np.array(mgf._apply((w, None), x, (None, "fc2", counts))), want)
    assert counts == {}  # dense: nothing gathered, nothing counted


def test_mlx_token_function_grows_too_small_capacities_and_matches_the_dense_step():
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf
    from spike_lib.mlx_impl.model import SpikeLLM as MlxLLM

    cfg = Config.tiny(attention="spike_matrix_shift", n_embd=64, d_ff=256)
    model = MlxLLM(cfg)
    model.train(False)
    ids = np.random.default_rng(7).integers(0, cfg.vocab_size, (1, 12))
    _, state = model.step(ids[:, :4])
    _, state = model.step(ids[:, 4:5], state)
    tf = state["compiled"]
    assert isinstance(tf, mgf.TokenFunction)
    width = {"qkv": 64, "out": 64, "fc1": 64, "fc2": 256}
    assert all(c is None or 16 <= c <= width[k] // 4 for k, c in tf.caps.items())
    tf.caps = {"qkv": 2, "out": 2, "fc1": 2, "fc2": 2}  # far too small: every kind must grow
    dense = mx.compile(lambda *a: mgf.forward_one(model, state["plan"], *a))
    layers = state["layers"]
    for i in range(5, 12):
        args = (mx.array(ids[:, i:i + 1]), mx.array([i]), mx.array(float(i)))
        got, new = tf(*args, layers)
        want, layers = dense(*args, layers)
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=0, atol=1e-5)
        for st, ref in zip(new, layers):
            for k in ref:
                np.testing.assert_allclose(np.array(st[k]), np.array(ref[k]), rtol=0, atol=1e-5)
    assert all(c is None or c >= 16 for c in tf.caps.values()) and len(tf.fns) >= 2
