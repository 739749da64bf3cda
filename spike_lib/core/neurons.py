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
Multi-level spikes, levels = D >= 1: D + 1 values in [0, 1], the membrane range [0, threshold]
quantised in D steps (level thresholds threshold/D, 2 threshold/D, ..., threshold):
    s[t] = (1/D) sum_{k=1..D} H(u[t] - k threshold / D)     in {0, 1/D, 2/D, ..., 1}
    v[t] = u[t] - threshold * s[t]                          "subtract": the formula above
    v[t] = u[t] * (1 - min(D s[t], 1))                      "zero": any spike empties
    ds/du := (1/D) sum_{k=1..D} g(u[t] - k threshold / D)   the surrogate, averaged over levels
D = 1 is the binary LIF above, number for number. The spike keeps the range [0, 1] of a binary
spike, so the next layer sees inputs of the same size and the surrogate's slope stays that of
one step (the integer spikes 0..D of I-LIF, SpikeYOLO, Luo et al. 2024, "Integer-valued
training and spike-driven inference", are our D s: D times larger inputs and gradients; we
normalise, as SpikeLM's elastic spikes carry a scale, Xing et al. 2024). A spike j/D still
drives only accumulates: j binary events of weight W/D on neuromorphic hardware (fold 1/D into
the next layer's weights).
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


def level_thresholds(threshold, levels=1) -> list:
    """[(k / D) threshold for k = 1..D]: the top level is threshold exactly (k / D = 1.0).

    fire, fire_grad and the backends' fast paths all compare u with these same numbers, so a
    membrane exactly on a level does not fire it anywhere (H(0) = 0)."""
    return [(k / levels) * threshold for k in range(1, levels + 1)]


def level_mean(term, threshold, levels=1):
    """(1/D) sum_{k=1..D} term(k threshold / D), summed in order and divided by D once;
    term(threshold) itself for D = 1. The one sum behind fire, fire_grad and the backends'
    spike counts, so that all of them compare u with the same level thresholds."""
    if levels == 1:
        return term(threshold)
    ths = level_thresholds(threshold, levels)
    s = term(ths[0])
    for th in ths[1:]:
        s = s + term(th)
    return s / levels


def fire(u, threshold, levels=1, surrogate="arctan", smooth=False):
    """The spike of membrane u: (1/D) sum_{k=1..D} H(u - k threshold / D), in {0, 1/D, ..., 1}.

    smooth=True: (1/D) sum_k G(u - k threshold / D), G the surrogate's antiderivative. levels=1
    is H(u - threshold) (G(u - threshold)) exactly. The sum of steps (an integer count, exact in
    floating point) is divided by D once: s = count / D, correctly rounded.
    """
    sg = get_surrogate(surrogate)
    step = sg.smooth if smooth else sg.forward
    return level_mean(lambda th: step(u - th), threshold, levels)


def fire_grad(u, threshold, levels=1, surrogate="arctan", xp=np):
    """ds/du := (1/D) sum_{k=1..D} g(u - k threshold / D), the surrogate derivative of fire."""
    sg = get_surrogate(surrogate)
    return level_mean(lambda th: sg.grad(u - th, xp=xp), threshold, levels)


def fired(s, levels=1, xp=np):
    """min(D s, 1), the factor of the "zero" reset v = u (1 - min(D s, 1)); s itself when D = 1.

    Written as where(s < 1/D, D s, 1): a spike s >= 1/D gives exactly 1 (D * fl(1/D) need not
    round to 1), s = 0 gives 0. In smooth mode autodiff passes the gradient D where s < 1/D and
    cuts it where the factor saturates (fired_grad, the hand-written backward's copy).
    """
    return s if levels == 1 else xp.where(s < 1.0 / levels, levels * s, 1.0)


def fired_grad(s, levels=1, xp=np):
    """d fired / ds: 1 for D = 1 (the binary reset u (1 - s)), else D where s < 1/D, 0 beyond."""
    return 1.0 if levels == 1 else xp.where(s < 1.0 / levels, float(levels), 0.0)


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
    and finite differences can check its backward. levels = D: spikes of D + 1 levels in
    [0, 1] (see the module docstring); 1 = binary.
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
        s = fire(u, threshold, levels, sg, smooth)  # fire: (1/D) sum_k H(u - k threshold / D)
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
    levels = D: ds/du = (1/D) sum_{k=1..D} g(u - k threshold / D); the "zero" reset's
    min(D s, 1) passes the gradient D to s where s < 1/D (fired_grad).
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
        else:  # v = u * (1 - min(D s, 1))
            r = fired(s, levels)
            dr = fired_grad(s, levels)  # d min(D s, 1) / ds
            du, ds = dv * (1.0 - r), dspk[t] - (0.0 if detach_reset else u * dv * dr)
        du = du + ds * fire_grad(u, threshold, levels, sg)  # through s = (1/D) sum_k H(.)
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


def decay_init(n_head):
    """The leak over tokens of SpikeMatrixAttention(decay=True) at start, as logits (float32,
    (n_head,)): lambda_h = sigmoid(w_h) = 1 - 2^-e, e spread 3 ... 8 over the heads (8 for one
    head), half-lives of 5 to 177 tokens (chapter 8e)."""
    e = np.linspace(3.0, 8.0, n_head) if n_head > 1 else np.array([8.0])
    lam = 1.0 - 2.0**-e
    return np.log(lam / (1 - lam)).astype(np.float32)
