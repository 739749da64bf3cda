import numpy as np
import pytest

from spike_lib.train.check import gradcheck_config, model_gradcheck, module_gradcheck, normwise_rel_error
from spike_lib.core.config import Config
from spike_lib.numpy_impl.neurons import LIF
from spike_lib.numpy_impl.blocks import Block, ClampLIF, SmoothGate
from spike_lib.numpy_impl.layers import cross_entropy
from spike_lib.numpy_impl.model import SpikeLLM, forward_macs, train_step_flops
from spike_lib.core.surrogate import get_surrogate


def tiny(**kw):
    base = {"vocab_size": 13, "block_size": 8, "n_embd": 8, "n_head": 2, "d_ff": 16,
            "n_layer": 2, "num_steps": 3}
    return Config.tiny(**{**base, **kw})


# -- gradient checks (smooth mode, float64) ---------------------------------------------------

@pytest.mark.parametrize("kw", [
    {}, {"attention": "softmax"}, {"spiking": False}, {"spiking": False, "attention": "softmax"},
    {"tie_weights": True, "mem_clamp": 1.5, "reset": "zero"},
    {"in_threshold": 0.9, "qkv_threshold": 0.7, "hidden_threshold": 0.8},
    {"spike_levels": 3}, {"spike_levels": 2, "mem_clamp": 2.5, "attention": "sdsa_mean"},
    {"spike_levels": 4, "attention": "spike_matrix_shift"},
], ids=["sdsa", "softmax", "twin", "twin-softmax", "tied-clamp-zero", "thresholds", "levels3",
        "levels2-clamp-mean", "levels4-matrix"])
def test_whole_model_gradcheck(kw):
    res = model_gradcheck(gradcheck_config(**kw), max_entries=25)
    assert res["max_rel_err"] < 1e-6, res["worst_tensor"]
    assert res["n_checked"] > 300


def test_gradcheck_would_catch_a_wrong_backward(monkeypatch):
    # a backward that forgets the surrogate factor must fail the same check
    monkeypatch.setattr(LIF, "backward", lambda self, dspk: dspk)
    assert model_gradcheck(gradcheck_config(), max_entries=10)["max_rel_err"] > 1e-3


@pytest.mark.parametrize("kw", [{}, {"attention": "softmax"}, {"spiking": False},
                                {"mem_clamp": 1.2}])
def test_block_gradcheck(kw, rng):
    cfg = tiny(detach_reset=False, **kw)
    block = Block(cfg, rng).astype(np.float64).set_smooth(True)
    x = rng.standard_normal((cfg.num_steps if cfg.spiking else 1, 2, 5, cfg.n_embd))
    errs = module_gradcheck(block, x, rng, max_entries=30)
    if kw.get("attention") == "softmax":
        # softmax is unchanged when the same number q.b_K is added to every score of a row, so
        # dL/db_K is exactly 0 and its relative error is rounding noise over rounding noise (its
        # size depends on the BLAS): check the invariance itself instead
        errs.pop("attn.k_proj.b")
        b = next(arr for name, arr, _ in block.named_parameters() if name == "attn.k_proj.b")
        before = block.forward(x).copy()
        b += rng.standard_normal(b.shape)
        assert np.abs(block.forward(x) - before).max() < 1e-12 * np.abs(before).max()
    assert max(errs.values()) < 1e-6, errs


def test_clamp_lif_and_smooth_gate_gradcheck(rng):
    x = rng.standard_normal((4, 3, 5)) * 2
    lif = ClampLIF(1.3, beta=0.7, threshold=1.0, detach_reset=False).set_smooth(True)
    assert module_gradcheck(lif, x, rng)["x"] < 1e-7
    assert module_gradcheck(SmoothGate(0.5, "sigmoid", 4.0), x, rng)["x"] < 1e-7


