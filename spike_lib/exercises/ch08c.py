"""Checks for chapter 8c's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/08c_reading_the_context.ipynb
"""

import numpy as np


def _correct(name):
    print(f"{name}: correct")


def check_chance(fn):
    """Exercise 1: fn(pairs, n_values) = (random value, context value, unused value) chance of MQAR."""
    for pairs, n_values, want in ((1, 32, (1 / 32, 1.0, 1.0)), (2, 32, (1 / 32, 0.5, 0.75)),
                                  (4, 16, (1 / 16, 0.25, (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4))):
        out = tuple(float(v) for v in fn(pairs, n_values))
        assert len(out) == 3, f"return three numbers, got {len(out)}"
        assert np.isclose(out[0], want[0]), (
            f"pairs={pairs}, n_values={n_values}: a random value is right 1 / n_values of the time")
        assert np.isclose(out[1], want[1]), (
            f"pairs={pairs}: a value seen in the context is right 1 / pairs of the time")
        if pairs > 1 and np.isclose(out[2], 1 / pairs):
            raise AssertionError("the unused-value guesser has fewer values left at each query: "
                                 "K - i at the i-th query")
        assert np.isclose(out[2], want[2]), (
            f"pairs={pairs}: got {out[2]:.4f}, want {want[2]:.4f}: the mean over the K queries "
            "of 1 / (K - i), which is H_K / K")
    _correct("chance levels")


def check_token_shift(fn):
    """Exercise 2: fn(x, mu) = mu * x[l] + (1 - mu) * x[l-1] over (L, D), with x[-1] = 0."""
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = np.asarray(fn(x, 0.75), dtype=float)
    want = np.array([[0.75, 0.0], [0.25, 0.75], [0.75, 1.0]])
    assert out.shape == x.shape, f"shape {out.shape}: the shift keeps (L, D) = {x.shape}"
    if np.allclose(out, 0.75 * x + 0.25 * np.roll(x, 1, axis=0)):
        raise AssertionError("np.roll wraps the last token round to position 0: the first "
                             "token has no previous token, use zeros there")
    if np.allclose(out, 0.25 * x + 0.75 * np.vstack([np.zeros((1, 2)), x[:-1]])):
        raise AssertionError("mu weighs the current token, 1 - mu the previous one")
    if np.allclose(out, 0.75 * x + 0.25 * np.vstack([x[1:], np.zeros((1, 2))])):
        raise AssertionError("that mixes in the next token: the model would see the future")
    assert np.allclose(out, want), f"got {out.tolist()}, want {want.tolist()}"
    _correct("token shift")


def check_changed(fn):
    """Exercise 3: fn(kv, threshold) = fraction of gate entries H(S_l - threshold) that change
    from position l-1 to l, for l = 1 .. L-1, with S the running sum of kv (L, D)."""
    kv = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]], float)  # (L=5, D=3)
    out = np.asarray(fn(kv, 1.5), dtype=float)
    # S = [1,0,0] [1,1,0] [2,1,0] [2,1,0] [2,1,1]; gates (S > 1.5) = 0 0 1 1 1 in channel 0
    want = np.array([0, 1, 0, 0]) / 3
    assert out.shape == (4,), f"shape {out.shape}: one fraction per step l-1 -> l, (L-1,) = (4,)"
    if np.allclose(out, (np.abs(np.diff(kv, axis=0)) > 0).mean(axis=1)):
        raise AssertionError("that compares the K AND V spikes; the gate reads the running sum "
                             "np.cumsum(kv, axis=0) and spikes where it is >= threshold")
    assert np.allclose(out, want), f"got {out}, want {want}"
    _correct("changed gate entries")


def check_passing(fn):
    """Exercise 4: fn(recall_table, pairs, target) = sorted names whose every seed reaches target
    at that number of pairs; recall_table maps name -> {"2": [acc, ...], "8": [...]}."""
    table = {"a": {"8": [0.95, 0.91]}, "b": {"8": [0.99, 0.85]}, "c": {"2": [1.0]},
             "d (twin)": {"8": [1.0, 1.0]}, "e": {"8": [0.9]}}
    out = list(fn(table, 8, 0.9))
    if "b" in out:
        raise AssertionError("'b' reaches 0.9 with one seed only: ask every seed to pass")
    if "c" in out:
        raise AssertionError("'c' has no run at 8 pairs: it cannot pass there")
    if "e" not in out:
        raise AssertionError("'e' scores exactly 0.9: 'reaches' means >= target")
    assert out == ["a", "d (twin)", "e"], f"got {out}, want ['a', 'd (twin)', 'e'] (sorted)"
    _correct("attentions that pass")
