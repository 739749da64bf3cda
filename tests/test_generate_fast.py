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


def test_lif_steps_with_spike_levels_hand_values_and_the_module():
    # D = 4, threshold 1: levels 0.25, 0.5, 0.75, 1. u0 = 0.6 passes two: s0 = 0.5, v0 = 0.1;
    # u1 = 0.5 * 0.1 + 0.3 = 0.35 passes one: s1 = 0.25 (reset zero: v0 = 0, u1 = 0.3: 0.25)
    x = np.array([[0.6], [0.3]], np.float32)
    np.testing.assert_array_equal(gf.lif_steps(x, (0.5, 1.0, "subtract", 4)), [[0.5], [0.25]])
    np.testing.assert_array_equal(gf.lif_steps(x, (0.5, 1.0, "zero", 4)), [[0.5], [0.25]])
    x = np.random.default_rng(0).normal(0.6, 1.0, (4, 3, 1, 16)).astype(np.float32)
    for reset in ("subtract", "zero"):
        for levels in (2, 4, 8):
            lif = LIF(beta=0.7, threshold=0.9, reset=reset, levels=levels)
            assert gf._plain(lif) == (0.7, 0.9, reset, levels)
            np.testing.assert_array_equal(gf.lif_steps(x, gf._plain(lif)), lif(x))


def test_spike_matmul_reads_only_the_spiked_rows_and_equals_the_dense_product():
    w = np.arange(12, dtype=np.float32).reshape(3, 4)  # rows [0..3], [4..7], [8..11]
    x = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    b = np.ones(4, np.float32)
    want = [[9, 11, 13, 15], [9, 10, 11, 12]]  # rows 0 + 2 (+ 1), row 2 (+ 1)
    np.testing.assert_array_equal(gf.matmul(x, w, b, spikes=True), want)
    np.testing.assert_array_equal(gf.matmul(x, w, b), want)
    np.testing.assert_array_equal(gf.matmul(np.zeros((2, 3), np.float32), w, None, True), 0.0)


def test_few_rows_use_one_matrix_vector_product_per_row_with_the_gemm_numbers():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(37, 11)).astype(np.float32)
    for rows in (1, 2, gf.GEMV_ROWS, gf.GEMV_ROWS + 1):
        x = rng.normal(size=(rows, 37)).astype(np.float32)
        y = gf._rows_times(x, w)
        assert y.shape == (rows, 11) and y.dtype == np.float32
        np.testing.assert_allclose(y, x.astype(np.float64) @ w, rtol=1e-5, atol=1e-5)
    x = np.array([[1, 0, 2], [0, 3, 0]], np.float32)  # by hand: 1 row0 + 2 row2; 3 row1
    w = np.array([[1, 2], [10, 20], [100, 200]], np.float32)
    np.testing.assert_array_equal(gf._rows_times(x, w), [[201, 402], [30, 60]])


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


@pytest.mark.parametrize("name", ["sdsa", "sdsa_mean", "spike_matrix_shift", "hybrid_shift"])
def test_mlx_one_token_and_chunk_steps_alternate_on_one_state(name):
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl.model import SpikeLLM as MlxLLM

    model = MlxLLM(Config.tiny(attention=name))
    model.train(False)
    ids = np.random.default_rng(5).integers(0, model.cfg.vocab_size, (2, 16))  # B = 2
    want = np.array(model(ids))
    parts, state, i = [], None, 0
    for n in (3, 1, 1, 4, 1, 2, 1, 1, 1, 1):  # the fused path's state read by the chunk path
        logits, state = model.step(ids[:, i:i + n], state)
        parts.append(np.array(logits))
        i += n
    assert "plan" in state and state["pos"] == 16
    np.testing.assert_allclose(np.concatenate(parts, axis=1), want, rtol=0, atol=2e-5)


