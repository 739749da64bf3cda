"""Context attentions in NumPy: hand-computed values, gradient checks, exact causality, MLX parity."""

import numpy as np
import pytest

from spike_lib.numpy_impl import context_attention as C
from spike_lib.numpy_impl.neurons import LIF
from spike_lib.train.check import module_gradcheck, normwise_rel_error

NAMES = sorted(C.NAMES)
# the constructor variants no name selects, checked as well
EXTRA = {"spike_matrix_power2": (C.SpikeMatrixAttention, {"power": 2}),
         "spike_matrix_running_shift": (C.SpikeMatrixAttention, {"form": "running",
                                                                 "shift": True}),
         "hybrid_relu_shift": (C.HybridAttention, {"score": "relu", "shift": True})}
CASES = {**C.NAMES, **EXTRA}


def neuron_factory(lif_cls, attn_threshold=0.5, threshold=1.0, detach_reset=False):
    """LIF neurons with beta 0.5; the reset is differentiated (smooth mode sees it)."""
    def neuron(kind):
        th = attn_threshold if kind == "attn" else threshold
        return lif_cls(beta=0.5, threshold=th, detach_reset=detach_reset)
    return neuron


def build(name, seed=0, n_embd=8, n_head=2, **kw):
    cls, args = CASES[name]
    return cls(n_embd, n_head, np.random.default_rng(seed), neuron=neuron_factory(LIF, **kw),
               **args)


# -- hand-computed values -----------------------------------------------------------------------
def set_weights(att, **weights):
    """Put 2 x 2 weights in the projections (biases stay 0); W_O defaults to the identity."""
    for name in ("q", "k", "v", "out"):
        w = weights.get(name, np.eye(2))
        att.modules[f"{name}_proj"].params["W"][...] = w


X_HAND = np.array([[[[1, 0], [0, 1], [1, 1]]]], dtype=np.float32)  # (T=1, B=1, L=3, D=2)


def test_mean_sdsa_hand_example():
    # W = 2I: Q = V = x; K copies channel 0 into both: K = [[1,1],[0,0],[1,1]]
    # K*V = [[1,0],[0,0],[1,1]], running mean m = [[1,0],[1/2,0],[2/3,1/3]]; gain 1,
    # SN_attn fires where m > 0.6: [[1,0],[0,0],[1,0]] (the sum would stay open at l=1)
    att = C.MeanSDSA(2, 1, np.random.default_rng(0),
                     neuron=neuron_factory(LIF, attn_threshold=0.6))
    set_weights(att, q=2 * np.eye(2), k=[[2, 2], [0, 0]], v=2 * np.eye(2))
    att.params["gate_gain"][...] = 1.0
    y = att(X_HAND)
    m = att.cache[3]
    assert np.allclose(m[0, 0], [[1, 0], [0.5, 0], [2 / 3, 1 / 3]], atol=1e-7)
    assert np.array_equal(att.modules["attn_lif"].last_spk[0, 0], [[1, 0], [0, 0], [1, 0]])
    assert np.array_equal(y[0, 0], [[1, 0], [0, 0], [1, 0]])  # Q * gate, W_O = I


def test_decay_sdsa_hand_example():
    # lambda = 1/2 on both channels: W = [[1,0,0],[1/2,1,0],[1/4,1/2,1]], row sums 1, 3/2, 7/4;
    # K*V = [[1,0],[0,0],[1,1]]: m = [[1,0],[1/3,0],[5/7,4/7]]
    att = C.DecaySDSA(2, 1, np.random.default_rng(0), neuron=neuron_factory(LIF))
    set_weights(att, q=2 * np.eye(2), k=[[2, 2], [0, 0]], v=2 * np.eye(2))
    att.params["decay_logit"][...] = 0.0  # sigmoid(0) = 1/2
    w, dist = att.decay_matrix(3)
    assert np.allclose(w[0], [[1, 0, 0], [0.5, 1, 0], [0.25, 0.5, 1]])
    assert np.array_equal(dist, [[0, 0, 0], [1, 0, 0], [2, 1, 0]])
    att(X_HAND)
    assert np.allclose(att.cache[3][0, 0], [[1, 0], [1 / 3, 0], [5 / 7, 4 / 7]], atol=1e-6)
    lam = 1 / (1 + np.exp(-C.DecaySDSA(8, 2, np.random.default_rng(0)).params["decay_logit"]))
    assert np.allclose(lam[[0, -1]], [0.5, 1 - 2.0**-7], atol=1e-6)  # the initial spread


