"""MLX SpikeLLM: same seed same weights and names, logits and gradient parity, checkpoints both ways."""

import warnings

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from mlx.utils import tree_flatten

from spike_lib.core import blas
from spike_lib.train.check import normwise_rel_error
from spike_lib.train.checkpoint import load_checkpoint, save_checkpoint
from spike_lib.core.config import Config
from spike_lib.mlx_impl import model as mlx_model
from spike_lib.mlx_impl.blocks import ClampLIF
from spike_lib.mlx_impl.model import SpikeLLM
from spike_lib.mlx_impl.train import loss_and_grads
from spike_lib.numpy_impl.blocks import ClampLIF as NpClampLIF
from spike_lib.numpy_impl.layers import cross_entropy
from spike_lib.numpy_impl.model import SpikeLLM as NpSpikeLLM

warnings.filterwarnings("ignore", "MLX is using its slow", RuntimeWarning)

VARIANTS = {"spiking": {}, "no_detach": {"detach_reset": False},
            "twin": {"spiking": False}, "softmax": {"attention": "softmax"},
            "twin_softmax": {"spiking": False, "attention": "softmax"},
            "clamp_zero_tied": {"mem_clamp": 2.0, "reset": "zero", "tie_weights": True},
            # multi-level spikes j/D (Config.spike_levels): the plain LIFs, and the clamped
            # ones with the zero reset's min(D s, 1) in the gradient
            "levels2": {"spike_levels": 2},
            "levels3_clamp_zero": {"spike_levels": 3, "mem_clamp": 2.5, "reset": "zero",
                                   "detach_reset": False},
            # the matrix attention's floor max(1 / D^2, sum A) (the book model's attention)
            "levels4_matrix": {"spike_levels": 4, "attention": "spike_matrix_shift"}}


def _cfg(name):
    return Config.tiny(n_layer=2, vocab_size=40, block_size=8, **VARIANTS[name])


def _batch(cfg, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, cfg.vocab_size, (3, cfg.block_size)),
            rng.integers(0, cfg.vocab_size, (3, cfg.block_size)))


def _grad_errors(ref, model, x, y):
    """Normwise relative error of MLX autodiff vs the NumPy backward, per parameter."""
    loss, dlogits = cross_entropy(ref(x), y)
    ref.zero_grad()
    ref.backward(dlogits)
    mloss, grads = loss_and_grads(model, mx.array(x), mx.array(y))
    grads = dict(tree_flatten(grads))
    assert abs(mloss.item() - loss) < 1e-5 * abs(loss)
    return {n: normwise_rel_error(np.array(grads[n]), g) for n, _, g in ref.named_parameters()}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_same_seed_same_weights_names_and_logits(name):
    cfg = _cfg(name)
    ref, model = NpSpikeLLM(cfg), SpikeLLM(cfg)
    mine, theirs = model.state_dict(), ref.state_dict()
    assert sorted(mine) == sorted(theirs)  # tree_flatten's names are the NumPy names
    assert "blocks.1.attn.q_proj.W" in mine and all(np.array_equal(mine[k], theirs[k])
                                                    for k in theirs)
    x, _ = _batch(cfg)
    assert normwise_rel_error(np.array(model(x)), ref(x)) <= 1e-4  # float32
    assert model.num_params() == ref.num_params()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_autodiff_gradients_match_hand_written_backward(name):
    cfg = _cfg(name)
    ref, model = NpSpikeLLM(cfg), SpikeLLM(cfg)
    errs = _grad_errors(ref, model, *_batch(cfg))
    assert max(errs.values()) <= 1e-4, max(errs, key=errs.get)


def test_smooth_mode_gradients_in_float64():
    cfg = _cfg("spiking")
    ref = NpSpikeLLM(cfg).set_smooth().astype(np.float64)
    model = SpikeLLM(cfg).set_smooth().astype(mx.float64)
    assert model.tok_emb.W.dtype == mx.float64
    assert max(_grad_errors(ref, model, *_batch(cfg)).values()) <= 1e-7  # float32: ~3e-7


def _forward_both(name):
    """(NumPy model, MLX model, batch) after one forward pass of the batch through both."""
    cfg = _cfg(name)
    ref, model = NpSpikeLLM(cfg), SpikeLLM(cfg)
    x, _ = _batch(cfg)
    ref(x)
    model(x)
    return ref, model, x


def test_firing_rates_match_numpy():
    ref, model, _ = _forward_both("spiking")
    want, got = ref.firing_rates(), model.firing_rates()
    assert got["blocks.0.sn1"] == pytest.approx(want["blocks.0.sn1"], abs=1e-6)
    assert got["blocks.1.attn.kv"] == pytest.approx(want["blocks.1.attn.kv"], abs=1e-6)
    assert 0.0 < got["blocks.0.sn_hidden"] < 1.0


