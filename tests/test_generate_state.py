"""Carried-state generation (issue 15): incremental logits equal the windowed forward for every
attention and both backends; past block_size a running-state model clamps its position embedding
and a key/value-cache model recomputes its window."""

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.core.plugins import CONTEXT_ATTENTIONS
from spike_lib.core.sampling import generate_ids
from spike_lib.numpy_impl import generate as np_gen
from spike_lib.numpy_impl.model import SpikeLLM

ALL = ("sdsa", "softmax", *CONTEXT_ATTENTIONS)
RUNNING = ("sdsa", "sdsa_mean", "sdsa_decay", "sdsa_shift", "sdsa_decay_shift", "spike_matrix",
           "spike_matrix_running", "spike_matrix_shift", "spike_matrix_decay",
           "spike_matrix_decay_shift")
QUADRATIC = tuple(n for n in ALL if n not in RUNNING)
ATOL = 2e-5  # float32 rounding only (a flipped spike would move a logit by ~0.1)


def _mlx():
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl.model import SpikeLLM as MlxLLM

    return MlxLLM


def incremental(model, ids, first=5, chunk=1):
    """Logits of ids from a prefill of `first` tokens, then `chunk` tokens per step."""
    logits, state = model.step(ids[:, :first])
    parts = [np.asarray(logits)]
    for i in range(first, ids.shape[1], chunk):
        logits, state = model.step(ids[:, i:i + chunk], state)
        parts.append(np.asarray(logits))
    return np.concatenate(parts, axis=1), state


def test_attention_lists_cover_every_registered_context_attention():
    assert set(RUNNING) | set(QUADRATIC) == set(ALL) and len(ALL) == 15


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("spiking", [True, False])
def test_numpy_incremental_logits_equal_the_windowed_forward(name, spiking):
    model = SpikeLLM(Config.tiny(attention=name, spiking=spiking)).train(False)
    ids = np.random.default_rng(1).integers(0, model.cfg.vocab_size, (2, model.cfg.block_size))
    want = model(ids)
    for first, chunk in ((5, 1), (1, 3)):
        got, state = incremental(model, ids, first, chunk)
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert state["pos"] == model.cfg.block_size
    assert state["running"] == (name in RUNNING)


@pytest.mark.parametrize("name", ALL)
def test_mlx_incremental_logits_equal_the_windowed_forward_and_numpy(name):
    MlxLLM = _mlx()
    cfg = Config.tiny(attention=name)
    model = MlxLLM(cfg)
    model.train(False)
    ids = np.random.default_rng(2).integers(0, cfg.vocab_size, (2, cfg.block_size))
    got, _ = incremental(model, ids)
    np.testing.assert_allclose(got, np.asarray(model(ids)), rtol=0, atol=ATOL)
    np_got, _ = incremental(SpikeLLM(cfg).train(False), ids)  # same seed, same weights
    np.testing.assert_allclose(got, np_got, rtol=0, atol=1e-4)


def _extended(model_cls, cfg, small, longer):
    """A model with block_size `longer` whose position embeddings past `small` repeat row small-1
    of a block_size-`small` model, every other weight shared."""
    short = model_cls(cfg)
    long_ = model_cls(Config.tiny(attention=cfg.attention, block_size=longer))
    state = {k: np.asarray(v) for k, v in short.state_dict().items()}
    pos = state["pos_emb.W"]
    state["pos_emb.W"] = np.concatenate([pos, np.repeat(pos[-1:], longer - small, axis=0)])
    long_.load_state_dict(state)
    return short, long_


@pytest.mark.parametrize("backend", ["numpy", "mlx"])
@pytest.mark.parametrize("name", ["sdsa", "sdsa_decay_shift", "spike_matrix_shift"])
def test_running_state_past_block_size_clamps_the_position_embedding(backend, name):
    cls = SpikeLLM if backend == "numpy" else _mlx()
    short, long_ = _extended(cls, Config.tiny(attention=name, block_size=8), 8, 20)
    short.train(False)
    long_.train(False)
    ids = np.random.default_rng(3).integers(0, short.cfg.vocab_size, (1, 20))
    got, state = incremental(short, ids, first=3)
    assert state["pos"] == 20 and state["running"]
    np.testing.assert_allclose(got, np.asarray(long_(ids)), rtol=0, atol=ATOL)
    # a 20-token prompt in one call goes in chunks of block_size: the same numbers
    whole, _ = short.step(ids)
    np.testing.assert_allclose(np.asarray(whole), got, rtol=0, atol=ATOL)


@pytest.mark.parametrize("backend", ["numpy", "mlx"])
@pytest.mark.parametrize("name", ["softmax", "hybrid_shift"])
def test_key_value_cache_past_block_size_recomputes_the_window(backend, name):
    cls = SpikeLLM if backend == "numpy" else _mlx()
    model = cls(Config.tiny(attention=name, block_size=8))
    model.train(False)
    ids = np.random.default_rng(4).integers(0, model.cfg.vocab_size, (1, 14))
    logits, state = model.step(ids[:, :6])
    for i in range(6, 14):
        logits, state = model.step(ids[:, i:i + 1], state)
        want = np.asarray(model(ids[:, max(0, i - 7):i + 1]))[:, -1]  # the last 8 tokens
        np.testing.assert_allclose(np.asarray(logits)[:, -1], want, rtol=0, atol=ATOL)
    assert state["pos"] == 8 and state["ids"].shape == (1, 8)


