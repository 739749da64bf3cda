import types

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.numpy_impl.generate import (
    embed,
    generate_ids,
    generate_text,
    sample_logits,
    stream_text,
)
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers import CharTokenizer

TOK = CharTokenizer.train("hello world", min_count=1)  # ASCII only: 256 bytes + eot


class Scripted:
    """A stand-in model whose greedy continuation is a fixed list of token ids."""

    def __init__(self, script, vocab_size=TOK.vocab_size, block_size=8):
        self.script, self.calls, self.contexts = list(script), 0, []
        self.cfg = types.SimpleNamespace(block_size=block_size, vocab_size=vocab_size)

    def check_idx(self, idx):
        return idx

    def train(self, mode=True):
        return self

    def __call__(self, ctx):
        self.contexts.append(ctx[0].tolist())
        logits = np.zeros((1, ctx.shape[1], self.cfg.vocab_size))
        logits[0, -1, self.script[self.calls]] = 10.0
        self.calls += 1
        return logits


def scripted(text, eot=True):
    return Scripted(list(text.encode()) + ([TOK.eot_id] if eot else []))


def test_sample_logits_greedy_top_k_top_p_and_temperature(rng):
    logits = np.log([0.5, 0.3, 0.2])
    assert sample_logits(logits, rng, temperature=0) == 0
    assert {sample_logits(logits, rng, top_k=1) for _ in range(20)} == {0}
    assert {sample_logits(logits, rng, top_p=0.4) for _ in range(20)} == {0}
    draws = np.array([sample_logits(logits, rng, top_p=0.7) for _ in range(4000)])
    assert set(draws) == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3: the nucleus is {0, 1}
    assert np.mean(draws == 0) == pytest.approx(0.5 / 0.8, abs=0.03)
    draws = np.array([sample_logits(logits, rng, top_k=2) for _ in range(4000)])
    assert set(draws) == {0, 1} and np.mean(draws == 0) == pytest.approx(0.625, abs=0.03)
    draws = np.array([sample_logits(logits, rng, temperature=2.0) for _ in range(4000)])
    want = np.sqrt([0.5, 0.3, 0.2]) / np.sqrt([0.5, 0.3, 0.2]).sum()  # p^(1/T), renormalised
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, want, atol=0.03)


def test_sample_logits_draws_what_rng_choice_draws():
    """The draw is Generator.choice(V, p=p)'s (cdf, one uniform, searchsorted right), so a seed
    gives the same text as before the shortcut, including zero-probability tokens never drawn."""
    logits = np.random.default_rng(3).normal(0, 3, (50, 2439))
    logits[:, ::7] = -np.inf  # excluded tokens (as top-k leaves them)
    ours, ref = np.random.default_rng(11), np.random.default_rng(11)
    for z in logits:
        p = np.exp(z - z.max())
        assert sample_logits(z, ours) == int(ref.choice(z.size, p=p / p.sum()))
    assert ours.random() == ref.random()  # one uniform per draw on both sides


@pytest.mark.parametrize("kw, field", [({"temperature": -1.0}, "temperature"),
                                       ({"top_k": 0}, "top_k"), ({"top_p": 0.0}, "top_p")])
def test_sample_logits_rejects_bad_settings(kw, field, rng):
    with pytest.raises(ValueError, match=field):
        sample_logits(np.zeros(3), rng, **kw)


def test_stream_yields_pieces_as_they_come_and_hides_the_end_of_text(rng):
    model = scripted("hello world")
    gen = stream_text(model, TOK, "x", 50, rng, temperature=0)
    assert next(gen) == "h" and model.calls == 1  # streamed: one token, one piece
    assert "h" + "".join(gen) == "hello world"
    assert model.calls == 12  # 11 characters + the end-of-text token


@pytest.mark.parametrize("stop, want", [("wor", "hello "), ("lo w", "hel"), (["zz", "o"], "hell"),
                                        ("low", "hello world")])
def test_stop_strings_cut_before_the_stop(stop, want, rng):
    assert generate_text(scripted("hello world"), TOK, "x", 50, rng, temperature=0,
                         stop=stop) == want


def test_a_character_split_over_byte_tokens_is_never_shown_half(rng):
    pieces = list(stream_text(scripted("aé€b"), TOK, "x", 50, rng, temperature=0))
    assert "".join(pieces) == "aé€b"
    assert not any("\ufffd" in p for p in pieces)
    assert pieces == ["a", "é", "€", "b"]


def test_max_new_tokens_and_context_cropping(rng):
    model = scripted("abcdefghijkl", eot=False)
    assert generate_text(model, TOK, "0123456789", 5, rng, temperature=0) == "abcde"
    assert model.contexts[0] == list(b"23456789")  # the last block_size = 8 tokens
    assert len(model.contexts[-1]) == 8


def test_empty_prompt_starts_from_end_of_text(rng):
    model = scripted("hi")
    assert generate_text(model, TOK, "", 10, rng, temperature=0) == "hi"
    assert model.contexts[0] == [TOK.eot_id]
    with pytest.raises(ValueError, match="the prompt is empty: pass bos_id"):
        next(generate_ids(scripted("hi"), [], 5, rng))


def test_a_real_model_streams_unseen_characters_through_byte_fallback(rng):
    cfg = Config.tiny(vocab_size=TOK.vocab_size, block_size=8, n_embd=8, n_head=2, d_ff=16)
    model = SpikeLLM(cfg)
    prompt = "hé€"  # é and € were never in the training text: they become UTF-8 bytes
    assert TOK.encode(prompt) == [104, 0xC3, 0xA9, 0xE2, 0x82, 0xAC]
    ids = list(generate_ids(model, TOK.encode(prompt), 6, rng, top_k=5))
    assert len(ids) <= 6 and all(0 <= i < TOK.vocab_size for i in ids)
    text = generate_text(model, TOK, prompt, 6, np.random.default_rng(1), top_p=0.9)
    assert isinstance(text, str)
    small = SpikeLLM(Config.tiny(vocab_size=200, block_size=8, n_embd=8, n_head=2, d_ff=16))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 199\]"):
        generate_text(small, TOK, prompt, 3, rng)


def test_embeddings(rng):
    cfg = Config.tiny(vocab_size=TOK.vocab_size, block_size=8, n_embd=8, n_head=2, d_ff=16)
    model = SpikeLLM(cfg)
    a = embed(model, TOK.encode("hello"))
    assert a.shape == (8,)
    np.testing.assert_array_equal(a, embed(model, TOK.encode("hello")))
    assert np.abs(a - embed(model, TOK.encode("world"))).max() > 1e-3
    h = model.hidden(np.array([TOK.encode("hello")]))[0]
    np.testing.assert_allclose(a, h.mean(axis=0))
    with pytest.raises(ValueError, match="cannot embed an empty text"):
        embed(model, [])
