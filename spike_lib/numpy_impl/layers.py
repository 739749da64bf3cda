"""Basic layers on any leading dims, (B, D) to (T, B, L, D), with hand-written backward passes.

Taught in: notebooks/02_sdsa_colors.ipynb
"""

import numpy as np

from spike_lib.core.config import check_range
from spike_lib.core.config import check_rng as _check_rng
from spike_lib.core.scoring import cross_entropy, weighted_cross_entropy  # noqa: F401 - both ports' losses
from spike_lib.numpy_impl.module import Module


class Linear(Module):
    """y = x W + b over the last axis; W is stored (n_in, n_out) so x @ W needs no transpose.

    Backward: dW = x^T dy (summed over every leading dim), db = sum dy, dx = dy W^T.
    Init: W ~ N(0, gain^2 / n_in) (LeCun/Kaiming fan-in scaling), b = 0.
    """

    def __init__(self, n_in, n_out, rng, bias=True, gain=1.0, dtype=np.float32):
        super().__init__()
        check_range("n_in", n_in, 1, kind=int)
        check_range("n_out", n_out, 1, kind=int)
        _check_rng(rng)
        self.n_in, self.n_out = n_in, n_out
        std = gain / np.sqrt(n_in)
        self.add_param("W", (rng.standard_normal((n_in, n_out)) * std).astype(dtype))
        if bias:
            self.add_param("b", np.zeros(n_out, dtype=dtype))

    def forward(self, x):
        if x.shape[-1] != self.n_in:
            raise ValueError(f"Linear expects last dim {self.n_in}, got input shape {x.shape}")
        self.x = x
        # one big GEMM over every leading dim: (T, B, L, D) @ W as a batched matmul is ~5x slower
        y = (x.reshape(-1, self.n_in) @ self.params["W"]).reshape(*x.shape[:-1], self.n_out)
        if "b" in self.params:
            y += self.params["b"]  # in place: y is the matmul's fresh output
        return y

    def backward(self, dy):
        x2 = self.x.reshape(-1, self.n_in)
        dy2 = dy.reshape(-1, self.n_out)
        self.grads["W"] += x2.T @ dy2
        if "b" in self.params:
            self.grads["b"] += dy2.sum(axis=0)
        return (dy2 @ self.params["W"].T).reshape(self.x.shape)

    def flops(self, n_tokens=1) -> int:
        """Multiply-accumulates of one forward over n_tokens tokens (the bias add is not counted)."""
        return n_tokens * self.n_in * self.n_out


class Embedding(Module):
    """y = W[idx]: a lookup table (num, dim). Backward scatters dy into the rows that were read."""

    def __init__(self, num, dim, rng, std=1.0, dtype=np.float32):
        super().__init__()
        check_range("num", num, 1, kind=int)
        check_range("dim", dim, 1, kind=int)
        _check_rng(rng)
        self.num, self.dim = num, dim
        self.add_param("W", (rng.standard_normal((num, dim)) * std).astype(dtype))

    def forward(self, idx):
        idx = np.asarray(idx)
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"Embedding needs integer indices, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num):
            raise ValueError(
                f"index out of range: got {idx.min()}..{idx.max()}, table has {self.num} rows"
            )
        self.idx = idx
        return self.params["W"][idx]

    def backward(self, dy):
        np.add.at(self.grads["W"], self.idx.reshape(-1), dy.reshape(-1, self.dim))
        # indices have no gradient


class LayerNorm(Module):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis (Ba et al. 2016).

    Backward with xhat = (x - mean) / std and g = dy * gamma:
        dx = (g - mean(g) - xhat * mean(g * xhat)) / std
    """

    def __init__(self, dim, eps=1e-5, dtype=np.float32):
        super().__init__()
        check_range("dim", dim, 1, kind=int)
        check_range("eps", eps, 0.0, low_open=True)
        self.dim, self.eps = dim, eps
        self.add_param("gamma", np.ones(dim, dtype=dtype))
        self.add_param("beta", np.zeros(dim, dtype=dtype))

    def forward(self, x):
        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        self.rstd = 1.0 / np.sqrt(var + self.eps)
        self.xhat = (x - mean) * self.rstd
        return self.xhat * self.params["gamma"] + self.params["beta"]

    def backward(self, dy):
        d = self.dim
        self.grads["gamma"] += (dy * self.xhat).reshape(-1, d).sum(axis=0)
        self.grads["beta"] += dy.reshape(-1, d).sum(axis=0)
        g = dy * self.params["gamma"]
        return (g - g.mean(-1, keepdims=True)
                - self.xhat * (g * self.xhat).mean(-1, keepdims=True)) * self.rstd


class GELU(Module):
    """y = x/2 (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi) (Hendrycks & Gimpel 2016, tanh form).

    The smooth activation of the non-spiking twin: it has no state and no weights.
    """

    C = float(np.sqrt(2.0 / np.pi))

    def forward(self, x):
        self.x = x
        self.th = np.tanh(self.C * (x + 0.044715 * x**3))
        return 0.5 * x * (1.0 + self.th)

    def backward(self, dy):
        x, th = self.x, self.th
        dinner = self.C * (1.0 + 3 * 0.044715 * x**2)
        return dy * (0.5 * (1.0 + th) + 0.5 * x * (1.0 - th**2) * dinner)


class Dropout(Module):
    """y = x * m / (1 - p) with m ~ Bernoulli(1 - p) while training; y = x in eval mode.

    Inverted dropout (Srivastava et al. 2014): the scaling keeps E[y] = x, so eval needs none.
    """

    def __init__(self, p, rng):
        super().__init__()
        check_range("p", p, 0.0, 1.0)
        if p >= 1.0:
            raise ValueError("p=1.0 is invalid: dropout must keep some units, use p < 1")
        _check_rng(rng)
        self.p, self.rng, self.training = p, rng, True

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        self.mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype) / (1.0 - self.p)
        return x * self.mask

    def backward(self, dy):
        return dy if self.mask is None else dy * self.mask


def softmax(x, axis=-1):
    """Numerically stable softmax: subtract the max before exp."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