def test_multi_level_spike_rates_match_numpy_and_stay_mean_values_in_unit_range():
    ref, model, x = _forward_both("levels2")
    want, got = ref.firing_rates(), model.firing_rates()
    assert got["blocks.0.sn1"] == pytest.approx(want["blocks.0.sn1"], abs=1e-6)
    assert got["blocks.1.attn.kv"] == pytest.approx(want["blocks.1.attn.kv"], abs=1e-6)
    spk = np.array(model.blocks[0].sn1.last_spk)
    assert float(spk.max()) == 1.0 and (spk == 0.5).any()  # values 0, 1/2, 1
    assert all(0.0 <= r <= 1.0 for r in got.values())  # a rate is a mean spike value
    assert ref.energy_report(*x.shape).snn_pj > 0


def test_clamp_lif_clips_like_numpy():
    x = np.array([[5.0], [-9.0], [0.4]], np.float32)  # (T, N)
    lif = ClampLIF(2.0, beta=0.5, threshold=1.0)
    spk = np.array(lif(mx.array(x)))
    assert spk[:, 0].tolist() == [1.0, 0.0, 0.0]  # u = 2 (clipped) fires, then -2 (clipped) ...
    assert np.array_equal(spk, NpClampLIF(2.0, beta=0.5, threshold=1.0)(x))
    # at u = c exactly (an integer sum of spikes, an integer clamp) the gradient passes, as in NumPy
    g = mx.grad(lambda v: lif(v).sum())(mx.array([[2.0], [0.0]]))
    ref = NpClampLIF(2.0, beta=0.5, threshold=1.0)
    ref(np.array([[2.0], [0.0]]))
    assert np.allclose(np.array(g), ref.backward(np.ones((2, 1)))) and float(g[0, 0]) > 0.0
    with pytest.raises(ValueError, match="must exceed threshold"):
        ClampLIF(0.5, threshold=1.0)


@pytest.mark.parametrize("name", ["spiking", "twin_softmax", "levels2"])
def test_checkpoints_load_both_ways(tmp_path, name):
    cfg = _cfg(name)
    ref = NpSpikeLLM(cfg, np.random.default_rng(42))
    x, _ = _batch(cfg)
    save_checkpoint(tmp_path / "np", ref)
    model, _, _ = mlx_model.load_checkpoint(tmp_path / "np")  # NumPy -> MLX
    assert normwise_rel_error(np.array(model(x)), ref(x)) <= 1e-4
    mlx_model.save_checkpoint(tmp_path / "mx", model)
    back, _, meta = load_checkpoint(tmp_path / "mx")  # MLX -> NumPy
    assert meta["backend"] == "mlx"
    assert all(np.array_equal(a, ref.state_dict()[k]) for k, a in back.state_dict().items())


def test_loading_another_shape_names_tensor_and_shapes():
    small, big = SpikeLLM(_cfg("spiking")), NpSpikeLLM(_cfg("spiking").replace(n_embd=48))
    with pytest.raises(ValueError, match=r"'tok_emb.W' has shape \(40, 48\).*but \(40, 32\)"):
        small.load_state_dict(big.state_dict())
    state = small.state_dict()
    del state["ln_f.gamma"]
    with pytest.raises(ValueError, match=r"missing \['ln_f.gamma'\]"):
        small.load_state_dict(state)


def test_causal_and_bad_ids():
    cfg = _cfg("spiking")
    model = SpikeLLM(cfg)
    x, _ = _batch(cfg)
    x2 = x.copy()
    x2[:, 5:] = (x2[:, 5:] + 1) % cfg.vocab_size
    a, b = np.array(model(x)), np.array(model(x2))
    assert np.abs(a[:, :5] - b[:, :5]).max() < 1e-6 and np.abs(a[:, 5:] - b[:, 5:]).max() > 1e-3
    with pytest.raises(ValueError, match="vocab_size"):
        model(np.array([[0, 40]]))
    with pytest.raises(ValueError, match="block_size=8"):
        model(mx.zeros((1, 9), mx.int32))
    with pytest.raises(TypeError, match="Config"):
        SpikeLLM({"n_layer": 1})


def test_warns_once_without_the_fast_blas(monkeypatch):
    monkeypatch.setattr(blas, "needs_fix", lambda: True)
    monkeypatch.setattr(mlx_model, "_warned", [])
    with pytest.warns(RuntimeWarning, match="slow reference BLAS"):
        SpikeLLM(_cfg("twin"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SpikeLLM(_cfg("twin"))  # the second model stays quiet


def test_generation_and_embedding_match_numpy():
    from spike_lib.mlx_impl.generate import embed, generate_ids
    from spike_lib.numpy_impl.generate import embed as np_embed

    cfg = _cfg("twin")
    ref, model = NpSpikeLLM(cfg), SpikeLLM(cfg)
    greedy = [list(generate_ids(m, [1, 2, 3], 12, np.random.default_rng(0), temperature=0))
              for m in (ref, model)]
    assert greedy[0] == greedy[1] and len(greedy[1]) == 12
    assert normwise_rel_error(embed(model, [4, 5, 6]), np_embed(ref, [4, 5, 6])) < 1e-5
    with pytest.raises(ValueError, match="empty"):
        embed(model, [])