@pytest.mark.parametrize("form", ["quadratic", "running"])
def test_spike_matrix_hand_example(form):
    # Q = K = x, V = x with channels swapped = [[0,1],[1,0],[1,1]]; A = Q K^T masked:
    #   A = [[1,.,.],[0,1,.],[1,1,2]]; sum_j A V = [[0,1],[1,0],[3,3]]; max(1, sum_j A) = 1,1,4
    #   R = [[0,1],[1,0],[3/4,3/4]]; SN_attn (threshold 0.6) passes it as spikes [[0,1],[1,0],[1,1]]
    att = C.SpikeMatrixAttention(2, 1, np.random.default_rng(0), form=form,
                                 neuron=neuron_factory(LIF, attn_threshold=0.6))
    set_weights(att, q=2 * np.eye(2), k=2 * np.eye(2), v=[[0, 2], [2, 0]])
    y = att(X_HAND)
    assert np.array_equal(att.r[0, 0, 0], [[0, 1], [1, 0], [0.75, 0.75]])
    assert np.array_equal(y[0, 0], [[0, 1], [1, 0], [1, 1]])


def test_spike_matrix_decay_hand_example():
    # the hand example above with lambda = 1/2 (decay_logit 0): A[l, j] = (Q[l] . K[j]) 2^-(l-j)
    #   A = [[1,.,.],[0,1,.],[1/4,1/2,2]]; sum_j A V = [[0,1],[1,0],[5/2,9/4]];
    #   sum_j A = 1, 1, 11/4: R = [[0,1],[1,0],[10/11,9/11]]
    att = C.SpikeMatrixAttention(2, 1, np.random.default_rng(0), decay=True,
                                 neuron=neuron_factory(LIF, attn_threshold=0.6))
    set_weights(att, q=2 * np.eye(2), k=2 * np.eye(2), v=[[0, 2], [2, 0]])
    att.params["decay_logit"][...] = 0.0
    att(X_HAND)
    assert np.allclose(att.r[0, 0, 0], [[0, 1], [1, 0], [10 / 11, 9 / 11]], atol=1e-6)
    lam = 1 / (1 + np.exp(-C.SpikeMatrixAttention(8, 4, np.random.default_rng(0),
                                                   decay=True).params["decay_logit"]))
    assert np.allclose(lam, 1 - 2.0 ** -np.array([3, 3 + 5 / 3, 3 + 10 / 3, 8]), atol=1e-6)


def test_spike_matrix_decay_gradient_reaches_the_leak(rng):
    att = build("spike_matrix_decay_shift")
    errs = grad_errors(att, rng.normal(0.5, 1.0, (2, 2, 6, 8)), rng)
    assert "decay_logit" in errs and np.abs(att.grads["decay_logit"]).min() > 1e-8
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("form", ["quadratic", "running"])
def test_spike_matrix_floor_is_the_smallest_score_of_multi_level_spikes(form):
    # spikes of D + 1 = 3 levels (D = 2): scores are multiples of 1/4, the floor is 1/4.
    # q = k = (1/2, 0), v = (1/2, 1): A = 1/4, sum_j A V = (1/8, 1/4), over max(1/4, 1/4):
    # R = (1/2, 1) = V, the average of the one value (a floor of 1 would give (1/8, 1/4))
    levels = lambda kind: LIF(beta=0.5, threshold=1.0, levels=2)  # noqa: E731
    att = C.SpikeMatrixAttention(2, 1, np.random.default_rng(0), form=form, neuron=levels)
    assert att.floor == 0.25 and build("spike_matrix").floor == 1.0
    q = np.array([[[[0.5, 0.0]]]], np.float32)  # (T, B, L=1, hd) per head: (1, 1, 1, 2)
    r = att.mix(q, q.copy(), np.array([[[[0.5, 1.0]]]], np.float32))
    assert np.array_equal(r[0, 0, 0], [0.5, 1.0])


