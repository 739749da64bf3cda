"""Surrogate pairs: hand-computed values, smooth' == grad, areas, validation."""

import math

import numpy as np
import pytest

from spike_lib.core.surrogate import (
    SURROGATES,
    ArcTan,
    FastSigmoid,
    Rectangular,
    Sigmoid,
    get_surrogate,
    heaviside,
)


def test_heaviside_is_strict_and_keeps_dtype():
    x = np.array([-1.0, 0.0, 1e-9, 2.0], dtype=np.float32)
    out = heaviside(x)
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]  # exactly at threshold: no spike
    assert out.dtype == np.float32
    for name in SURROGATES:
        assert get_surrogate(name).forward(x).tolist() == [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "sg, x, grad, smooth",
    [
        (Sigmoid(4.0), 0.0, 1.0, 0.5),  # k/4 at the peak
        (Sigmoid(4.0), math.log(3) / 4, 0.75, 0.75),  # s = 3/4: 4 * 3/4 * 1/4
        (FastSigmoid(2.0), 0.0, 1.0, 0.5),
        (FastSigmoid(2.0), 0.5, 0.25, 0.75),  # 1 / (1 + 1)^2; 1/2 + 0.5/2
        (FastSigmoid(2.0), -1.5, 1 / 16, 0.5 - 1.5 / 4),
        (ArcTan(2.0), 0.0, 1.0, 0.5),  # a/2
        (ArcTan(2.0), 1 / math.pi, 0.5, 0.75),  # 1 / (1 + 1); 1/2 + arctan(1)/pi
        (Rectangular(1.0), 0.0, 1.0, 0.5),
        (Rectangular(1.0), 0.25, 1.0, 0.75),
        (Rectangular(1.0), 0.5, 0.0, 1.0),  # |x| < w/2 is strict
        (Rectangular(1.0), -0.6, 0.0, 0.0),
        (Rectangular(0.5), 0.1, 2.0, 0.7),  # height 1/w
    ],
)
def test_hand_computed_values(sg, x, grad, smooth):
    assert sg.grad(np.array(x)) == pytest.approx(grad, abs=1e-12)
    assert sg.smooth(np.array(x)) == pytest.approx(smooth, abs=1e-12)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_smooth_derivative_is_grad(name):
    sg = get_surrogate(name)
    # avoid the rectangular's two corners at +-w/2
    x = np.array([-1.7, -0.8, -0.3, -0.05, 0.0, 0.02, 0.2, 0.45, 0.9, 1.9])
    eps = 1e-6
    numeric = (sg.smooth(x + eps) - sg.smooth(x - eps)) / (2 * eps)
    np.testing.assert_allclose(numeric, sg.grad(x), rtol=1e-5, atol=1e-8)  # O(eps) at a cusp
    assert sg.smooth(np.array(0.0)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "sg, area",
    [
        (Sigmoid(4.0), 1.0),
        (FastSigmoid(2.0), 1.0),
        (FastSigmoid(4.0), 0.5),
        (ArcTan(2.0), 1.0),
        (Rectangular(0.5), 1.0),
    ],
)
def test_area_under_grad(sg, area):
    h = 1e-3
    x = np.arange(-2000, 2000, h) + h / 2  # midpoints: the rectangle's edges fall between them
    integral = np.sum(sg.grad(x)) * h
    assert integral == pytest.approx(area, rel=2e-3)  # tails of 1/x^2 cost ~1e-3


def test_sigmoid_far_below_threshold_does_not_overflow():
    x = np.array([-1e4, -40.0, 0.0, 40.0], dtype=np.float32)
    with np.errstate(over="raise"):
        out = Sigmoid(25.0).smooth(x)
        grad = Sigmoid(25.0).grad(x)
    assert out.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert grad.tolist() == [0.0, 0.0, 6.25, 0.0]


def test_grad_keeps_float32():
    x = np.linspace(-1, 1, 5, dtype=np.float32)
    for name in SURROGATES:
        assert get_surrogate(name).grad(x).dtype == np.float32


def test_get_surrogate():
    assert get_surrogate("sigmoid", 3.0) == Sigmoid(slope=3.0)
    assert get_surrogate("arctan") == ArcTan(alpha=2.0)
    sg = Rectangular(0.3)
    assert get_surrogate(sg) is sg
    with pytest.raises(ValueError, match="surrogate='relu'.*choose one of"):
        get_surrogate("relu")


@pytest.mark.parametrize(
    "cls, field",
    [(Sigmoid, "slope"), (FastSigmoid, "slope"), (ArcTan, "alpha"), (Rectangular, "width")],
)
def test_bad_scale_names_the_field(cls, field):
    with pytest.raises(ValueError, match=f"{field}=0"):
        cls(0)
    with pytest.raises(ValueError, match=field):
        get_surrogate(cls.name, -1.0)


def test_peaks_at_the_class_defaults_and_at_config_scale():
    from spike_lib.core.config import Config

    zero = np.array(0.0)
    assert all(get_surrogate(n).grad(zero) == pytest.approx(1.0) for n in SURROGATES)
    scale = Config().surrogate_scale  # what every model passes, whatever the surrogate
    peaks = {n: float(get_surrogate(n, scale).grad(zero)) for n in SURROGATES}
    assert peaks == pytest.approx({"sigmoid": 0.5, "fast_sigmoid": 1.0, "arctan": 1.0,
                                   "rectangular": 0.5})
    # the rectangle's scale is a width: larger is flatter; the others' larger is sharper
    assert get_surrogate("rectangular", 4.0).grad(zero) < get_surrogate("rectangular", 1.0).grad(zero)
    assert get_surrogate("sigmoid", 8.0).grad(zero) > get_surrogate("sigmoid", 4.0).grad(zero)


@pytest.mark.parametrize("slope, low, high", [(2.0, 0.0, 1.0), (4.0, 0.25, 0.75), (1.0, -0.5, 1.5)])
def test_fast_sigmoid_soft_step_spans_one_half_plus_minus_one_over_k(slope, low, high):
    G = FastSigmoid(slope).smooth(np.array([-1e9, 1e9]))
    np.testing.assert_allclose(G, [low, high], atol=1e-6)
