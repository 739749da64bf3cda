"""Probes of context use: sliding-window evaluation, perturbation KL and gate statistics."""

import math

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.core.scoring import evaluate
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.train.baselines import NGramLM, NGramModel, evaluate_ngram
from spike_lib.train.probes import (
    context_gain,
    eval_windows,
    evaluate_context,
    gate_statistics,
    perturbation_kl,
    replacements,
)


@pytest.fixture
def trigram(rng):
    lm = NGramLM(3, 5, "kn").fit(rng.integers(0, 5, 400))
    return lm, NGramModel(lm, block_size=8)


def test_context_of_a_full_window_is_evaluate(trigram, rng):
    _, model = trigram
    ids = rng.integers(0, 5, 45)
    for n in (None, 8, 20):
        mine = evaluate_context(model, ids, n, n_chars=60, batch_size=3)
        assert mine == evaluate(model, ids, n_chars=60, batch_size=3)



@pytest.mark.parametrize("n", [2, 5, None])
def test_per_window_nats_are_each_window_scored_alone(trigram, n, rng):
    """Window w's nats equal evaluate_context on its own tokens ids[s .. e] (no target reads
    outside its window); they add up to the total, in window_nats's order."""
    _, model = trigram
    ids = rng.integers(0, 5, 45)  # windows start at 0, 8, ..., 40 (the last predicts 4 tokens)
    got = evaluate_context(model, ids, n, batch_size=2, per_window=True)
    alone = [evaluate_context(model, ids[s: s + 9], n)["total_nats"] for s in range(0, 44, 8)]
    assert len(got["window_nats"]) == 6
    np.testing.assert_allclose(got["window_nats"], alone, rtol=1e-12)
    assert math.isclose(got["window_nats"].sum(), got["total_nats"], rel_tol=1e-12)

@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_sliding_window_agrees_with_the_ngram_contexts(trigram, n, rng):
    """Two implementations: windows run through the model, and the n-gram's own contexts."""
    lm, model = trigram
    ids = rng.integers(0, 5, 45)  # 6 windows of 8 tokens, the last one shorter
    mine = evaluate_context(model, ids, n, n_chars=60, batch_size=2)
    ref = evaluate_ngram(lm, ids, n_chars=60, block_size=8, context_tokens=n)
    assert mine["n_tokens"] == ref["n_tokens"] == 44
    assert math.isclose(mine["total_nats"], ref["total_nats"], rel_tol=1e-9)


def test_gain_is_zero_without_context_use():
    train = np.tile([0, 1, 2, 0, 3, 4], 70)  # after "2 0" comes 3, after "4 0" comes 1
    ids = train[:70]
    bigram = NGramModel(NGramLM(2, 5, "kn").fit(train), block_size=16)
    assert abs(context_gain(bigram, ids, 100, context_tokens=1)["gain"]) < 1e-12
    tri = NGramModel(NGramLM(3, 5, "kn").fit(train), block_size=16)
    assert abs(context_gain(tri, ids, 100, context_tokens=2)["gain"]) < 1e-12  # reads only 2
    assert context_gain(tri, ids, 100, context_tokens=1)["gain"] > 0.1  # 1 token: a bigram


def test_perturbation_kl_by_hand(trigram, rng):
    lm, model = trigram
    rows = eval_windows(rng.integers(0, 5, 40), 8, 4)  # (4, 8)
    bigram = NGramModel(NGramLM(2, 5, "kn").fit(rng.integers(0, 5, 400)), block_size=8)
    assert perturbation_kl(bigram, rows)["kl"] == [0.0] * 7  # reads only the current token
    res = perturbation_kl(model, rows, positions=[0, 3], rng=np.random.default_rng(5))
    repl = replacements(rows, np.random.default_rng(5))
    for j, kl in zip(res["position"], res["kl"]):  # KL(P(. | a b) || P(. | a' b)), b = token j+1
        want = []
        for r, row in enumerate(rows):
            p = lm.distribution([row[j], row[j + 1]])
            q = lm.distribution([repl[r, j], row[j + 1]])
            want.append(float((p * np.log(p / q)).sum()))
        assert math.isclose(kl, np.mean(want), rel_tol=1e-9)
        assert kl > 0


def test_replacements_differ_and_come_from_the_windows(rng):
    rows = rng.integers(0, 3, (5, 6))
    repl = replacements(rows, rng)
    assert np.all(repl != rows) and set(repl.ravel()) <= set(rows.ravel())
    uni = replacements(rows, rng, vocab_size=50)
    assert np.all(uni != rows) and uni.max() < 50 and np.unique(uni).size > 3
    with pytest.raises(ValueError, match="one distinct token"):
        replacements(np.zeros((2, 3), int), rng)


