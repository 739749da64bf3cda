"""The LIF layer of the NumPy backend: a Module around the maths of spike_lib.core.neurons.

Taught in: notebooks/01_lif_neurons.ipynb
"""

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

    def forward(self, x):
        spk, mem = lif_forward(x, self.beta, self.threshold, self.reset, self.surrogate,
                               self.smooth)
        self.cache = (mem, spk)
        self.last_spk = spk
        return spk

    def backward(self, dspk):
        mem, spk = self.cache
        return lif_backward(dspk, mem, spk, self.beta, self.threshold, self.reset,
                            self.surrogate, self.detach_reset)

    def firing_rate(self) -> float:
        """Mean spikes per neuron per timestep in the last forward pass."""
        return float(self.last_spk.mean()) if self.last_spk is not None else float("nan")