@pytest.mark.parametrize("form", ["quadratic", "running"])
def test_gradcheck_with_multi_level_spikes_across_the_floor(form, rng):
    levels = lambda kind: LIF(beta=0.5, threshold=0.5 if kind == "attn" else 1.0,  # noqa: E731
                              detach_reset=False, levels=3)
    att = C.SpikeMatrixAttention(8, 2, rng, neuron=levels, form=form)
    errs = grad_errors(att, rng.normal(-0.5, 1.0, (2, 2, 6, 8)), rng)
    den = att.mix_cache[-2] if att.form == "running" else att.mix_cache[-1]
    assert (den < att.floor).any() and (den > att.floor).any()  # both branches of the max
    assert max(errs.values()) < 1e-6, errs


def test_spike_matrix_forms_agree_exactly_on_spikes(rng):
    x = rng.normal(0.8, 1.0, (2, 3, 9, 8)).astype(np.float32)
    quad, run = build("spike_matrix"), build("spike_matrix_running")
    assert np.array_equal(quad(x), run(x))  # integer sums: exact in float32
    assert quad.r.max() > 0 and np.array_equal(quad.r, run.r)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    assert normwise_rel_error(run.backward(dout), quad.backward(dout)) < 1e-6


def test_hybrid_weights_are_softmax_and_relu_rows(rng):
    x = rng.standard_normal((1, 1, 4, 8))
    att = build("hybrid").astype(np.float64)
    att(x)
    a = att.cache[3]  # (T, B, H, L, L)
    assert np.allclose(a.sum(-1), 1.0) and np.all(np.triu(a, 1) == 0)
    att = build("hybrid_relu").astype(np.float64)
    att(x)
    q, k = (att.modules[f"{n}_proj"](x)[0, 0, :, :4] for n in "qk")  # head 0, d_h = 4
    s = np.maximum(q @ k.T / 2.0, 0) * np.tril(np.ones((4, 4)))
    assert np.allclose(att.cache[3][0, 0, 0], s / (s.sum(-1, keepdims=True) + 1e-6))


def test_token_shift_mixes_the_previous_token():
    att = C.MeanSDSA(4, 1, np.random.default_rng(0), shift=True)
    assert np.allclose(att.params["shift_k"], [0, 1 / 3, 2 / 3, 1])  # the initial ramp
    x = np.arange(2 * 4, dtype=np.float32).reshape(1, 1, 2, 4)  # tokens [0 1 2 3], [4 5 6 7]
    _, xk, _ = att._inputs(x)
    # token 1: mu x[1] + (1 - mu) x[0] = [0, 5/3 + 1/3 * 4 ...]: channel 0 reads only x[0]
    assert np.allclose(xk[0, 0], [[0, 1 / 3, 4 / 3, 3], [0, 1 / 3 * 5 + 2 / 3 * 1,
                                                           2 / 3 * 6 + 1 / 3 * 2, 7]])
    assert np.array_equal(C.token_shift_backward(C.token_shift(x)), np.concatenate(
        [x[..., :1, :], np.zeros_like(x[..., :1, :])], axis=-2))


# -- gradient checks (smooth mode, float64) -----------------------------------------------------
def grad_errors(att, x, rng):
    errs = module_gradcheck(att.astype(np.float64).set_smooth(), x, rng, eps=1e-5)
    if isinstance(att, C.HybridAttention) and att.score == "softmax":
        # softmax ignores the key bias (q.b is added to a whole row): its gradient is 0, and
        # finite differences resolve 0 to ~1e-10, so check it is 0 instead
        assert np.abs(att.modules["k_proj"].grads["b"]).max() < 1e-12
        del errs["k_proj.b"]
    return errs


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_smooth_float64(name, rng):
    x = rng.normal(0.5, 1.0, (3, 2, 5, 8))
    errs = grad_errors(build(name), x, rng)
    assert "x" in errs and len(errs) >= 8 and max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("name", ["spike_matrix", "spike_matrix_running"])
def test_gradcheck_where_the_score_sum_is_below_one(name, rng):
    # a low input makes the smooth spikes small, so max(1, sum_j A) takes both branches
    x = rng.normal(-1.0, 1.0, (2, 2, 6, 8))
    att = build(name)
    errs = grad_errors(att, x, rng)
    den = att.mix_cache[-2] if att.form == "running" else att.mix_cache[-1]
    assert (den < 0.9).any() and (den > 1.1).any()
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.parametrize("name", ["sdsa_mean", "spike_matrix_running", "hybrid"])
def test_gradcheck_with_a_detached_reset(name, rng):
    # detach_reset=True, the training default: with T = 1 no reset is carried to a later
    # step, so finite differences see exactly the path the hand-written backward keeps
    att = build(name, detach_reset=True)
    x = rng.normal(0.5, 1.0, (1, 2, 5, 8))  # T = 1: no reset is ever carried
    assert max(grad_errors(att, x, rng).values()) < 1e-6


