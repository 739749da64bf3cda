"""Checks for chapter 6's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/06_spikellm_training.ipynb
"""

import math

import numpy as np

from spike_lib.core.config import Config
from spike_lib.numpy_impl.attention import reverse_cumsum
from spike_lib.numpy_impl.layers import cross_entropy
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.numpy_impl.optim import AdamW
from spike_lib.numpy_impl.train import train_step


def _correct(name):
    print(f"{name}: correct")


def check_ce_grad(fn):
    """Exercise 1: fn(logits, targets) = dL/dlogits of the mean cross-entropy, any shape."""
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, 3, 5))
    targets = rng.integers(0, 5, (2, 3))
    got = np.asarray(fn(logits, targets), dtype=float)
    want = cross_entropy(logits, targets)[1]
    assert got.shape == want.shape, f"shape {got.shape}: the gradient has the logits' shape"
    if np.allclose(got, want * 6):
        raise AssertionError("6 times too large: the loss is a mean over the 6 positions")
    assert np.allclose(got, want), (
        "dL/dz = (softmax(z) - onehot(y)) / N with the softmax over the last axis")
    _correct("cross-entropy gradient")


def check_cumsum_backward(fn):
    """Exercise 2: fn(ds) = dL/dp when s = cumsum(p, axis=-2) and ds = dL/ds."""
    ds = np.random.default_rng(4).standard_normal((2, 5, 3))
    got = np.asarray(fn(ds), dtype=float)
    want = reverse_cumsum(ds, -2)
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    if np.allclose(got, np.cumsum(ds, axis=-2)):
        raise AssertionError("p[l] feeds s[l], s[l+1], ...: sum ds over positions >= l, "
                             "a cumulative sum run backwards")
    assert np.allclose(got, want), "dL/dp[l] = sum over l' >= l of dL/ds[l'] (along axis -2)"
    _correct("cumulative-sum backward")


def check_bits_per_char(fn):
    """Exercise 3: fn(loss, n_tokens, n_chars) = bits per character from a mean loss in nats."""
    cases = [(math.log(2), 10, 10, 1.0), (2.0, 100, 300, 200 / (300 * math.log(2))),
             (1.5, 7, 7, 1.5 / math.log(2))]
    for loss, n_tok, n_chars, want in cases:
        got = float(fn(loss, n_tok, n_chars))
        assert math.isclose(got, want, rel_tol=1e-9), (
            f"loss {loss} nats/token over {n_tok} tokens and {n_chars} characters: {got}, "
            f"expected {want:.6f}. Total nats = loss x tokens; bits = nats / ln 2; divide by "
            "the characters")
    _correct("bits per character")


def check_top_p(fn):
    """Exercise 4: fn(p, top_p) keeps the smallest most-likely set with mass >= top_p, renormed."""
    cases = [([0.5, 0.3, 0.2], 0.7, [0.625, 0.375, 0.0]), ([0.5, 0.3, 0.2], 0.4, [1.0, 0, 0]),
             ([0.1, 0.6, 0.3], 0.8, [0, 2 / 3, 1 / 3]), ([0.25] * 4, 1.0, [0.25] * 4)]
    for p, top_p, want in cases:
        got = np.asarray(fn(np.array(p), top_p), dtype=float)
        assert np.allclose(got, want), (
            f"p={p}, top_p={top_p}: got {np.round(got, 4)}, expected {np.round(want, 4)}. Sort "
            "by probability, keep tokens until their sum reaches top_p (the one that crosses "
            "it included), zero the rest and renormalise; keep the original order")
    _correct("top-p")


def check_train_step(fn):
    """Exercise 5: fn(model, opt, x, y, clip) does one training step and returns the loss."""
    cfg = Config.tiny(vocab_size=20, block_size=8, n_embd=16, n_head=2, d_ff=32)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (4, 8)), rng.integers(0, 20, (4, 8))
    mine, ref = SpikeLLM(cfg), SpikeLLM(cfg)
    opt_mine, opt_ref = AdamW(mine, lr=1e-2), AdamW(ref, lr=1e-2)
    for _ in range(2):  # twice: a step that forgets zero_grad shows on the second one
        loss = fn(mine, opt_mine, x, y, 0.5)
        want = train_step(ref, opt_ref, x, y, clip=0.5)["loss"]
        assert loss is not None and math.isclose(float(loss), want, rel_tol=1e-6), (
            f"the returned loss {loss} should be {want}: compute it before the update")
    for (name, p), q in zip(mine.state_dict().items(), ref.state_dict().values()):
        assert np.allclose(p, q, atol=1e-6), (
            f"{name} differs after two steps: zero the gradients before backward, clip the "
            "global norm to `clip`, then opt.step()")
    _correct("training step")
