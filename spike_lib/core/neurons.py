"""Leaky integrate-and-fire maths in NumPy: forward and backward through time, and encodings.

Charge, fire, reset at every timestep t (Spike-driven Transformer, Yao et al. 2023, Eq. 1-3):
    u[t] = beta * v[t-1] + x[t]              membrane before the spike (what we plot as `mem`)
    s[t] = H(u[t] - threshold)               spike
    v[t] = u[t] - threshold * s[t]           "subtract" (soft) reset, or
    v[t] = u[t] * (1 - s[t])                 "zero" (hard) reset
"subtract" takes the threshold off before the next leak: u[t+1] = beta (u[t] - threshold s[t])
+ x[t+1], SpikingJelly's soft reset exactly. snnTorch's default subtracts after the leak,
u[t+1] = beta u[t] + x[t+1] - threshold s[t]: reset="subtract_after_leak" (neurons only; the
models' Config uses "subtract" or "zero"). The leak of an RC membrane with time constant tau
sampled every dt is beta = exp(-dt / tau) (beta_from_tau).
Integer ("multi-level") spikes, levels = D >= 1: the spike is the number of thresholds crossed,
    s[t] = sum_{k=1..D} H(u[t] - k threshold)        in {0, 1, ..., D}
    v[t] = u[t] - threshold * s[t]                   "subtract": every level costs a threshold
    v[t] = u[t] * (1 - min(s[t], 1))                 "zero": any spike empties the membrane
    ds/du := sum_{k=1..D} g(u[t] - k threshold)      the surrogate, once per level
D = 1 is the binary LIF above, number for number. An integer spike s still drives only
accumulates: a weight added s times, or s binary events on neuromorphic hardware (I-LIF of
SpikeYOLO, Luo et al. 2024, "Integer-valued training and spike-driven inference"; SpikeLM,
Xing et al. 2024, spikes with more than one bit of information).
The state v is carried over timesteps only: every other axis is an independent neuron.
The layer classes live in the backends: spike_lib.numpy_impl.neurons.LIF and
spike_lib.mlx_impl.neurons.LIF.
Taught in: notebooks/01_lif_neurons.ipynb
"""

import math

import numpy as np

from spike_lib.core.config import RESETS, check_choice, check_range, check_spike_levels
from spike_lib.core.surrogate import get_surrogate

# the resets a LIF layer accepts: the models' two, plus snnTorch's subtract-after-the-leak
LIF_RESETS = (*RESETS, "subtract_after_leak")


def check_lif_args(beta, threshold, reset, levels=1):
    check_range("beta", beta, 0.0, 1.0)
    check_range("threshold", threshold, 0.0, low_open=True)
    check_choice("reset", reset, LIF_RESETS)
    check_spike_levels(levels, "levels")


def fire(u, threshold, levels=1, surrogate="arctan", smooth=False):
    """The spike of membrane u: sum_{k=1..D} H(u - k threshold), an integer in 0..D.

    smooth=True: sum_k G(u - k threshold), G the surrogate's antiderivative. levels=1 is
    H(u - threshold) (G(u - threshold)) exactly.
    """
    sg = get_surrogate(surrogate)
    step = sg.smooth if smooth else sg.forward
    s = step(u - threshold)
    for k in range(2, levels + 1):
        s = s + step(u - k * threshold)
    return s


def fire_grad(u, threshold, levels=1, surrogate="arctan", xp=np):
    """ds/du := sum_{k=1..D} g(u - k threshold), the surrogate derivative of fire."""
    sg = get_surrogate(surrogate)
    g = sg.grad(u - threshold, xp=xp)
    for k in range(2, levels + 1):
        g = g + sg.grad(u - k * threshold, xp=xp)
    return g


def fired(s, levels=1, xp=np):
    """min(s, 1), the factor of the "zero" reset v = u (1 - min(s, 1)); s itself when D = 1.

    Written as where(s <= 1, s, 1) so that autodiff passes the gradient where s <= 1 (at s = 1
    too, as the D = 1 reset v = u (1 - s) does) and cuts it where the spike saturates.
    """
    return s if levels == 1 else xp.where(s <= 1.0, s, 1.0)


def beta_from_tau(tau, dt=1.0):
    """The leak per step of an RC membrane, tau du/dt = -u + R I, sampled every dt: exp(-dt/tau).

    Between samples the input is constant, so u decays by exactly exp(-dt/tau) per step
    (snnTorch tutorial 2). SpikingJelly's Euler step uses 1 - dt/tau instead (0.5 at tau = 2).
    """
    check_range("tau", tau, 0.0, low_open=True)
    check_range("dt", dt, 0.0, low_open=True)
    return math.exp(-dt / tau)


