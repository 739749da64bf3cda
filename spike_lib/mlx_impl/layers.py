"""Basic layers in MLX with the NumPy layers' names, arguments and parameters; autodiff backward.

Taught in: notebooks/07_mlx_port.ipynb
"""

import math

import mlx.core as mx
import numpy as np
from mlx import nn

from spike_lib.core.config import check_range
from spike_lib.core.config import check_rng as _check_rng


class Linear(nn.Module):
    """y = x W + b over the last axis; W is stored (n_in, n_out) as in spike_lib.numpy_impl.

    Init: W ~ N(0, gain^2 / n_in), b = 0, drawn from the NumPy Generator rng in the same order
    as the NumPy layer, so the same seed gives the same weights in both ports.
    """

    def __init__(self, n_in, n_out, rng, bias=True, gain=1.0, dtype=mx.float32):
        super().__init__()
        check_range("n_in", n_in, 1, kind=int)
        check_range("n_out", n_out, 1, kind=int)
        _check_rng(rng)
        self.n_in, self.n_out = n_in, n_out
        std = gain / np.sqrt(n_in)
        w = (rng.standard_normal((n_in, n_out)) * std).astype(np.float32)
        self.W = mx.array(w).astype(dtype)
        if bias:
            self.b = mx.zeros((n_out,), dtype=dtype)

    def __call__(self, x):
        if x.shape[-1] != self.n_in:
            raise ValueError(f"Linear expects last dim {self.n_in}, got input shape {x.shape}")
        # one 2-D GEMM over every leading dim (as the NumPy Linear)
        y = (x.reshape(-1, self.n_in) @ self.W).reshape(*x.shape[:-1], self.n_out)
        return y + self.b if "b" in self else y

    def flops(self, n_tokens=1) -> int:
        """Multiply-accumulates of one forward over n_tokens tokens (the bias add is not counted)."""
        return n_tokens * self.n_in * self.n_out


class Embedding(nn.Module):
    """y = W[idx]: a lookup table (num, dim); autodiff scatters dy into the rows that were read."""

    def __init__(self, num, dim, rng, std=1.0, dtype=mx.float32):
        super().__init__()
        check_range("num", num, 1, kind=int)
        check_range("dim", dim, 1, kind=int)
        _check_rng(rng)
        self.num, self.dim = num, dim
        self.W = mx.array((rng.standard_normal((num, dim)) * std).astype(np.float32)).astype(dtype)

    def __call__(self, idx):
        idx = mx.array(idx)
        if not mx.issubdtype(idx.dtype, mx.integer):
            raise ValueError(f"Embedding needs integer indices, got dtype {idx.dtype}")
        return self.W[idx]


class LayerNorm(nn.Module):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis (Ba et al. 2016).

    var is the mean squared deviation (biased), as in the NumPy LayerNorm.
    """

    def __init__(self, dim, eps=1e-5, dtype=mx.float32):
        super().__init__()
        check_range("dim", dim, 1, kind=int)
        check_range("eps", eps, 0.0, low_open=True)
        self.dim, self.eps = dim, eps
        self.gamma = mx.ones((dim,), dtype=dtype)
        self.beta = mx.zeros((dim,), dtype=dtype)

    def __call__(self, x):
        # the fused kernel: the same formula in one pass (and its own vjp), ~30 % off a step
        return mx.fast.layer_norm(x, self.gamma, self.beta, self.eps)


class GELU(nn.Module):
    """y = x/2 (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi) (Hendrycks & Gimpel 2016, tanh form)."""

    C = math.sqrt(2.0 / math.pi)

    def __call__(self, x):
        return 0.5 * x * (1.0 + mx.tanh(self.C * (x + 0.044715 * x**3)))


class Dropout(nn.Module):
    """y = x * m / (1 - p) with m ~ Bernoulli(1 - p) while training; y = x in eval mode.

    The mask comes from MLX's random state (mx.random.seed), not from rng, which is accepted
    for the NumPy signature; a compiled step must list mx.random.state among its state.
    """

    def __init__(self, p, rng=None):
        super().__init__()
        check_range("p", p, 0.0, 1.0)
        if p >= 1.0:
            raise ValueError("p=1.0 is invalid: dropout must keep some units, use p < 1")
        self.p = p

    def __call__(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = mx.random.bernoulli(1.0 - self.p, x.shape)
        return x * keep.astype(x.dtype) / (1.0 - self.p)


def softmax(x, axis=-1):
    """Numerically stable softmax (mx.softmax subtracts the max)."""
    return mx.softmax(x, axis=axis)


def cross_entropy(logits, targets, ignore_index=None):
    """Mean cross-entropy over every position whose target is not ignore_index (a scalar).

    The same loss as spike_lib.numpy_impl.layers.cross_entropy; no dlogits: autodiff gives it.
    """
    targets = mx.array(targets)
    if tuple(logits.shape[:-1]) != tuple(targets.shape):
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree: "
            "targets must have the shape of logits without the last (class) axis"
        )
    keep = mx.ones(targets.shape, mx.bool_) if ignore_index is None else targets != ignore_index
    tk = mx.where(keep, targets, 0)
    logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    nll = -mx.take_along_axis(logp, tk[..., None], axis=-1)[..., 0]
    n = mx.maximum(keep.sum(), 1).astype(logits.dtype)
    return (nll * keep.astype(logits.dtype)).sum() / n


def weighted_cross_entropy(logits, targets, weights):
    """sum_i w_i CE_i (a scalar), as spike_lib.core.scoring.weighted_cross_entropy; positions
    of weight 0 count in neither (their target may be IGNORE_INDEX)."""
    targets = mx.array(targets)
    weights = (weights.astype(logits.dtype) if isinstance(weights, mx.array)
               else mx.array(np.asarray(weights), dtype=logits.dtype))  # no float32 detour
    if tuple(logits.shape[:-1]) != tuple(targets.shape) or targets.shape != weights.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)} and weights "
            f"{tuple(weights.shape)} disagree: targets and weights must have the shape of "
            "logits without the last (class) axis"
        )
    tk = mx.where(weights != 0, targets, 0)
    logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    nll = -mx.take_along_axis(logp, tk[..., None], axis=-1)[..., 0]
    return (nll * weights).sum()
