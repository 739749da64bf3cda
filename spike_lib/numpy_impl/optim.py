"""AdamW from scratch, gradient-norm clipping and a warmup + cosine learning-rate schedule.

Taught in: notebooks/02_sdsa_colors.ipynb
"""

import math

import numpy as np

from spike_lib.core.config import check_range
from spike_lib.core.training import cosine_lr  # noqa: F401 - the schedule both ports share


def default_decay(name, param) -> bool:
    """Decay matrices (weights, embeddings); leave vectors (biases, LayerNorm gains) alone."""
    return param.ndim >= 2


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay").

    With g the gradient, step count t and learning rate lr_i = lr * mult(name):
        m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1^t)           v_hat = v / (1 - b2^t)          (bias correction)
        p <- p - lr_i * wd * p           (decoupled decay: not part of the gradient)
        p <- p - lr_i * m_hat / (sqrt(v_hat) + eps)
    Parameters are looked up by name from `model.named_parameters()` at every step, so the
    optimizer survives `astype` and `load_state_dict` (which replace the arrays).
    lr_mult: layer-wise learning rates, a dict {name prefix: multiplier} (the longest matching
    prefix wins, default 1) or a callable name -> multiplier.
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
                 lr_mult=None, decay=default_decay):
        check_range("lr", lr, 0.0)
        check_range("beta1", betas[0], 0.0, 1.0)
        check_range("beta2", betas[1], 0.0, 1.0)
        if betas[0] >= 1.0 or betas[1] >= 1.0:
            raise ValueError(f"betas={betas} is invalid: each must be < 1")
        check_range("eps", eps, 0.0, low_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        if lr_mult is not None and not (callable(lr_mult) or isinstance(lr_mult, dict)):
            raise ValueError("lr_mult must be None, a dict {name prefix: float} or a callable")
        self.model, self.lr, self.betas, self.eps = model, lr, betas, eps
        self.weight_decay, self.lr_mult, self.decay = weight_decay, lr_mult, decay
        self.t = 0
        self.m = {n: np.zeros_like(p) for n, p, _ in model.named_parameters()}
        self.v = {n: np.zeros_like(p) for n, p, _ in model.named_parameters()}

    def mult(self, name) -> float:
        """The learning-rate multiplier of parameter `name`."""
        if self.lr_mult is None:
            return 1.0
        if callable(self.lr_mult):
            return float(self.lr_mult(name))
        best = max((k for k in self.lr_mult if name == k or name.startswith(k + ".")),
                   key=len, default=None)
        return 1.0 if best is None else float(self.lr_mult[best])

    def step(self, lr=None):
        """One update of every parameter, in place. lr overrides self.lr (for schedules)."""
        lr = self.lr if lr is None else lr
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        for name, p, g in self.model.named_parameters():
            if name not in self.m:
                raise ValueError(f"parameter {name!r} was added after the optimizer was built")
            m, v = self.m[name], self.v[name]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * g * g
            lr_i = lr * self.mult(name)
            if self.weight_decay and self.decay(name, p):
                p -= (lr_i * self.weight_decay) * p
            p -= lr_i * (m / c1) / (np.sqrt(v / c2) + self.eps)

    def state_dict(self) -> dict:
        """Moments and step count as plain arrays (save with np.savez, allow_pickle=False)."""
        state = {"t": np.array(self.t)}
        state.update({f"m.{n}": a.copy() for n, a in self.m.items()})
        state.update({f"v.{n}": a.copy() for n, a in self.v.items()})
        return state

    def load_state_dict(self, state):
        names = set(self.m)
        got = {k[2:] for k in state if k[:2] in ("m.", "v.")}
        if got != names:
            raise ValueError(f"optimizer state does not fit: missing {sorted(names - got)}, "
                             f"unexpected {sorted(got - names)}")
        self.t = int(state["t"])
        for n in names:
            self.m[n] = np.array(state[f"m.{n}"], dtype=self.m[n].dtype)
            self.v[n] = np.array(state[f"v.{n}"], dtype=self.v[n].dtype)
        return self


def grad_norm(model) -> float:
    """The global L2 norm of every gradient together."""
    return float(math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2))
                               for _, _, g in model.named_parameters())))


def clip_grad_norm(model, max_norm) -> float:
    """Scale all gradients by max_norm / norm when their global norm exceeds max_norm.

    Returns the norm before clipping (log it: spikes in it warn of instability).
    """
    check_range("max_norm", max_norm, 0.0, low_open=True)
    norm = grad_norm(model)
    if norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for _, _, g in model.named_parameters():
            g *= scale
    return norm