class FakeSDSA:
    """An SDSA-like module (its class name ends in SDSA) whose smooth gate is set by hand."""

    def __init__(self, g):
        from spike_lib.numpy_impl.blocks import SmoothGate

        self.modules = {"attn_lif": SmoothGate(0.5)}
        self.modules["attn_lif"].x = g + 0.5  # the gate is smooth(x - threshold) = smooth(g)


class HandModel:
    def __init__(self, g):
        self.mod = FakeSDSA(g)

    def named_modules(self):
        return [("blocks.0.attn", self.mod)]

    def train(self, mode=True):
        return self

    def __call__(self, idx):
        return None


def test_gate_statistics_by_hand():
    on = np.array([[0, 0], [1, 0], [1, 0], [1, 1]], float)[None, None]  # (1, 1, L=4, D=2)
    # the smooth gate of x = on +- 0.5 around the threshold: above 0.5 exactly where on is 1
    stats = gate_statistics(HandModel(on * 20 - 10), np.zeros((1, 4), int))["blocks.0.attn"]
    assert stats["on"] == [0.0, 0.5, 0.5, 1.0]
    assert stats["changed"] == [0.5, 0.0, 0.5]
    assert stats["dead"] == 0.0
    assert stats["saturated_from"] is None  # position 3 still changes


def test_gate_of_causal_sdsa_with_one_timestep_only_turns_on(rng):
    """With T = 1 the gate is H(running sum - threshold): a running sum of K AND V >= 0 only
    grows, so a gate entry that is on stays on (a monotone OR) and changed = the growth of on."""
    cfg = Config.tiny(vocab_size=20, block_size=16, n_layer=2, n_embd=16, n_head=2, d_ff=32,
                      num_steps=1)
    model = SpikeLLM(cfg)
    stats = gate_statistics(model, rng.integers(0, 20, (3, 16)))
    assert set(stats) == {"blocks.0.attn", "blocks.1.attn"}
    for s in stats.values():
        assert np.all(np.diff(s["on"]) >= 0)
        assert np.allclose(s["changed"], np.diff(s["on"]))
    g = model.modules["blocks.0"].modules["attn"].modules["attn_lif"].last_spk  # (1, 3, H, L, hd)
    dead = ~(g > 0.5).any(axis=(0, 1, 3))
    assert stats["blocks.0.attn"]["dead"] == pytest.approx(dead.mean())
    for s in stats.values():  # K AND V >= 1 crosses the threshold 0.5: dead gate = dead K AND V
        assert s["dead"] == s["dead_inputs"]["kv"]


def test_one_token_of_context_by_hand(rng):
    cfg = Config.tiny(vocab_size=20, block_size=16, n_layer=1, n_embd=16, n_head=2, d_ff=32)
    model = SpikeLLM(cfg)
    ids = rng.integers(0, 20, 40)
    nats = 0.0
    for i in range(1, len(ids)):  # each target read from the one token before it, at position 0
        z = model(ids[None, i - 1: i])[0, -1].astype(np.float64)
        nats += np.log(np.exp(z - z.max()).sum()) + z.max() - z[ids[i]]
    got = evaluate_context(model, ids, 1, n_chars=40, batch_size=3)
    assert got["n_tokens"] == 39
    assert math.isclose(got["total_nats"], nats, rel_tol=1e-5)
    res = context_gain(model, ids, 40, context_tokens=1)
    assert res["bpc_full"] == evaluate(model, ids, n_chars=40)["bpc"]
    assert math.isclose(res["bpc_short"], got["bpc"], rel_tol=1e-12)


def test_window_nats_and_paired_gap(rng):
    from spike_lib.tokenizers import get_tokenizer
    from spike_lib.train.probes import paired_gap, window_nats

    tok = get_tokenizer("char")
    train = np.tile([0, 1, 2, 0, 3, 4], 70)
    ids = np.concatenate([train[:40], rng.integers(0, 5, 21)])  # 61 ids: 4 windows, last short
    bi = NGramModel(NGramLM(2, 5, "kn").fit(train), block_size=16)
    tri = NGramModel(NGramLM(3, 5, "kn").fit(train), block_size=16)
    nats, starts, ends = window_nats(tri, ids, batch_size=3)
    assert starts.tolist() == [0, 16, 32, 48] and ends.tolist() == [16, 32, 48, 60]
    assert math.isclose(nats.sum(), evaluate(tri, ids)["total_nats"], rel_tol=1e-9)
    same = paired_gap(tri, tri, tok, ids)
    assert same["gap"] == 0.0 and same["se"] == 0.0 and same["windows"] == 4
    res = paired_gap(bi, tri, tok, ids, n_boot=500)
    want = evaluate(bi, ids, n_chars=60)["bpc"] - evaluate(tri, ids, n_chars=60)["bpc"]
    assert math.isclose(res["gap"], want, rel_tol=1e-9)  # char tokens: chars = tokens
    assert 0 < res["se"] < abs(res["gap"])
