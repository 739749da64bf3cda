"""Chapter 9c's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import numpy as np
import pytest

from spike_lib.exercises import ch09c
from spike_lib.train.soup import soup_states


def test_soup(capsys):
    ch09c.check_soup(soup_states)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="sum of the weights"):
        ch09c.check_soup(lambda st, w: {k: sum(wi * s[k] for wi, s in zip(w, st)) for k in st[0]})
    with pytest.raises(AssertionError, match="first weight"):
        ch09c.check_soup(lambda st, w: soup_states(st[::-1], w))
    with pytest.raises(AssertionError, match="not by the number of models"):
        ch09c.check_soup(lambda st, w: {k: sum(wi * s[k] for wi, s in zip(w, st)) / len(st) for k in st[0]})


def _barrier(alphas, losses):
    a, l = np.asarray(alphas), np.asarray(losses)
    line = l[0] + (l[-1] - l[0]) * (a - a[0]) / (a[-1] - a[0])
    return max(0.0, float((l - line).max()))


def test_barrier(capsys):
    ch09c.check_barrier(_barrier)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="not from zero"):
        ch09c.check_barrier(lambda a, l: max(l) * (l[0] != l[-1] or True) if l[2] == 2.0 else 0.0)
    with pytest.raises(AssertionError, match="first or the last"):
        ch09c.check_barrier(lambda a, l: max(0.0, max(l[1:-1]) - l[0]))
    with pytest.raises(AssertionError, match="never below 0"):
        ch09c.check_barrier(lambda a, l: _barrier(a, l) if l[0] != 2.0 else -1.2)


def _best_of(p, n, k, rng, trials=20000):
    return 100 * rng.binomial(n, p, size=(trials, k)).max(axis=1).mean() / n


def test_best_of(capsys):
    ch09c.check_best_of(_best_of)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="percentage"):
        ch09c.check_best_of(lambda p, n, k, rng: _best_of(p, n, k, rng) / 100)
    with pytest.raises(AssertionError, match="maximum"):
        ch09c.check_best_of(lambda p, n, k, rng: 100 * rng.binomial(n, p, size=(5000, k)).mean() / n)
    assert 48 < ch09c._mean_best(0.4, 43, 10) < 54  # 40 % + about 1.5 standard deviations of 7.5 points


def _greedy(order, score):
    members = [order[0]]
    for run in order[1:]:
        if score(members + [run]) >= score(members):
            members.append(run)
    return members


def test_greedy(capsys):
    ch09c.check_greedy(_greedy)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="level"):
        ch09c.check_greedy(lambda o, s: [m for m in _greedy(o, lambda x: s(x) - 0.5 * (len(x) == 3))])
    with pytest.raises(AssertionError, match="for good"):
        ch09c.check_greedy(lambda o, s: ["a", "b", "c"])