def lif_forward(x, beta=0.9, threshold=1.0, reset="subtract", surrogate="arctan", smooth=False,
                levels=1):
    """Run LIF over the leading time axis of x (T, ...). Returns spk and mem, both (T, ...).

    smooth=True replaces H by the surrogate's antiderivative, so the layer is differentiable
    and finite differences can check its backward. levels = D: integer spikes 0..D (see the
    module docstring); 1 = binary.
    """
    check_lif_args(beta, threshold, reset, levels)
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"x has shape {x.shape}: LIF needs a leading time axis T >= 1, (T, ...)")
    sg = get_surrogate(surrogate)
    spk = np.empty_like(x, dtype=np.result_type(x, np.float32))
    mem = np.empty_like(spk)
    v = np.zeros_like(spk[0])
    s = np.zeros_like(spk[0])
    for t in range(x.shape[0]):
        u = beta * v + x[t]  # charge
        if reset == "subtract_after_leak":
            u = u - threshold * s  # the previous spike's reset, after the leak (snnTorch)
        s = fire(u, threshold, levels, sg, smooth)  # fire: sum_k H(u - k threshold)
        if reset == "subtract":  # reset
            v = u - threshold * s
        else:  # "zero", or "subtract_after_leak" (whose reset comes at the next step)
            v = u * (1.0 - fired(s, levels)) if reset == "zero" else u
        mem[t], spk[t] = u, s
    return spk, mem


def lif_backward(dspk, mem, spk, beta=0.9, threshold=1.0, reset="subtract", surrogate="arctan",
                 detach_reset=True, levels=1):
    """Backprop through time: given dL/dspk (T, ...) and the forward's mem, spk, return dL/dx.

    The loop runs the forward in reverse, carrying dv = dL/dv[t] from step t+1 back to t.
    detach_reset=True treats s[t] in the reset line as a constant (no gradient through it).
    reset="subtract_after_leak": u[t+1] = beta u[t] + x[t+1] - threshold s[t], so s[t] gets
    -threshold dL/du[t+1] (undetached) where "subtract" gets -threshold dL/dv[t].
    levels = D: ds/du = sum_{k=1..D} g(u - k threshold); the "zero" reset's min(s, 1) passes
    the gradient to s where s <= 1.
    """
    check_lif_args(beta, threshold, reset, levels)
    sg = get_surrogate(surrogate)
    dx = np.empty_like(mem)
    dv = np.zeros_like(mem[0])
    du_next = np.zeros_like(mem[0])  # dL/du[t+1]
    for t in reversed(range(mem.shape[0])):
        u, s = mem[t], spk[t]
        if reset == "subtract":  # v = u - threshold * s
            du, ds = dv, dspk[t] - (0.0 if detach_reset else threshold * dv)
        elif reset == "subtract_after_leak":  # v = u; u[t+1] = beta v + x - threshold * s
            du, ds = dv, dspk[t] - (0.0 if detach_reset else threshold * du_next)
        else:  # v = u * (1 - min(s, 1))
            r = fired(s, levels)
            dr = 1.0 if levels == 1 else (s <= 1.0)  # d min(s, 1) / ds
            du, ds = dv * (1.0 - r), dspk[t] - (0.0 if detach_reset else u * dv * dr)
        du = du + ds * fire_grad(u, threshold, levels, sg)  # through s = sum_k H(u - k th)
        dx[t] = du
        dv, du_next = beta * du, du  # through u = beta * v[t-1] + x
    return dx


# -- encodings: how a real number becomes T timesteps of input ------------------------------

def direct_encode(x, num_steps):
    """Repeat x as the input current at every timestep: (..., ) -> (T, ...)."""
    check_range("num_steps", num_steps, 1, kind=int)
    x = np.asarray(x)
    return np.broadcast_to(x, (num_steps,) + x.shape).copy()


def rate_encode(x, num_steps, rng):
    """Bernoulli spikes with probability x in [0, 1] at each timestep: (...) -> (T, ...)."""
    check_range("num_steps", num_steps, 1, kind=int)
    x = np.asarray(x, dtype=np.float64)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"rate_encode needs x in [0, 1]; got min {x.min()}, max {x.max()}")
    return (rng.random((num_steps,) + x.shape) < x).astype(np.float32)


def latency_encode(x, num_steps):
    """One spike per input, earlier for larger x in [0, 1]: t = round((1 - x) (T - 1)).

    x = 0 never fires (linear latency code; snnTorch's spikegen.latency offers a log code).
    """
    check_range("num_steps", num_steps, 1, kind=int)
    x = np.asarray(x, dtype=np.float64)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"latency_encode needs x in [0, 1]; got min {x.min()}, max {x.max()}")
    t_fire = np.rint((1.0 - x) * (num_steps - 1)).astype(int)
    out = np.zeros((num_steps,) + x.shape, dtype=np.float32)
    idx = np.indices(x.shape)
    fires = x > 0
    out[(t_fire[fires],) + tuple(i[fires] for i in idx)] = 1.0
    return out
