"""Checks for chapter 8d's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/08d_multi_level_spikes.ipynb
"""

import numpy as np

from spike_lib.core.neurons import fire, fire_grad


def _correct(name):
    print(f"{name}: correct")


def check_fire(fn):
    """Exercise 1: fn(u, threshold, levels) = the spike of Eq. 8d.1,
    (1/D) sum_{k=1..D} H(u - k threshold / D), with H(0) = 0: a membrane exactly on a level
    has not crossed it."""
    u = np.array([-1.0, 0.2, 0.25, 0.3, 0.6, 0.99, 1.0, 1.01, 7.0])
    got = np.asarray(fn(u, 1.0, 4), dtype=float)
    assert got.shape == u.shape, f"one spike per membrane: shape {u.shape}, got {got.shape}"
    if got.max() > 1.0:
        raise AssertionError("a spike stays in [0, 1]: divide the count of levels crossed by D")
    if np.array_equal(got, (u > 1.0) * 1.0 + 0 * u) or np.isclose(got[4], 0.0):
        raise AssertionError("the D levels split the threshold: they sit at threshold/D, "
                             "2 threshold/D, ..., threshold, not at threshold, 2 threshold, ...")
    if np.isclose(got[1], 0.25):
        raise AssertionError("count the levels crossed; rounding u to the nearest level is "
                             "another quantiser")
    if np.isclose(got[2], 0.25) or np.isclose(got[6], 1.0):
        raise AssertionError("H(0) = 0: a membrane exactly on a level has not crossed it "
                             "(use u > level, as the binary LIF's u > threshold)")
    want = [0, 0, 0, 0.25, 0.5, 0.75, 0.75, 1, 1]
    assert np.allclose(got, want), f"for threshold 1 and D = 4 want {want}, got {got.tolist()}"
    got = np.asarray(fn(np.array([0.3, 0.7, 1.4]), 1.5, 3), dtype=float)
    assert np.allclose(got, [0, 1 / 3, 2 / 3]), (
        f"threshold 1.5, D = 3: levels at 0.5, 1.0, 1.5, so 0.3, 0.7, 1.4 cross 0, 1, 2 of them: "
        f"want [0, 1/3, 2/3], got {got.tolist()}")
    assert np.array_equal(np.asarray(fn(u, 1.0, 1), dtype=float), (u > 1.0).astype(float)), (
        "D = 1 must be the binary spike H(u - threshold)")
    _correct("multi-level spike")


def check_planes(fn):
    """Exercise 2: fn(s, levels) = the D binary planes b_j = [s >= j / D], j = 1..D, stacked on
    a new first axis, so that s = (1/D) sum_j b_j and s W = sum_j b_j (W / D) (Eq. 8d.3)."""
    s = np.array([[0, 0.25, 0.75], [0.5, 0, 1.0]], dtype=np.float32)
    got = np.asarray(fn(s, 4))
    assert got.shape == (4, 2, 3), f"D planes of s's shape on a new first axis: (4, 2, 3), got {got.shape}"
    assert set(np.unique(got).tolist()) <= {0.0, 1.0}, "every plane holds binary spikes (0 or 1)"
    if np.array_equal(got.sum(axis=0), s > 0):
        raise AssertionError("plane j fires where s >= j/D, so a spike of 3/4 fires in three planes")
    assert np.array_equal(got.sum(axis=0) / 4, s), (
        f"the planes must count s in units of 1/D: (1/D) sum_j b_j = {(got.sum(axis=0) / 4).tolist()}, "
        f"want {s.tolist()}")
    assert np.array_equal(got[0], s >= 0.25), "plane 1 is [s >= 1/D]: it fires for every spike"
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.allclose(sum(p @ (w / 4) for p in got), s @ w), "sum_j b_j (W / D) must equal s W"
    _correct("binary planes")


def check_surrogate(fn):
    """Exercise 3: fn(u, threshold, levels) = ds/du of Eq. 8d.2: the mean over the D levels of the
    arctan surrogate g(x) = (alpha / 2) / (1 + (pi alpha x / 2)^2), alpha = 2, at
    x = u - k threshold / D."""
    u = np.linspace(-1.0, 2.0, 61)
    got = np.asarray(fn(u, 1.0, 4), dtype=float)
    want = fire_grad(u, 1.0, 4)
    if np.allclose(got, 4 * want, atol=1e-6):
        raise AssertionError("divide by D: the spike is (1/D) times the count, so is its slope")
    if np.allclose(got, fire_grad(u, 1.0, 1), atol=1e-6):
        raise AssertionError("that is the binary surrogate: one bump per level, at threshold/D, "
                             "2 threshold/D, ..., threshold")
    assert np.allclose(got, want, atol=1e-6), (
        f"at u = 0.5 want {float(fire_grad(np.array(0.5), 1.0, 4)):.4f}, "
        f"got {float(np.asarray(fn(np.array([0.5]), 1.0, 4))[0]):.4f}")
    _correct("surrogate of a multi-level spike")


def check_accumulates(fn):
    """Exercise 4: fn(s, n_out, levels) = the additions that s @ W costs on spike-driven
    hardware for spikes s of D + 1 levels (any shape, values j/D) and a weight matrix with
    n_out columns: a spike j/D is j binary events, each adding a row of W/D (n_out numbers)."""
    s = np.array([[0, 0.25, 0.75], [0.5, 0, 0.25]])  # 1 + 3 + 2 + 1 = 7 events
    raw = float(fn(s, 3, 4))
    if np.isclose(raw, 3 * int((s > 0).sum())):
        raise AssertionError("a spike of 3/4 is three events, not one")
    if np.isclose(raw, 4 * s.sum()):
        raise AssertionError("each event adds a whole row: n_out numbers")
    if np.isclose(raw, 3 * s.sum()):
        raise AssertionError("count events: a spike j/D is j of them, so multiply by D")
    assert np.isclose(raw, 21), f"7 events x 3 columns = 21 additions, got {raw}"
    assert int(round(fn(np.zeros((5, 5)), 10, 4))) == 0, "no spikes, no work"
    assert int(round(fn(fire(np.array([0.6]), 1.0, 4), 3, 4))) == 6, "a spike of 2/4 on 3 columns: 6"
    _correct("accumulates")