@pytest.mark.parametrize("name", ["sdsa", "softmax", "spike_matrix_shift"])
def test_greedy_generation_is_the_same_with_and_without_a_carried_state(name):
    model = SpikeLLM(Config.tiny(attention=name))
    prompt = [5, 9, 2]
    n = model.cfg.block_size - len(prompt) + 1  # the last token reads a full window

    def run(carry):
        return list(generate_ids(model, prompt, n, np.random.default_rng(0), temperature=0,
                                 carry_state=carry))

    assert run(True) == run(False) and len(run(True)) == n


def test_carried_sampling_calls_step_once_per_token():
    model = SpikeLLM(Config.tiny())
    calls = []
    real = model.step
    model.step = lambda idx, state=None: calls.append(np.shape(idx)) or real(idx, state)
    out = list(generate_ids(model, [1, 2, 3, 4], 6, np.random.default_rng(0)))
    assert len(out) == 6 and calls == [(1, 4)] + [(1, 1)] * 5


def test_an_attention_without_a_step_is_refused_and_sampling_falls_back_to_the_window():
    model = SpikeLLM(Config.tiny())

    class Opaque:  # a plug-in attention that defines no step
        pass

    with pytest.raises(ValueError, match="has no carried-state step"):
        np_gen.attention_step(Opaque(), np.zeros((1, 1, 1, 4), np.float32), {}, 0)
    model.blocks[0].modules["attn"] = Opaque()
    assert not model.carries_state()
    assert np_gen.is_running(Opaque()) is False


# -- multi-level spikes (Config.spike_levels = D, values 0, 1/D, ..., 1): the general carried path
# (generate_fast switched off) and the fused one-token path, each against the window -------------
def _fires_levels(model, ids, levels):
    """The windowed forward, after checking some neuron fired a spike of value 1/D and none
    more than 1."""
    want = np.asarray(model(ids))
    spks = [np.asarray(m.last_spk) for _, m in model.named_modules()
            if getattr(m, "last_spk", None) is not None]
    assert any(np.isclose(s, 1.0 / levels).any() for s in spks)
    assert max(float(s.max()) for s in spks) == 1.0
    return want


@pytest.mark.parametrize("name", ALL)
def test_numpy_multi_level_spike_carried_logits_equal_the_windowed_forward(name, monkeypatch):
    monkeypatch.setattr(np_gen, "FAST_PATH", False)
    model = SpikeLLM(Config.tiny(attention=name, spike_levels=2)).train(False)
    ids = np.random.default_rng(1).integers(0, model.cfg.vocab_size, (2, model.cfg.block_size))
    want = _fires_levels(model, ids, 2)
    for first, chunk in ((5, 1), (1, 3), (1, 1)):
        got, state = incremental(model, ids, first, chunk)
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert "plan" not in state  # no one-token plan was made


@pytest.mark.parametrize("levels", [2, 4])
@pytest.mark.parametrize("name", ["sdsa", "sdsa_mean", "spike_matrix_shift", "spike_matrix_decay",
                                  "spike_matrix_decay_shift"])
def test_numpy_multi_level_fused_one_token_steps_equal_the_windowed_forward(name, levels):
    model = SpikeLLM(Config.tiny(attention=name, spike_levels=levels)).train(False)
    ids = np.random.default_rng(1).integers(0, model.cfg.vocab_size, (2, model.cfg.block_size))
    want = _fires_levels(model, ids, levels)
    got, state = incremental(model, ids, 5, 1)
    assert "plan" in state and state["plan"][0]["qkv"] is not None  # the fused attention ran
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ALL)
def test_mlx_multi_level_spike_carried_logits_equal_the_windowed_forward_and_numpy(name, monkeypatch):
    MlxLLM = _mlx()
    from spike_lib.mlx_impl import generate as mlx_gen

    monkeypatch.setattr(mlx_gen, "FAST_PATH", False)
    monkeypatch.setattr(np_gen, "FAST_PATH", False)
    cfg = Config.tiny(attention=name, spike_levels=2)
    model = MlxLLM(cfg)
    model.train(False)
    ids = np.random.default_rng(2).integers(0, cfg.vocab_size, (2, cfg.block_size))
    want = _fires_levels(model, ids, 2)
    got, state = incremental(model, ids)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert "plan" not in state  # no one-token plan was made
    if name.startswith("hybrid"):  # real-valued softmax scores: the backends' float32 exp
        return  # differ by ulps, which flipped a spike 1/2 at this seed on one host (AMD EPYC)
    np_got, _ = incremental(SpikeLLM(cfg).train(False), ids)  # same seed, same weights
    np.testing.assert_allclose(got, np_got, rtol=0, atol=1e-4)


@pytest.mark.parametrize("levels", [2, 4])
@pytest.mark.parametrize("name", ["sdsa", "spike_matrix_shift", "spike_matrix_decay_shift"])
def test_mlx_multi_level_fused_one_token_steps_equal_the_windowed_forward_and_numpy(name, levels):
    MlxLLM = _mlx()
    cfg = Config.tiny(attention=name, spike_levels=levels)
    model = MlxLLM(cfg)
    model.train(False)
    ids = np.random.default_rng(2).integers(0, cfg.vocab_size, (2, cfg.block_size))
    want = _fires_levels(model, ids, levels)
    got, state = incremental(model, ids, 5, 1)
    assert "plan" in state and state["plan"][0]["qkv"] is not None  # the fused attention ran
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    np_got, _ = incremental(SpikeLLM(cfg).train(False), ids, 5, 1)
    np.testing.assert_allclose(got, np_got, rtol=0, atol=1e-4)