# -- causality: changing token j leaves every output before j bit-identical ---------------------
@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_exact_causality(name, smooth, rng):
    att = build(name).set_smooth(smooth)
    x = rng.normal(0.8, 1.0, (2, 2, 7, 8)).astype(np.float32)
    y = att(x)
    changed_later = 0
    for j in range(x.shape[2]):
        x2 = x.copy()
        x2[:, :, j] = rng.normal(0.8, 1.0, x2[:, :, j].shape)
        y2 = att(x2)
        assert np.array_equal(y[:, :, :j], y2[:, :, :j]), f"token {j} changed an earlier output"
        changed_later += not np.array_equal(y[:, :, j:], y2[:, :, j:])
    if smooth:  # every output reads its token (spikes may hide a change)
        assert changed_later == x.shape[2]


# -- bad input -----------------------------------------------------------------------------------
def test_bad_arguments(rng):
    with pytest.raises(ValueError, match="divisible by n_head=3"):
        C.MeanSDSA(8, 3, rng)
    with pytest.raises(ValueError, match="form='bad' is invalid"):
        C.SpikeMatrixAttention(8, 2, rng, form="bad")
    with pytest.raises(ValueError, match="power > 1 and decay have no running form"):
        C.SpikeMatrixAttention(8, 2, rng, form="running", power=2)
    with pytest.raises(ValueError, match="power > 1 and decay have no running form"):
        C.SpikeMatrixAttention(8, 2, rng, form="running", decay=True)
    with pytest.raises(ValueError, match="score='tanh' is invalid"):
        C.HybridAttention(8, 2, rng, score="tanh")
    with pytest.raises(ValueError, match=r"\(T, B, L, D\)"):
        C.MeanSDSA(8, 2, rng)(np.zeros((2, 4, 8)))
    with pytest.raises(ValueError, match="takes no padding mask"):
        C.MeanSDSA(8, 2, rng)(np.zeros((1, 2, 4, 8)), np.ones((2, 4), bool))


# -- parity with the MLX port (MLX autodiff is the referee) -------------------------------------
def _mlx_pair(name, smooth, dtype_np, seed=0):
    """The NumPy and MLX modules of `name`, the same weights (the same rng draws)."""
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import context_attention as MC
    from spike_lib.mlx_impl.neurons import LIF as MxLIF

    cls, args = CASES[name]
    mcls = getattr(MC, cls.__name__)
    ref = cls(8, 2, np.random.default_rng(seed), neuron=neuron_factory(LIF), **args)
    att = mcls(8, 2, np.random.default_rng(seed), neuron=neuron_factory(MxLIF), **args)
    ref.astype(dtype_np).set_smooth(smooth)
    att.set_dtype(mx.float64 if dtype_np == np.float64 else mx.float32, predicate=lambda _: True)
    for mod in att.modules():
        if isinstance(mod, MxLIF):
            mod.smooth = smooth
    return ref, att