def test_the_plan_fuses_q_k_v_and_the_token_shift_into_one_matrix():
    model = SpikeLLM(Config.tiny(attention="spike_matrix_shift"))
    attn = model.blocks[0].modules["attn"]
    p = gf._qkv_plan(attn)
    d = model.cfg.n_embd
    assert p["w"].shape == (d, 5 * d) and p["shift"]  # [Q | K | V | next K | next V]
    wk, mk = attn.modules["k_proj"].params["W"], attn.params["shift_k"]
    wv, mv = attn.modules["v_proj"].params["W"], attn.params["shift_v"]
    np.testing.assert_array_equal(p["w"][:, :d], attn.modules["q_proj"].params["W"])
    np.testing.assert_allclose(p["w"][:, d:2 * d], mk[:, None] * wk)
    np.testing.assert_allclose(p["w"][:, 3 * d:4 * d], (1 - mk)[:, None] * wk)
    np.testing.assert_allclose(p["w"][:, 4 * d:], (1 - mv)[:, None] * wv)
    assert gf._qkv_plan(SpikeLLM(Config.tiny(attention="softmax")).blocks[0].modules["attn"]) \
        is None


def test_token_shift_ahead_product_equals_the_shifted_projection():
    # Eq. 7.7: x' W_K (1 - mu_k) computed one token early gives pre_K of the shifted input
    model = SpikeLLM(Config.tiny(attention="spike_matrix_shift"))
    attn, d = model.blocks[0].modules["attn"], model.cfg.n_embd
    p = gf._qkv_plan(attn)
    rng = np.random.default_rng(4)
    x_prev, x = (rng.integers(0, 2, (1, d)).astype(np.float32) for _ in range(2))
    ahead = (x_prev @ p["w"])[:, 3 * d:]
    pre = (x @ p["w"])[:, :3 * d]
    pre[:, d:] += ahead
    mk, mv = attn.params["shift_k"], attn.params["shift_v"]
    wk, wv = attn.modules["k_proj"].params["W"], attn.modules["v_proj"].params["W"]
    np.testing.assert_allclose(pre[:, d:2 * d], (mk * x + (1 - mk) * x_prev) @ wk, atol=1e-5)
    np.testing.assert_allclose(pre[:, 2 * d:], (mv * x + (1 - mv) * x_prev) @ wv, atol=1e-5)


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


def test_mlx_lif_steps_on_token_rows_with_a_bias_equals_the_module():
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf
    from spike_lib.mlx_impl.neurons import LIF as MlxLIF

    lif = MlxLIF(beta=0.6, threshold=0.8)
    x = np.random.default_rng(2).normal(0.5, 1.0, (3, 2, 1, 8)).astype(np.float32)  # T=3, B=2
    bias = np.linspace(-0.5, 0.5, 8).astype(np.float32)
    want = np.array(lif(mx.array(x + bias)))
    rows = mx.array(x.reshape(6, 8))  # (T B, D): the one-token layout, bias added inside
    got = mgf.lif_steps(rows, mgf._plain(lif), steps=3, bias=mx.array(bias))
    np.testing.assert_array_equal(np.array(got).reshape(3, 2, 1, 8), want)
    got = mgf.lif_steps(mx.array(x[:, 0, 0]), mgf._plain(lif), steps=3, bias=mx.array(bias))
    np.testing.assert_array_equal(np.array(got), want[:, 0, 0])  # B = 1: one row per step


