"""Chapter 8c's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import numpy as np
import pytest

from spike_lib.exercises import ch08c
from spike_lib.train.recall import chance_levels


def test_chance(capsys):
    ch08c.check_chance(lambda k, n: tuple(chance_levels(k, n)[c] for c in
                                          ("random_value", "context_value", "unused_value")))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="1 / pairs"):
        ch08c.check_chance(lambda k, n: (1 / n, 1 / n, 1 / k))
    with pytest.raises(AssertionError, match="K - i"):
        ch08c.check_chance(lambda k, n: (1 / n, 1 / k, 1 / k))


def _shift(x, mu):
    prev = np.vstack([np.zeros((1, x.shape[1])), x[:-1]])
    return mu * x + (1 - mu) * prev


def test_token_shift(capsys):
    ch08c.check_token_shift(_shift)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="np.roll"):
        ch08c.check_token_shift(lambda x, mu: mu * x + (1 - mu) * np.roll(x, 1, axis=0))
    with pytest.raises(AssertionError, match="mu weighs"):
        ch08c.check_token_shift(lambda x, mu: _shift(x, 1 - mu))
    with pytest.raises(AssertionError, match="future"):
        ch08c.check_token_shift(lambda x, mu: mu * x + (1 - mu) * np.vstack([x[1:], 0 * x[:1]]))


def test_changed(capsys):
    def changed(kv, threshold):
        g = np.cumsum(kv, axis=0) >= threshold
        return (g[1:] != g[:-1]).mean(axis=1)

    ch08c.check_changed(changed)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="running sum"):
        ch08c.check_changed(lambda kv, t: (np.abs(np.diff(kv, axis=0)) > 0).mean(axis=1))
    with pytest.raises(AssertionError, match="shape"):
        ch08c.check_changed(lambda kv, t: (np.cumsum(kv, axis=0) >= t).mean(axis=1))


def test_passing(capsys):
    def passing(table, pairs, target):
        return sorted(n for n, by in table.items()
                      if str(pairs) in by and min(by[str(pairs)]) >= target)

    ch08c.check_passing(passing)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="every seed"):
        ch08c.check_passing(lambda t, k, g: sorted(n for n, b in t.items()
                                                  if max(b.get(str(k), [0])) >= g))
    with pytest.raises(AssertionError, match=">= target"):
        ch08c.check_passing(lambda t, k, g: sorted(n for n, b in t.items()
                                                  if min(b.get(str(k), [0])) > g))