def parity_errors(name, smooth, dtype_np, seed=0):
    """Normwise errors of y, dx and every parameter gradient, NumPy against MLX autodiff."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    ref, att = _mlx_pair(name, smooth, dtype_np, seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(0.6, 1.0, (3, 2, 6, 8)).astype(dtype_np)
    y = ref(x)
    dout = rng.standard_normal(y.shape).astype(dtype_np)
    ref.zero_grad()
    dx = ref.backward(dout)

    mdt = mx.float64 if dtype_np == np.float64 else mx.float32  # mx.array makes float32

    def loss(params, xm):
        att.update(params)
        return (att(xm) * mx.array(dout, dtype=mdt)).sum()

    xm = mx.array(x, dtype=mdt)
    dp, dxm = mx.grad(loss, argnums=(0, 1))(att.trainable_parameters(), xm)
    errs = {"y": normwise_rel_error(np.array(att(xm)), y),
            "x": normwise_rel_error(np.array(dxm), dx)}
    mine = {n: g for n, _, g in ref.named_parameters()}
    theirs = dict(tree_flatten(dp))
    assert set(mine) == set(theirs), "NumPy and MLX parameter names differ"
    for n, g in theirs.items():
        if n == "k_proj.b" and getattr(ref, "score", None) == "softmax":
            # zero by symmetry (softmax ignores q.b added to a whole row): both near 0
            assert max(np.abs(np.array(g)).max(), np.abs(mine[n]).max()) < 1e-5
            continue
        errs[n] = normwise_rel_error(np.array(g), mine[n])
    return errs, ref


@pytest.mark.parametrize("name", sorted(CASES))
def test_mlx_parity_smooth_float64(name):
    errs, _ = parity_errors(name, smooth=True, dtype_np=np.float64)
    # MLX's float64 exp (in the decay matrix and the softmax) is accurate to ~2e-7 relative,
    # so those agree to ~1e-8; sums, products and divisions agree to rounding
    uses_exp = "decay" in name or name in ("hybrid", "hybrid_shift", "softmax_shift")
    assert max(errs.values()) < (1e-7 if uses_exp else 1e-12), errs


@pytest.mark.parametrize("name", sorted(CASES))
def test_mlx_parity_spiking_float32(name):
    errs, ref = parity_errors(name, smooth=False, dtype_np=np.float32)
    assert max(errs.values()) < 1e-5, errs
    if "v_lif" in ref.modules:
        spk = ref.modules["v_lif"].last_spk
        assert 0.05 < float(spk.mean()) < 0.95  # spikes and silences, not a constant


def test_every_mlx_name_has_a_numpy_port():
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl import context_attention as MC

    assert {n: (c.__name__, kw) for n, (c, kw) in MC.NAMES.items()} == {
        n: (c.__name__, kw) for n, (c, kw) in C.NAMES.items()}


# -- the whole model with each attention, selected by name ---------------------------------------
def test_model_builds_each_attention_by_name():
    from spike_lib.numpy_impl.model import SpikeLLM
    from spike_lib.train.check import gradcheck_config

    for name, (cls, _) in C.NAMES.items():
        model = SpikeLLM(gradcheck_config(attention=name))
        assert all(type(b.modules["attn"]) is cls for b in model.blocks), name


@pytest.mark.parametrize("name", NAMES)
def test_whole_model_gradcheck_by_name(name, capsys):
    import json

    from spike_lib.cli import main

    # `python -m spike_lib check --backend numpy --attention NAME` on the tiny check config
    # (2 blocks, width 8, T = 3), a random subset of 6 entries per tensor to stay quick
    assert main(["check", "--backend", "numpy", "--attention", name, "--max-entries", "6",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["attention"] == name and res["ok"] is True and res["max_rel_err"] < 1e-6


@pytest.mark.parametrize("name", ["sdsa_decay", "spike_matrix_running", "hybrid"])
def test_whole_model_gradcheck_of_the_twin(name):
    from spike_lib.train.check import gradcheck_config, model_gradcheck

    res = model_gradcheck(gradcheck_config(attention=name, spiking=False), max_entries=6)
    assert res["max_rel_err"] < 1e-6, res["worst_tensor"]


@pytest.mark.parametrize("name", NAMES)
def test_whole_model_is_exactly_causal(name, rng):
    from spike_lib.numpy_impl.model import SpikeLLM
    from spike_lib.train.check import gradcheck_config

    cfg = gradcheck_config(attention=name)
    model = SpikeLLM(cfg)
    idx = rng.integers(0, cfg.vocab_size, (2, cfg.block_size))
    logits = model(idx)
    for j in range(cfg.block_size):
        idx2 = idx.copy()
        idx2[:, j] = (idx2[:, j] + 1) % cfg.vocab_size
        assert np.array_equal(model(idx2)[:, :j], logits[:, :j]), f"token {j} leaked back"


@pytest.mark.parametrize("name", NAMES)
def test_whole_model_matches_mlx(name):
    mx = pytest.importorskip("mlx.core")
    from mlx.utils import tree_flatten

    from spike_lib.core.config import Config
    from spike_lib.mlx_impl.model import SpikeLLM as MxSpikeLLM
    from spike_lib.mlx_impl.train import loss_and_grads
    from spike_lib.numpy_impl.layers import cross_entropy
    from spike_lib.numpy_impl.model import SpikeLLM

    cfg = Config.tiny(n_layer=2, vocab_size=40, block_size=8, attention=name)
    ref, model = SpikeLLM(cfg), MxSpikeLLM(cfg)  # the same seed: the same weights
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 40, (3, 8)), rng.integers(0, 40, (3, 8))
    loss, dlogits = cross_entropy(ref(x), y)
    ref.zero_grad()
    ref.backward(dlogits)
    mloss, grads = loss_and_grads(model, mx.array(x), mx.array(y))
    grads = dict(tree_flatten(grads))
    assert abs(mloss.item() - loss) < 1e-5 * loss
    errs = {n: normwise_rel_error(np.array(grads[n]), g) for n, _, g in ref.named_parameters()
            if np.abs(g).max() > 1e-6}  # softmax's key bias: 0 by symmetry
    assert max(errs.values()) < 1e-5, max(errs, key=errs.get)


# -- energy: the rates the report uses are the operations the modules did -------------------------
def test_energy_rates_count_the_modules_operations(rng):
    from spike_lib.core.energy import attention_rates

    x = rng.normal(0.8, 1.0, (2, 3, 6, 8)).astype(np.float32)
    t, n_tok, d, h = 2, 6, 8, 2
    pairs_d = t * 3 * n_tok * (n_tok + 1) // 2 * d  # T x P x D
    quad = build("spike_matrix")
    quad(x)
    r = attention_rates("spike_matrix", h, **quad.last_spikes())
    _, k, v, _, a, _ = quad.mix_cache  # a: the causal scores (power 1, no decay)
    assert a.sum() > 0 and np.isclose(a.sum(), r["qk"] * pairs_d)  # one AC per coincidence
    tril = np.tril(np.ones((n_tok, n_tok)))
    assert np.isclose((tril @ v).sum(), r["v_pairs"] * pairs_d)  # (l, l', j) with V[l', j] = 1
    outer = np.count_nonzero(k[..., :, None] * v[..., None, :])  # K_i AND V_j, per token/head
    assert np.isclose(outer, r["kv_outer"] * t * 3 * n_tok * h * (d // h) ** 2)
    mean = build("sdsa_shift")
    mean(x)
    r = attention_rates("sdsa_shift", h, **mean.last_spikes())
    assert np.isclose((mean.cache[1] * mean.cache[2]).sum(), r["kv"] * x.size)  # K AND V
    assert np.isclose(C.token_shift(x).sum(), r["prev"] * x.size)


@pytest.mark.parametrize("name", ["sdsa_shift", "spike_matrix_running", "hybrid",
                                  "softmax_shift"])
def test_model_energy_report_rows(name, rng):
    from spike_lib.core.energy import attention_core_ops
    from spike_lib.numpy_impl.model import SpikeLLM
    from spike_lib.train.check import gradcheck_config

    cfg = gradcheck_config(attention=name)
    model = SpikeLLM(cfg)
    model(rng.integers(0, cfg.vocab_size, (2, 6)))
    rep = model.energy_report(2, 6)
    rows = {r["layer"]: r for r in rep.rows}
    rates = model.firing_rates()
    for i in range(cfg.n_layer):
        b = f"blocks.{i}"
        for op in attention_core_ops(name, 2, 6, 8, 2):
            assert op["kind"] == "exp" or f"{b}.attn.{op['op']}" in rows
        assert rows[f"{b}.fc1"]["firing_rate"] == rates[f"{b}.sn2"]  # the MLP stays spike-driven
        out = rows[f"{b}.attn.out_proj"]["firing_rate"]
        x_out = model.blocks[i].modules["attn"].modules["out_proj"].x
        assert out is None if name == "softmax_shift" else out == float(x_out.mean())
    n_exp = 3 * 2 * 21 * 2 * cfg.n_layer  # T x B x L (L + 1) / 2 x H per block
    assert sum(rep.uncosted.values()) == (n_exp if "softmax" in name or name == "hybrid" else 0)
    twin = SpikeLLM(cfg.replace(spiking=False))
    twin(rng.integers(0, cfg.vocab_size, (2, 6)))
    assert all(r["firing_rate"] is None for r in twin.energy_report(2, 6).rows)


def test_every_name_is_registered_and_has_energy_accounting():
    from spike_lib.core import plugins
    from spike_lib.core.energy import ATTENTION_CORES

    assert set(C.NAMES) == set(plugins.CONTEXT_ATTENTIONS)
    assert set(C.NAMES) <= set(ATTENTION_CORES)