def test_clamp_lif_clips_the_membrane_by_hand():
    # beta=1, threshold 1, clamp 1.5: inputs 3, -5, 0.2 give u = 1.5 (spike, v=.5), then
    # clip(.5-5) = -1.5, then -1.5+.2 = -1.3
    lif = ClampLIF(1.5, beta=1.0, threshold=1.0)
    spk = lif(np.array([[3.0], [-5.0], [0.2]]))
    mem = lif.cache[0]
    np.testing.assert_allclose(mem[:, 0], [1.5, -1.5, -1.3])
    np.testing.assert_allclose(spk[:, 0], [1, 0, 0])
    dx = lif.backward(np.ones((3, 1)))
    assert dx[0, 0] == 0.0 and dx[1, 0] == 0.0  # both were clipped: no gradient
    with pytest.raises(ValueError, match="mem_clamp=0.5 must exceed threshold"):
        ClampLIF(0.5)


# -- spiking mode against the surrogate formula ------------------------------------------------

def test_block_spiking_backward_matches_surrogate_formula(rng):
    # T = 1: the MLP's hidden neuron is s = H(z - th), so dL/dW1 = s2^T (dout W2^T * g(z - th))
    cfg = tiny(num_steps=1, hidden_threshold=0.3)
    block = Block(cfg, rng)
    x = rng.standard_normal((1, 2, 5, cfg.n_embd)).astype(np.float32)
    block(x)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    block.zero_grad()
    block.backward(dout)
    m = block.modules
    z = m["sn_hidden"].cache[0]  # membrane = fc1 output at T = 1
    s2 = m["sn2"].last_spk
    g = get_surrogate(cfg.surrogate, cfg.surrogate_scale).grad(z - 0.3)
    dz = (dout @ m["fc2"].params["W"].T) * g
    want = s2.reshape(-1, cfg.n_embd).T @ dz.reshape(-1, cfg.d_ff)
    np.testing.assert_allclose(m["fc1"].grads["W"], want, rtol=1e-5, atol=1e-6)
    assert set(np.unique(s2)) <= {0.0, 1.0} and 0 < s2.mean() < 1


def test_readout_gradient_is_exact_in_spiking_mode(rng):
    # nothing after the last spike is a step function: finite differences see lm_head exactly
    from spike_lib.core.gradcheck import numerical_grad

    model = SpikeLLM(tiny()).astype(np.float64)
    idx = rng.integers(0, 13, (2, 6))
    tgt = rng.integers(0, 13, (2, 6))
    _, dl = cross_entropy(model(idx), tgt)
    model.zero_grad()
    model.backward(dl)
    w = model.modules["lm_head"].params["W"]
    num = numerical_grad(lambda: cross_entropy(model(idx), tgt)[0], w)
    assert normwise_rel_error(model.modules["lm_head"].grads["W"], num) < 1e-8


# -- structure ----------------------------------------------------------------------------

def test_shapes_and_parameter_names(rng):
    cfg = tiny()
    model = SpikeLLM(cfg)
    idx = rng.integers(0, 13, (3, 7))
    assert model(idx[0]).shape == (1, 7, 13)  # a 1-D prompt is one sequence
    assert model.hidden(idx).shape == (3, 7, 8)
    assert model(idx).shape == (3, 7, 13)
    names = [n for n, _, _ in model.named_parameters()]
    assert "blocks.0.attn.q_proj.W" in names and "blocks.1.fc2.b" in names
    sn = model.modules["blocks.0"].modules["sn1"].last_spk
    assert sn.shape == (3, 3, 7, 8)  # (T, B, L, D)


def test_parameter_count_by_hand():
    cfg = tiny()
    v, d, f, bl = 13, 8, 16, 8
    block = 2 * 2 * d + 4 * (d * d + d) + (d * f + f) + (f * d + d)  # 2 LN, 4 proj, MLP
    want = v * d + bl * d + 2 * block + 2 * d + d * v
    assert SpikeLLM(cfg).num_params() == want
    assert SpikeLLM(tiny(tie_weights=True)).num_params() == want - d * v


@pytest.mark.parametrize("kw", [{}, {"attention": "softmax"}, {"spiking": False}])
def test_changing_a_future_token_changes_no_earlier_logit(kw, rng):
    model = SpikeLLM(tiny(**kw))
    idx = rng.integers(0, 13, (2, 8))
    a = model(idx)
    idx2 = idx.copy()
    idx2[:, 5] = (idx2[:, 5] + 1) % 13
    b = model(idx2)
    np.testing.assert_array_equal(a[:, :5], b[:, :5])
    assert np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-4  # ... but does change its own and later