def test_mlx_gathered_matmul_reads_the_fired_rows_and_equals_the_dense_product():
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf

    w = mx.array(np.arange(24, dtype=np.float32).reshape(6, 4))  # row i: [4i .. 4i + 3]
    x = mx.array(np.array([[0, 1, 0, 0, 0, 1], [0, 1, 0, 1, 0, 0]], np.float32))  # (T, K)
    want = [[24, 26, 28, 30], [16, 18, 20, 22]]  # rows 1 + 5, rows 1 + 3
    keys = []
    got, b = mgf._apply((w, mx.ones(4)), x, (4, "fc2", keys))  # columns 1, 3, 5: 3 of 4 rows
    np.testing.assert_array_equal(np.array(got), want)
    np.testing.assert_array_equal(np.array(b), 1.0)  # the bias is the caller's to add
    assert keys[0][0] == "fc2"
    np.testing.assert_array_equal(np.array(keys[0][1]), [[0, 2, 0, 1, 0, 1]])  # spikes per column
    got, _ = mgf._apply((w, None), x, (1, "fc2", keys))  # capacity 1 < 3: one row only
    assert not np.array_equal(np.array(got), want) and len(keys) == 2
    got, _ = mgf._apply((w, None), x, (0, "fc2", keys))  # capacity 0: dense, counted
    np.testing.assert_array_equal(np.array(got), want)
    assert len(keys) == 3
    got, _ = mgf._apply((w, None), x, (None, "fc2", keys))  # None: dense, not counted
    np.testing.assert_array_equal(np.array(got), want)
    assert len(keys) == 3


def test_mlx_token_function_measures_grows_capacities_and_matches_the_dense_step():
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf
    from spike_lib.mlx_impl.model import SpikeLLM as MlxLLM

    cfg = Config.tiny(attention="spike_matrix_shift", n_embd=64, d_ff=256)
    model = MlxLLM(cfg)
    model.train(False)
    ids = np.random.default_rng(7).integers(0, cfg.vocab_size, (1, 16))
    _, state = model.step(ids[:, :4])
    for i in range(4, 4 + mgf.TokenFunction.PROBE):  # the first tokens: dense, counted
        _, state = model.step(ids[:, i:i + 1], state)
    tf = state["compiled"]
    assert isinstance(tf, mgf.TokenFunction) and tf.probe == 0
    width = {"qkv": 64, "out": 64, "fc1": 64, "fc2": 256}  # qkv: x alone (its product is 5D)
    assert tf.width == width
    for k, c in tf.caps.items():  # measured: a multiple of width / 32, at most half the width
        assert c is None or (c % (width[k] // 32) == 0 and 1.25 * tf.peak[k] <= c <= width[k]
                             // 2), (k, c)
    tf.caps, tf.current = {"qkv": 2, "out": 2, "fc1": 2, "fc2": 2}, None  # far too small
    dense = mx.compile(lambda *a: mgf.forward_one(model, state["plan"], *a))
    layers = state["layers"]
    for i in range(8, 16):
        args = (mx.array(ids[:, i:i + 1]), mx.array([i]), mx.array(float(i)))
        got, new = tf(*args, layers)
        want, layers = dense(*args, layers)
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=0, atol=1e-5)
        for st, ref in zip(new, layers):
            assert st.keys() == ref.keys()
            for k in ref:
                np.testing.assert_allclose(np.array(st[k]), np.array(ref[k]), rtol=0, atol=1e-5)
    assert all(c is None or c > 2 for c in tf.caps.values()) and len(tf.fns) >= 3


def test_mlx_token_function_traces_once_per_capacity_set(monkeypatch):
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import generate_fast as mgf
    from spike_lib.mlx_impl.model import SpikeLLM as MlxLLM

    traces = []
    forward_one = mgf.forward_one

    def counted(*args, **kwargs):  # runs only while mx.compile traces
        traces.append(kwargs.get("caps"))
        return forward_one(*args, **kwargs)

    monkeypatch.setattr(mgf, "forward_one", counted)
    model = MlxLLM(Config.tiny(attention="spike_matrix_shift"))
    model.train(False)
    ids = np.random.default_rng(8).integers(0, model.cfg.vocab_size, (1, 40))
    _, state = model.step(ids[:, :4])
    for i in range(4, 20):
        _, state = model.step(ids[:, i:i + 1], state)
    tf, before = state["compiled"], len(traces)
    assert before == len(tf.fns) <= 4  # the measuring tokens, then a few capacity sets
    for i in range(20, 40):  # shapes are fixed: no new trace unless a capacity grows
        _, state = model.step(ids[:, i:i + 1], state)
    assert len(traces) == len(tf.fns)
