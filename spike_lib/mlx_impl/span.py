"""Extractive QA with a span head in MLX: the names of spike_lib.numpy_impl.span, autodiff.

Taught in: notebooks/09b_span_qa.ipynb
"""

import mlx.core as mx
import numpy as np
from mlx import nn

from spike_lib.core.config import check_choice, check_range
from spike_lib.core.constants import NEG_INF as NEG
from spike_lib.core.constants import SPAN_WINDOWS as WINDOWS


def shift_window(h, window):
    """(B, L, window D): h_i alone (window 1) or [h_(i-1), h_i, h_(i+1)] with zeros at the ends."""
    if window == 1:
        return h
    pad = mx.zeros_like(h[:, :1])
    prev = mx.concatenate([pad, h[:, :-1]], axis=1)
    nxt = mx.concatenate([h[:, 1:], pad], axis=1)
    return mx.concatenate([prev, h, nxt], axis=-1)


def prompt_mean(h, context):
    """q (B, D): the mean of h over the positions before each row's first context position."""
    prompt = (mx.cumsum(context.astype(mx.int32), axis=1) == 0).astype(h.dtype)  # (B, L)
    n = mx.maximum(prompt.sum(axis=1, keepdims=True), 1.0)
    return (prompt[..., None] * h).sum(axis=1) / n


class SpanHead(nn.Module):
    """logits_i = [h_(i-1), h_i, h_(i+1)] W (window 3) or h_i W (window 1), (B, L, 2);
    question=True adds h_i^T U_k q with q the mean of h over the prompt.

    The port of spike_lib.numpy_impl.span.SpanHead: the same parameter names W (and U), zero
    at start.
    """

    def __init__(self, n_embd, window=3, rng=None, question=False):
        super().__init__()
        check_range("n_embd", n_embd, 1, kind=int)
        check_choice("window", window, WINDOWS)
        self.n_embd, self.window, self.question = n_embd, window, bool(question)
        self.W = mx.zeros((window * n_embd, 2))
        if self.question:
            self.U = mx.zeros((2, n_embd, n_embd))

    def __call__(self, h, valid=None, context=None):
        if h.ndim != 3 or h.shape[-1] != self.n_embd:
            raise ValueError(f"the span head reads hidden states (B, L, {self.n_embd}), got "
                             f"shape {tuple(h.shape)}: is the head for another base model?")
        if valid is not None:
            h = h * valid[..., None].astype(h.dtype)
        logits = shift_window(h, self.window) @ self.W  # (B, L, 2)
        if not self.question:
            return logits
        if context is None:
            raise ValueError("this span head reads the question (question=True): pass "
                             "context, the (B, L) mask of context tokens")
        uq = mx.einsum("kde,be->bkd", self.U, prompt_mean(h, context))  # U_k q, (B, 2, D)
        return logits + mx.einsum("bld,bkd->blk", h, uq)


def span_loss(logits, mask, start, end):
    """Mean over rows with start >= 0 of (CE(start) + CE(end)) / 2 over the context positions."""
    rows = (start >= 0).astype(logits.dtype)  # (B,)
    total = mx.array(0.0, dtype=logits.dtype)
    for k, gold in ((0, start), (1, end)):
        z = mx.where(mask, logits[..., k], NEG)  # (B, L)
        logp = z - mx.logsumexp(z, axis=-1, keepdims=True)
        pick = mx.take_along_axis(logp, mx.maximum(gold, 0)[:, None], axis=1)[:, 0]
        total = total - (pick * rows).sum() / 2
    return total / mx.maximum(rows.sum(), 1.0)


class SpanQA(nn.Module):
    """A SpikeLLM ("base") and a SpanHead ("head"): logits = head(base.hidden(idx)), (B, L, 2)."""

    def __init__(self, base, window=3, rng=None, question=False):
        super().__init__()
        self.cfg = base.cfg
        self.base = base
        self.head = SpanHead(base.cfg.n_embd, window, rng, question)

    def __call__(self, idx, valid=None, context=None):
        if valid is not None and not isinstance(valid, mx.array):
            valid = mx.array(np.asarray(valid))
        if context is not None and not isinstance(context, mx.array):
            context = mx.array(np.asarray(context))
        return self.head(self.base.hidden(idx), valid, context)

    def named_parameters(self):
        from mlx.utils import tree_flatten

        return tree_flatten(self.parameters())

    def state_dict(self) -> dict:
        return {name: np.array(p) for name, p in self.named_parameters()}


def loss_fn(model, x, valid, mask, start, end):
    return span_loss(model(x, valid, mask), mask, start, end)


def make_span_step(model, optimizer, clip=1.0, compile=True):
    """step(x, valid, mask, start, end) -> (loss, grad_norm): value_and_grad, clip, update.

    As spike_lib.mlx_impl.train.make_step, for the span loss; only unfrozen parameters move.
    """
    from spike_lib.mlx_impl.train import clip_and_update

    optimizer.init(model.trainable_parameters())
    state = [model.state, optimizer.state, mx.random.state]
    value_and_grad = nn.value_and_grad(model, loss_fn)

    def step(x, valid, mask, start, end):
        loss, grads = value_and_grad(model, x, valid, mask, start, end)
        return clip_and_update(model, optimizer, loss, grads, clip)

    return mx.compile(step, inputs=state, outputs=state) if compile else step