def test_lif_state_is_not_carried_over_token_positions(rng):
    # without position embeddings, permuting tokens permutes the first neuron's spikes
    model = SpikeLLM(tiny())
    model.modules["pos_emb"].params["W"][...] = 0.0
    idx = rng.integers(0, 13, (1, 8))
    perm = rng.permutation(8)
    model(idx)
    s = model.modules["blocks.0"].modules["sn1"].last_spk.copy()
    model(idx[:, perm])
    s_perm = model.modules["blocks.0"].modules["sn1"].last_spk
    np.testing.assert_array_equal(s[:, :, perm], s_perm)
    assert 0 < s.mean() < 1


@pytest.mark.parametrize("attention", ["sdsa", "softmax"])
def test_heads_are_independent(attention, rng):
    cfg = tiny(attention=attention, num_steps=2)
    block = Block(cfg, rng)
    attn = block.modules["attn"]
    attn.modules["out_proj"].params["W"][...] = np.eye(8)
    attn.modules["out_proj"].params["b"][...] = 0.0
    for n in "qkv":  # livelier neurons, so that a change in head 0 shows
        attn.modules[f"{n}_proj"].params["W"] *= 4.0
    x = (rng.random((2, 2, 6, 8)) < 0.5).astype(np.float32)  # spikes, as the block feeds it
    y = attn(x)
    attn.modules["k_proj"].params["W"][:, :4] += rng.standard_normal((8, 4)).astype(np.float32)
    y2 = attn(x)
    np.testing.assert_array_equal(y[..., 4:], y2[..., 4:])  # head 1 untouched
    assert np.abs(y[..., :4] - y2[..., :4]).max() > 0  # head 0 changed


def test_twin_has_no_spikes_and_ignores_num_steps(rng):
    idx = rng.integers(0, 13, (2, 5))
    a = SpikeLLM(tiny(spiking=False, num_steps=1))
    b = SpikeLLM(tiny(spiking=False, num_steps=4))
    assert b.num_steps == 1 and b.firing_rates() == {}
    np.testing.assert_array_equal(a(idx), b(idx))


def test_bad_input_is_rejected_with_the_fix():
    model = SpikeLLM(tiny())
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 12\]"):
        model(np.array([[1, 13]]))
    with pytest.raises(ValueError, match="block_size=8, got shape"):
        model(np.zeros((1, 9), int))
    with pytest.raises(ValueError, match="integer token ids"):
        model(np.zeros((1, 3)))
    with pytest.raises(TypeError, match="spike_lib.core.config.Config"):
        SpikeLLM({"n_layer": 1})


# -- statistics, energy, FLOPs ------------------------------------------------------------

def test_firing_rates_and_energy_report_by_hand(rng):
    cfg = tiny()
    model = SpikeLLM(cfg)
    model(rng.integers(0, 13, (2, 6)))
    rates = model.firing_rates()
    assert {"blocks.0.sn1", "blocks.0.attn.q_lif", "blocks.0.attn.kv", "blocks.1.sn_hidden"} <= set(rates)
    assert all(0 <= r <= 1 for r in rates.values())
    rep = model.energy_report(2, 6)
    row = {r["layer"]: r for r in rep.rows}
    n = 12
    fc1 = row["blocks.0.fc1"]
    assert fc1["flops"] == n * 8 * 16
    assert fc1["snn_pj"] == pytest.approx(n * 8 * 16 * 3 * rates["blocks.0.sn2"] * 0.9)
    assert row["lm_head"]["snn_pj"] == pytest.approx(n * 8 * 13 * 4.6)  # once, not T times
    twin = SpikeLLM(tiny(spiking=False))
    twin(rng.integers(0, 13, (2, 6)))
    assert twin.energy_report(2, 6).ratio == pytest.approx(1.0)


