"""Chapter 8d's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import numpy as np
import pytest

from spike_lib.core.neurons import fire, fire_grad
from spike_lib.exercises import ch08d


def _fire(u, th, d):
    return sum((np.asarray(u) > k * th / d).astype(float) for k in range(1, d + 1)) / d


def test_fire(capsys):
    ch08d.check_fire(_fire)
    ch08d.check_fire(lambda u, th, d: fire(np.asarray(u), th, d))  # the library's own
    assert capsys.readouterr().out.count("correct") == 2
    with pytest.raises(AssertionError, match="divide the count"):
        ch08d.check_fire(lambda u, th, d: _fire(u, th, d) * d)
    with pytest.raises(AssertionError, match="split the threshold"):
        ch08d.check_fire(lambda u, th, d: sum((np.asarray(u) > k * th).astype(float) for k in range(1, d + 1)) / d)
    with pytest.raises(AssertionError, match="H\\(0\\) = 0"):
        ch08d.check_fire(lambda u, th, d: sum((np.asarray(u) >= k * th / d).astype(float) for k in range(1, d + 1)) / d)
    with pytest.raises(AssertionError, match="rounding"):
        ch08d.check_fire(lambda u, th, d: np.clip(np.round(np.asarray(u) / th * d), 0, d) / d)


def _planes(s, d):
    return np.stack([(s >= j / d).astype(np.float32) for j in range(1, d + 1)])


def test_planes(capsys):
    ch08d.check_planes(_planes)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="new first axis"):
        ch08d.check_planes(lambda s, d: np.moveaxis(_planes(s, d), 0, -1))
    with pytest.raises(AssertionError, match="three planes"):
        ch08d.check_planes(lambda s, d: np.stack([np.isclose(s, j / d).astype(float) for j in range(1, d + 1)]))
    with pytest.raises(AssertionError, match="units of 1/D"):
        ch08d.check_planes(lambda s, d: np.stack([(s >= j / d).astype(float) for j in range(d)]))


def test_surrogate(capsys):
    ch08d.check_surrogate(lambda u, th, d: fire_grad(u, th, d))
    g = lambda x: 1.0 / (1.0 + (np.pi * x) ** 2)  # noqa: E731  (alpha = 2: (alpha/2) / (1 + (pi alpha x/2)^2))
    ch08d.check_surrogate(lambda u, th, d: sum(g(u - k * th / d) for k in range(1, d + 1)) / d)
    assert capsys.readouterr().out.count("correct") == 2
    assert np.isclose(float(fire_grad(np.array(1.0), 1.0, 1)), 1.0)  # hand value: g(0) = alpha / 2 = 1
    with pytest.raises(AssertionError, match="divide by D"):
        ch08d.check_surrogate(lambda u, th, d: sum(g(u - k * th / d) for k in range(1, d + 1)))
    with pytest.raises(AssertionError, match="binary surrogate"):
        ch08d.check_surrogate(lambda u, th, d: g(u - th))


def test_accumulates(capsys):
    ch08d.check_accumulates(lambda s, n, d: d * float(np.sum(s)) * n)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="three events"):
        ch08d.check_accumulates(lambda s, n, d: int((np.asarray(s) > 0).sum()) * n)
    with pytest.raises(AssertionError, match="whole row"):
        ch08d.check_accumulates(lambda s, n, d: d * float(np.sum(s)))
    with pytest.raises(AssertionError, match="multiply by D"):
        ch08d.check_accumulates(lambda s, n, d: float(np.sum(s)) * n)
