import numpy as np
import pytest

from spike_lib.core.gradcheck import check_module, cmp, numerical_grad, rel_error
from spike_lib.numpy_impl.module import Module


class Square(Module):
    """y = x^2 * w, with a switchable bug in backward."""

    def __init__(self, bug=False):
        super().__init__()
        self.add_param("w", np.array([1.5, -2.0, 0.5]))
        self.bug = bug

    def forward(self, x):
        self.x = x
        return x**2 * self.params["w"]

    def backward(self, dout):
        self.grads["w"] += np.sum(dout * self.x**2, axis=0)
        return dout * (3 if self.bug else 2) * self.x * self.params["w"]


def test_numerical_grad_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numerical_grad(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-8)
    part = numerical_grad(lambda: float(np.sum(x**3)), x, indices=[3, 0])
    np.testing.assert_allclose(part, [27.0, 3.0], rtol=1e-8)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # x restored


def test_numerical_grad_requires_float64():
    with pytest.raises(ValueError, match="float64"):
        numerical_grad(lambda: 0.0, np.zeros(3, dtype=np.float32))


def test_rel_error_and_cmp_verdicts(capsys):
    assert rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert rel_error([1.0], [1.1]) == pytest.approx(0.1 / 2.1)
    assert cmp("same", np.ones(2), np.ones(2)) == 0.0
    cmp("close", np.array([1.0]), np.array([1.0 + 1e-9]))
    cmp("far", np.array([1.0]), np.array([2.0]))
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out] == ["exact", "approximate", "WRONG"]
    with pytest.raises(ValueError, match="shapes"):
        rel_error(np.ones(2), np.ones(3))


def test_check_module_accepts_a_correct_backward_and_catches_a_wrong_one(rng):
    x = rng.standard_normal((4, 3))
    good = check_module(Square(), x, rng)
    assert max(good.values()) < 1e-7
    bad = check_module(Square(bug=True), x, rng)
    assert bad["x"] > 0.1 and bad["w"] < 1e-7


def test_check_module_subsamples_large_tensors(rng):
    errs = check_module(Square(), rng.standard_normal((50, 3)), rng, max_entries=7)
    assert max(errs.values()) < 1e-7