def test_train_step_flops_by_hand():
    cfg = tiny()  # T=3, 2 blocks, D=8, d_ff=16, V=13
    per_tok = 3 * 2 * (4 * 64 + 2 * 8 * 16) + 8 * 13
    assert forward_macs(cfg, 2, 8) == 16 * per_tok
    assert train_step_flops(cfg, 2) == 6 * 16 * per_tok
    soft = tiny(attention="softmax", spiking=False)  # T=1 and 2 L^2 D per sequence
    assert forward_macs(soft, 1, 8) == 2 * (8 * (4 * 64 + 256) + 2 * 64 * 8) + 8 * 8 * 13


def test_dropout_acts_in_training_only(rng):
    model = SpikeLLM(tiny(dropout=0.5, spiking=False))
    idx = rng.integers(0, 13, (2, 6))
    model.train(True)
    assert np.abs(model(idx) - model(idx)).max() > 1e-4  # a new mask every pass
    model.train(False)
    np.testing.assert_array_equal(model(idx), model(idx))
    assert SpikeLLM(tiny()).num_params() == model.num_params()  # dropout has no weights


@pytest.mark.parametrize("attention", ["sdsa", "softmax"])
def test_causal_attention_gradcheck(attention, rng):
    from spike_lib.numpy_impl.blocks import make_attention

    attn = make_attention(tiny(attention=attention, detach_reset=False), rng)
    attn.astype(np.float64).set_smooth(True)
    x = rng.standard_normal((3, 2, 6, 8))
    errs = module_gradcheck(attn, x, rng, max_entries=30)
    if attention == "softmax":  # the key bias shifts a whole row of scores: its gradient is 0
        assert np.abs(attn.modules["k_proj"].grads["b"]).max() < 1e-12
        errs.pop("k_proj.b")  # ... so finite differences see only their own rounding noise
    assert max(errs.values()) < 1e-6, errs


def test_config_fields_and_presets_added_for_the_model():
    small = Config.small()
    assert (small.n_layer, small.n_embd, small.n_head, small.d_ff, small.num_steps,
            small.block_size) == (4, 256, 4, 1024, 4, 128)
    assert Config.book() == small.replace(num_steps=2)  # data/checkpoints/SWEEP.md
    assert Config.tiny(qkv_threshold=0.7).thresholds() == {"in": 1.0, "qkv": 0.7, "attn": 0.5,
                                                           "hidden": 1.0}
    with pytest.raises(ValueError, match="mem_clamp=0.9 is invalid: it must exceed every"):
        Config.tiny(mem_clamp=0.9)
    with pytest.raises(ValueError, match=r"dropout=1.0 is invalid: allowed range is \[0.0, 1.0\)"):
        Config.tiny(dropout=1.0)
    with pytest.raises(ValueError, match="hidden_threshold=-1"):
        Config.tiny(hidden_threshold=-1.0)
    assert Config.from_dict(Config.small(tie_weights=True).to_dict()).tie_weights is True


# -- multi-level spikes keep the binary scale: the property spike_levels is normalised for -------
def _grad_norm(levels):
    cfg = Config.tiny(spike_levels=levels)
    model = SpikeLLM(cfg, np.random.default_rng(0))  # the same seed: the same weights
    rng = np.random.default_rng(1)
    idx, tgt = (rng.integers(0, cfg.vocab_size, (4, cfg.block_size)) for _ in range(2))
    _, dl = cross_entropy(model(idx), tgt)
    model.zero_grad()
    model.backward(dl)
    return float(np.sqrt(sum(np.sum(np.square(g)) for _, _, g in model.named_parameters())))


def test_four_level_spikes_have_the_gradient_norm_of_binary_spikes_at_init():
    # spikes j/4 in [0, 1] and a surrogate averaged over the 4 levels: the same size of
    # activations and gradients as binary spikes (integer spikes 0..4 grew the norm ~200-fold
    # in 500 training steps)
    binary, four = _grad_norm(1), _grad_norm(4)
    assert 0.5 < four / binary < 2.0, f"grad norm: spike_levels=4 {four:.4g}, binary {binary:.4g}"
