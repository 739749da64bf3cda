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


def _mean_best(p, n_questions, n_evals, trials=20000, seed=0):
    """Monte Carlo: the mean of the best of n_evals binomial(n_questions, p) scores, in %."""
    rng = np.random.default_rng(seed)
    draws = rng.binomial(n_questions, p, size=(trials, n_evals))
    return 100.0 * draws.max(axis=1).mean() / n_questions


def check_best_of(fn):
    """Exercise 3: fn(p, n_questions, n_evals, rng) = the mean exact match (in %) of the best of
    n_evals independent scores on n_questions questions, each answered right with probability
    p, estimated over many simulated runs with rng."""
    got = float(fn(0.4, 43, 1, np.random.default_rng(1)))
    if np.isclose(got, 0.4, atol=0.02):
        raise AssertionError("return a percentage: 40, not 0.4")
    assert abs(got - 40.0) < 1.0, f"the best of one score is that score: about 40 %, got {got:.1f}"
    got = float(fn(0.4, 43, 10, np.random.default_rng(1)))
    want = _mean_best(0.4, 43, 10)
    if abs(got - 40.0) < 1.0:
        raise AssertionError("take the maximum of the n_evals scores of each simulated run, "
                             "then the mean over the runs")
    assert abs(got - want) < 1.0, f"the best of 10 evaluations: about {want:.1f} %, got {got:.1f}"
    _correct("best of n")


def check_greedy(fn):
    """Exercise 4: fn(order, score) = the greedy soup: start from order[0], add each next run
    if score(members + [run]) >= score(members); score takes a tuple of names."""
    table = {("a",): 40, ("a", "b"): 38, ("a", "c"): 42, ("a", "c", "d"): 42, ("a", "b", "c"): 50}
    score = lambda members: table.get(tuple(members), 0)  # noqa: E731
    got = list(fn(["a", "b", "c", "d"], score))
    if got == ["a", "b", "c"]:
        raise AssertionError("b lowered the score (38 < 40): greedy drops it for good, even if "
                             "a later soup with b would score higher")
    if got == ["a", "c"]:
        raise AssertionError("adding d left the score level (42): keep it, as the rule is >=")
    assert got == ["a", "c", "d"], f"want ['a', 'c', 'd'], got {got}"
    assert list(fn(["a"], score)) == ["a"], "one run is a soup of one"
    _correct("greedy soup")
