"""The LIF layer of the NumPy backend: a Module around the maths of spike_lib.core.neurons.

Taught in: notebooks/01_lif_neurons.ipynb
"""

import numpy as np

from spike_lib.core.neurons import check_lif_args, lif_backward, lif_forward
from spike_lib.core.surrogate import get_surrogate
from spike_lib.numpy_impl.module import Module


class LIF(Module):
    """A layer of LIF neurons with no weights: spk = LIF(x) over the time axis of x (T, ...).

    u[t] = beta v[t-1] + x[t];  s[t] = H(u[t] - threshold);  v[t] = u[t] - threshold s[t]
    Backward: BPTT with the surrogate's pseudo-derivative (Neftci et al. 2019).
    """

    def __init__(self, beta=0.9, threshold=1.0, reset="subtract", surrogate="arctan",
                 surrogate_scale=None, detach_reset=True):
        super().__init__()
        check_lif_args(beta, threshold, reset)
        self.beta, self.threshold, self.reset = beta, threshold, reset
        self.surrogate = get_surrogate(surrogate, surrogate_scale)
        self.detach_reset = detach_reset
        self.last_spk = None  # kept for firing-rate statistics

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.beta, cfg.threshold, cfg.reset, cfg.surrogate, cfg.surrogate_scale,
                   cfg.detach_reset)

    def _fast(self, x) -> bool:
        """The common case (spikes, soft reset, detached) runs in place with fewer passes."""
        return (not self.smooth and self.reset == "subtract" and self.detach_reset
                and x.dtype == np.float32)

    def forward(self, x):
        if not self._fast(x):
            spk, mem = lif_forward(x, self.beta, self.threshold, self.reset, self.surrogate,
                                   self.smooth)
        else:  # lif_forward's numbers: u = beta v + x, s = H(u - th) = [u > th], v = u - th s
            th = self.threshold
            mem, spk = np.empty(x.shape, np.float32), np.empty(x.shape, np.float32)
            v = np.empty(x.shape[1:], np.float32)
            for t in range(x.shape[0]):
                u = mem[t]
                if t:
                    np.multiply(v, self.beta, out=u)
                    u += x[t]
                else:
                    u[...] = x[0]
                np.greater(u, th, out=spk[t])
                np.multiply(spk[t], th, out=v)
                np.subtract(u, v, out=v)
        self.cache = (mem, spk)
        self.last_spk = spk
        return spk

    def backward(self, dspk):
        mem, spk = self.cache
        if not self._fast(mem):
            return lif_backward(dspk, mem, spk, self.beta, self.threshold, self.reset,
                                self.surrogate, self.detach_reset)
        dx = np.empty(mem.shape, np.float32)  # du[t] = dspk[t] g(u[t] - th) + beta du[t+1]
        for t in reversed(range(mem.shape[0])):
            np.multiply(dspk[t], self.surrogate.grad(mem[t] - self.threshold), out=dx[t])
            if t + 1 < mem.shape[0]:
                dx[t] += self.beta * dx[t + 1]
        return dx

    def firing_rate(self) -> float:
        """Mean spikes per neuron per timestep in the last forward pass."""
        return float(self.last_spk.mean()) if self.last_spk is not None else float("nan")
