"""The LIF layer of the NumPy backend: a Module around the maths of spike_lib.core.neurons.

Taught in: notebooks/01_lif_neurons.ipynb
"""

import numpy as np

from spike_lib.core.neurons import (
    check_lif_args,
    fire_grad,
    level_thresholds,
    lif_backward,
    lif_forward,
)
from spike_lib.core.surrogate import get_surrogate
from spike_lib.numpy_impl.module import Module


class LIF(Module):
    """A layer of LIF neurons with no weights: spk = LIF(x) over the time axis of x (T, ...).

    u[t] = beta v[t-1] + x[t];  s[t] = (1/D) sum_{k=1..D} H(u[t] - k threshold / D);
    v[t] = u[t] - threshold s[t]   (or u[t] (1 - min(D s[t], 1)) with reset="zero")
    levels = D = 1 is the binary LIF, s[t] = H(u[t] - threshold); D > 1 fires D + 1 levels
    {0, 1/D, ..., 1} (I-LIF's integer spikes, Luo et al. 2024, divided by D so that they stay
    in [0, 1]; SpikeLM, Xing et al. 2024).
    Backward: BPTT with the surrogate's pseudo-derivative (Neftci et al. 2019), averaged over
    the levels: ds/du = (1/D) sum_k g(u - k threshold / D).
    """

    def __init__(self, beta=0.9, threshold=1.0, reset="subtract", surrogate="arctan",
                 surrogate_scale=None, detach_reset=True, levels=1):
        super().__init__()
        check_lif_args(beta, threshold, reset, levels)
        self.beta, self.threshold, self.reset = beta, threshold, reset
        self.surrogate = get_surrogate(surrogate, surrogate_scale)
        self.detach_reset = detach_reset
        self.levels = int(levels)
        self.last_spk = None  # kept for firing-rate statistics

    @classmethod
    def from_config(cls, cfg):
        """From a Config (levels = cfg.spike_levels) or a LIFConfig (binary spikes)."""
        return cls(cfg.beta, cfg.threshold, cfg.reset, cfg.surrogate, cfg.surrogate_scale,
                   cfg.detach_reset, getattr(cfg, "spike_levels", 1))

    def _fast(self, x) -> bool:
        """The common case (spikes, soft reset, detached) runs in place with fewer passes."""
        return (not self.smooth and self.reset == "subtract" and self.detach_reset
                and x.dtype == np.float32)

    def level_thresholds(self):
        """(k threshold / D for k = 1..D, core.neurons.level_thresholds) as lif_forward's
        u - k threshold / D rounds them for float32 u (a Python float threshold becomes float32,
        a NumPy float64 one keeps float64)."""
        dtype = np.result_type(np.float32, self.threshold)
        return np.array(level_thresholds(self.threshold, self.levels), dtype)

    def forward(self, x):
        if not self._fast(x):
            spk, mem = lif_forward(x, self.beta, self.threshold, self.reset, self.surrogate,
                                   self.smooth, self.levels)
        else:  # lif_forward's numbers: u = beta v + x, s = H(u - th) = [u > th], v = u - th s
            th = self.threshold
            mem, spk = np.empty(x.shape, np.float32), np.empty(x.shape, np.float32)
            v = np.empty(x.shape[1:], np.float32)
            # D > 1: count = sum_k [u > k th / D], one comparison per level (exact, ties
            # included: u = k th / D is not above; 4.8 ms against np.searchsorted's 48-52 ms on
            # (16, 128, 1024) at D = 4),
            # and s = count / D. The reset stays v = u - th s, the float operations of
            # lif_forward, so this path equals the definition bit for bit; the algebraically
            # equal u - (th / D) count would round th / D first and can differ by an ulp
            levels = self.level_thresholds() if self.levels > 1 else None
            above = np.empty(x.shape[1:], np.float32) if levels is not None else None
            for t in range(x.shape[0]):
                u = mem[t]
                if t:
                    np.multiply(v, self.beta, out=u)
                    u += x[t]
                else:
                    u[...] = x[0]
                if levels is None:
                    np.greater(u, th, out=spk[t])
                else:
                    np.greater(u, levels[0], out=spk[t])
                    for level in levels[1:]:
                        spk[t] += np.greater(u, level, out=above)
                    spk[t] /= np.float32(self.levels)  # count / D, one correctly rounded division
                np.multiply(spk[t], th, out=v)
                np.subtract(u, v, out=v)
        self.cache = (mem, spk)
        self.last_spk = spk
        return spk

    def backward(self, dspk):
        mem, spk = self.cache
        if not self._fast(mem):
            return lif_backward(dspk, mem, spk, self.beta, self.threshold, self.reset,
                                self.surrogate, self.detach_reset, self.levels)
        # du[t] = dspk[t] (1/D) sum_k g(u[t] - k th / D) + beta du[t+1]
        dx = np.empty(mem.shape, np.float32)
        for t in reversed(range(mem.shape[0])):
            if self.levels == 1:
                np.multiply(dspk[t], self.surrogate.grad(mem[t] - self.threshold), out=dx[t])
            else:
                np.multiply(dspk[t], fire_grad(mem[t], self.threshold, self.levels,
                                               self.surrogate), out=dx[t])
            if t + 1 < mem.shape[0]:
                dx[t] += self.beta * dx[t + 1]
        return dx

    def firing_rate(self) -> float:
        """Mean spike VALUE per neuron per timestep in the last forward pass, in [0, 1]: spikes
        per neuron per step for binary spikes; a spike j/D counts j/D (energy.py charges D s
        accumulates for it)."""
        return float(self.last_spk.mean()) if self.last_spk is not None else float("nan")
