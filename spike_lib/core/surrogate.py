"""Surrogate gradients: the Heaviside step forward, a smooth pseudo-derivative backward.

Each surrogate is a pair evaluated at x = mem - threshold:
    forward(x) = H(x)        the spike (0 or 1); its true derivative is 0 almost everywhere
    grad(x)    = g(x)        the pseudo-derivative used in the backward pass
    smooth(x)  = G(x)        an antiderivative of g (G' = g, G(0) = 1/2): the forward of
                             "smooth mode", in which finite differences can check gradients
Each surrogate has one parameter ("scale"): a sharpness for the sigmoid (slope k), the fast
sigmoid (slope k) and the arctan (alpha a), where larger means taller and narrower, but a width
for the rectangle (w), where larger means flatter and wider. The class defaults (k = 4, k = 2,
a = 2, w = 1) all give g(0) = 1. Config.surrogate_scale (2.0) replaces that parameter for
whichever surrogate a model uses, so inside the models the sigmoid has slope 2 (g(0) = 0.5),
the rectangle width 2 (g(0) = 0.5), the arctan and fast sigmoid g(0) = 1.
Neftci, Mostafa & Zenke (2019), "Surrogate gradient learning in spiking neural networks".
Taught in: notebooks/01b_surrogate_gradients.ipynb
"""

from dataclasses import dataclass

import numpy as np


def heaviside(x):
    """H(x) = 1 where x > 0, else 0 (a neuron exactly at threshold does not fire).

    Works on NumPy and MLX arrays alike; the result keeps x's dtype.
    """
    return (x > 0).astype(x.dtype)


@dataclass(frozen=True)
class Surrogate:
    """Base pair: subclasses define grad (g) and smooth (G with G' = g).

    Pass xp=mlx.core to evaluate the same formula on MLX arrays (spike_lib.mlx_impl does).
    """

    name = "base"

    def forward(self, x):
        return heaviside(x)

    def __call__(self, x):
        return self.forward(x)


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """g(x) = k s(kx)(1 - s(kx)), G(x) = s(kx) with s the logistic function (area 1, peak k/4)."""

    slope: float = 4.0
    name = "sigmoid"

    def __post_init__(self):
        _check_positive("slope", self.slope)

    def smooth(self, x, xp=np):
        # s(kx) = 1/2 + tanh(kx/2)/2: the same function, without exp(-kx) overflowing for x << 0
        return 0.5 + 0.5 * xp.tanh(0.5 * self.slope * x)

    def grad(self, x, xp=np):
        s = self.smooth(x, xp)
        return self.slope * s * (1.0 - s)


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """SuperSpike: g(x) = 1 / (1 + k|x|)^2, G(x) = 1/2 + x / (1 + k|x|) (area 2/k, peak 1).

    As snnTorch's fast_sigmoid, g is not normalised: G runs from 1/2 - 1/k to 1/2 + 1/k, a
    soft step from 0 to 1 only at k = 2. The slope k sets the width; the peak is 1 at any k.
    """

    slope: float = 2.0
    name = "fast_sigmoid"

    def __post_init__(self):
        _check_positive("slope", self.slope)

    def smooth(self, x, xp=np):
        return 0.5 + x / (1.0 + self.slope * xp.abs(x))

    def grad(self, x, xp=np):
        return 1.0 / (1.0 + self.slope * xp.abs(x)) ** 2


@dataclass(frozen=True)
class ArcTan(Surrogate):
    """g(x) = (a/2) / (1 + (pi a x / 2)^2), G(x) = 1/2 + arctan(pi a x / 2) / pi (area 1, peak a/2)."""

    alpha: float = 2.0
    name = "arctan"

    def __post_init__(self):
        _check_positive("alpha", self.alpha)

    def smooth(self, x, xp=np):
        return 0.5 + xp.arctan(0.5 * np.pi * self.alpha * x) / np.pi

    def grad(self, x, xp=np):
        return 0.5 * self.alpha / (1.0 + (0.5 * np.pi * self.alpha * x) ** 2)


@dataclass(frozen=True)
class Rectangular(Surrogate):
    """g(x) = 1/w where |x| < w/2 else 0, G(x) = clip(x/w + 1/2, 0, 1) (area 1, peak 1/w)."""

    width: float = 1.0
    name = "rectangular"

    def __post_init__(self):
        _check_positive("width", self.width)

    def smooth(self, x, xp=np):
        return xp.clip(x / self.width + 0.5, 0.0, 1.0)

    def grad(self, x, xp=np):
        return (xp.abs(x) < 0.5 * self.width).astype(x.dtype) / self.width


SURROGATES = {cls.name: cls for cls in (Sigmoid, FastSigmoid, ArcTan, Rectangular)}


def get_surrogate(name="arctan", scale=None) -> Surrogate:
    """Build a surrogate by name; `scale` is its one parameter (slope, alpha or width).

    get_surrogate("sigmoid", 4.0) == Sigmoid(slope=4.0); scale=None keeps the class default
    (g(0) = 1 for all four). For the rectangle the scale is the width: larger is flatter.
    """
    if isinstance(name, Surrogate):
        return name
    if name not in SURROGATES:
        raise ValueError(f"surrogate={name!r} is unknown; choose one of {sorted(SURROGATES)}")
    return SURROGATES[name]() if scale is None else SURROGATES[name](scale)


def _check_positive(field, value):
    if not value > 0:
        raise ValueError(f"{field}={value!r} is invalid: it must be > 0")
