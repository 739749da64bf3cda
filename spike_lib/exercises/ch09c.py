"""Checks for chapter 9c's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/09c_seeds_and_soups.ipynb
"""

import numpy as np


def _correct(name):
    print(f"{name}: correct")


def check_soup(fn):
    """Exercise 1: fn(states, weights) = the weighted mean of state dicts, weights normalised."""
    a = {"W": np.array([[1.0, 2.0]], np.float32), "b": np.array([4.0], np.float32)}
    b = {"W": np.array([[3.0, 6.0]], np.float32), "b": np.array([0.0], np.float32)}
    out = fn([a, b], [1.0, 1.0])
    assert isinstance(out, dict) and set(out) == {"W", "b"}, "return a dict with the same keys"
    if np.allclose(out["W"], [[4.0, 8.0]]):
        raise AssertionError("that is the sum: divide by the sum of the weights")
    assert np.allclose(out["W"], [[2.0, 4.0]]) and np.allclose(out["b"], [2.0]), (
        f"equal weights give the plain mean, [[2, 4]] and [2]; got {np.asarray(out['W']).tolist()}")
    out = fn([a, b], [3.0, 1.0])
    if np.allclose(out["W"], [[6.0, 12.0]]):
        raise AssertionError("weights 3 and 1 are 0.75 and 0.25 once normalised to sum 1")
    if np.allclose(out["W"], [[3.0, 6.0]]):
        raise AssertionError("divide by the sum of the weights (4), not by the number of models")
    if np.allclose(out["W"], [[2.5, 5.0]]):
        raise AssertionError("the first weight belongs to the first state dict")
    assert np.allclose(out["W"], [[1.5, 3.0]]) and np.allclose(out["b"], [3.0]), (
        f"0.75 a + 0.25 b is [[1.5, 3]] and [3]; got {np.asarray(out['W']).tolist()}")
    assert np.asarray(out["W"]).shape == (1, 2), "keep each array's shape"
    _correct("soup")


def check_barrier(fn):
    """Exercise 2: fn(alphas, losses) = the largest rise of the loss above the straight line
    between its two ends (0 when the path never rises above it)."""
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    got = float(fn(alphas, [1.0, 1.5, 2.0, 1.5, 1.0]))
    if np.isclose(got, 2.0):
        raise AssertionError("measure from the line between the ends, not from zero")
    assert np.isclose(got, 1.0), f"the middle point is 1.0 above the line at 1.0; got {got}"
    got = float(fn(alphas, [1.0, 1.2, 1.4, 1.6, 2.0]))
    if np.isclose(got, 0.6):
        raise AssertionError("the line runs from loss(0) to loss(1): at alpha 0.75 it is 1.75, "
                             "not the first or the last value")
    assert np.isclose(got, 0.0), f"1.2, 1.4 and 1.6 all lie at or below the line (1.25, 1.5, 1.75): want 0, got {got}"
    got = float(fn(alphas, [2.0, 1.0, 0.8, 1.0, 2.0]))
    assert np.isclose(got, 0.0), f"a valley is no barrier: the answer is never below 0; got {got}"
    _correct("barrier")
