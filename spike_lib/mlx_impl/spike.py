"""The spike in MLX: Heaviside forward, surrogate pseudo-derivative backward (mx.custom_function).

Taught in: notebooks/01_lif_neurons.ipynb
"""

from functools import cache

import mlx.core as mx

from spike_lib.core.surrogate import get_surrogate, heaviside


@cache
def _spike_fn(sg):
    @mx.custom_function
    def spike(x):
        return heaviside(x)

    @spike.vjp
    def spike_vjp(x, dspk, spk):
        # the only hand-written gradient in mlx_impl: ds/dx := g(x), the surrogate
        return dspk * sg.grad(x, xp=mx).astype(dspk.dtype)

    return spike


def spike_fn(surrogate="arctan", scale=None):
    """Return spk = spike(x): H(x) forward, surrogate.grad(x) backward (Neftci et al. 2019).

    surrogate: a name from spike_lib.core.surrogate.SURROGATES or a Surrogate instance; scale its
    one parameter. The function is cached per surrogate, so calling this in a loop is cheap.
    """
    return _spike_fn(get_surrogate(surrogate, scale))
