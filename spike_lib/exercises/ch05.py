"""Checks for chapter 5's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/05_spikellm_forward.ipynb
"""

import numpy as np

from spike_lib.core.config import Config
from spike_lib.numpy_impl.blocks import Block
from spike_lib.numpy_impl.model import SpikeLLM, forward_macs


def _correct(name):
    print(f"{name}: correct")


def check_direct_encoding(fn):
    """Exercise 1: fn(x0, num_steps) repeats x0 (B, L, D) over T: (T, B, L, D)."""
    x0 = np.arange(24, dtype=float).reshape(2, 3, 4)
    out = np.asarray(fn(x0, 5))
    assert out.shape == (5, 2, 3, 4), (
        f"shape {out.shape}: time comes first, (T, B, L, D) = (5, 2, 3, 4); "
        "try np.broadcast_to(x0, (num_steps,) + x0.shape)")
    assert all(np.array_equal(out[t], x0) for t in range(5)), (
        "every timestep must see the same x0 (direct encoding repeats the input, it does not "
        "split it)")
    _correct("direct encoding")


def check_causal_kv_sum(fn):
    """Exercise 2: fn(k, v) = sum over positions l' <= l of k * v, along the token axis -2."""
    rng = np.random.default_rng(5)
    k = (rng.random((2, 3, 6, 4)) < 0.5).astype(float)
    v = (rng.random((2, 3, 6, 4)) < 0.5).astype(float)
    out = np.asarray(fn(k, v))
    want = np.cumsum(k * v, axis=-2)
    assert out.shape == want.shape, (
        f"shape {out.shape}: a causal sum keeps one value per position, {want.shape}; "
        "did you sum all tokens (keepdims) instead of a running sum?")
    if np.allclose(out, np.cumsum(k * v, axis=-1)):
        raise AssertionError("you summed over channels (axis -1); the sum runs over tokens, -2")
    assert np.allclose(out, want), (
        "position l must add K*V of positions 0..l only (a cumulative sum along axis -2); "
        "is a future token leaking in?")
    _correct("causal K*V sum")


def check_param_count(fn):
    """Exercise 3: fn(cfg) = number of weights of SpikeLLM(cfg), for any config."""
    cfgs = [Config.tiny(), Config.tiny(n_layer=3, d_ff=48), Config.tiny(tie_weights=True),
            Config.tiny(vocab_size=100, block_size=32, n_embd=16, n_head=4)]
    for cfg in cfgs:
        want, got = SpikeLLM(cfg).num_params(), int(fn(cfg))
        assert got == want, (
            f"for n_layer={cfg.n_layer}, n_embd={cfg.n_embd}, d_ff={cfg.d_ff}, vocab_size="
            f"{cfg.vocab_size}, tie_weights={cfg.tie_weights}: {got} instead of {want}. Count "
            "both embeddings, per block 2 LayerNorms (2 D each), 4 projections (D^2 + D), the "
            "MLP (D d_ff + d_ff + d_ff D + D), then ln_f and the readout (none when tied)")
    _correct("parameter count")


def check_forward_macs(fn):
    """Exercise 4: fn(cfg, n_batch, n_tok) = multiply-accumulates of one forward pass."""
    cases = [(Config.tiny(), 2, 16), (Config.small(), 1, 128),
             (Config.tiny(attention="softmax", spiking=False), 3, 10)]
    for cfg, b, n in cases:
        want, got = forward_macs(cfg, b, n), int(fn(cfg, b, n))
        assert got == want, (
            f"attention={cfg.attention}, spiking={cfg.spiking}, B={b}, L={n}: {got} instead of "
            f"{want}. The blocks run T times (T = 1 for the twin), the readout once; softmax "
            "attention adds 2 L^2 D per sequence; SDSA's K*V sum has no multiplications")
    _correct("forward MACs")


def check_block_by_hand(fn):
    """Exercise 5: fn(block, x) recomputes Block.forward from the block's own modules."""
    cfg = Config.tiny(num_steps=3)
    block = Block(cfg, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((3, 2, 5, cfg.n_embd)).astype(np.float32)
    got = np.asarray(fn(block, x))
    want = block(x)
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    assert np.allclose(got, want, atol=1e-5), (
        "the output differs from Block.forward: the shortcut adds the branch to the membrane "
        "stream x (x = x + attn(sn1(ln1(x)))), and the MLP reads the updated x")
    _correct("block by hand")
