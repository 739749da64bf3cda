"""Scoring a language model, for both backends: token-id checks, cross-entropy, windowed
evaluation (loss, perplexity, bits per token) and bits per character.

evaluate reads the model only through model.cfg, model(x) -> logits (converted with np.asarray),
named_modules() and train(mode), so the NumPy and the MLX SpikeLLM share it.
Taught in: notebooks/06_spikellm_training.ipynb
"""

import math

import numpy as np

from spike_lib.core.config import check_range


def as_ids(ids, vocab_size=None):
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"token ids must be a 1-D integer array, got shape {ids.shape} and "
                         f"dtype {ids.dtype}: encode the text first")
    if vocab_size is not None and ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids range over {ids.min()}..{ids.max()} but the model has "
                         f"vocab_size={vocab_size}: build the model with the tokenizer's size")
    return ids


def cross_entropy(logits, targets, ignore_index=None):
    """Mean cross-entropy over every position; returns (loss, dlogits).

    logits (..., C), targets (...) integer classes. Positions whose target equals
    ignore_index count neither in the loss nor in the mean. dlogits = (softmax - onehot) / N.
    """
    logits = np.asarray(logits)
    targets = np.asarray(targets)
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {logits.shape} and targets {targets.shape} disagree: "
            "targets must have the shape of logits without the last (class) axis"
        )
    n_cls = logits.shape[-1]
    z = logits.reshape(-1, n_cls)
    t = targets.reshape(-1)
    keep = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    if np.any((t[keep] < 0) | (t[keep] >= n_cls)):
        raise ValueError(f"targets must lie in [0, {n_cls - 1}] (or equal ignore_index)")
    n = max(int(keep.sum()), 1)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    tk = np.where(keep, t, 0)
    rows = np.arange(t.size)
    loss = -float(logp[rows, tk][keep].sum()) / n
    dz = np.exp(logp)
    dz[rows, tk] -= 1.0
    dz *= keep[:, None] / n
    return loss, dz.reshape(logits.shape).astype(logits.dtype)


def weighted_cross_entropy(logits, targets, weights):
    """sum_i w_i CE_i over positions i; returns (loss, dlogits = w_i (softmax_i - onehot_i)).

    weights (...) as targets; a position of weight 0 counts in neither (its target may be
    IGNORE_INDEX). With w_i = 1/N on N positions this is cross_entropy's mean.
    """
    logits, targets = np.asarray(logits), np.asarray(targets)
    weights = np.asarray(weights)
    if logits.shape[:-1] != targets.shape or targets.shape != weights.shape:
        raise ValueError(f"logits {logits.shape}, targets {targets.shape} and weights "
                         f"{weights.shape} disagree: targets and weights must have the shape "
                         "of logits without the last (class) axis")
    n_cls = logits.shape[-1]
    z = logits.reshape(-1, n_cls)
    t, w = targets.reshape(-1), weights.reshape(-1).astype(logits.dtype)
    keep = w != 0
    if np.any((t[keep] < 0) | (t[keep] >= n_cls)):
        raise ValueError(f"targets of a nonzero weight must lie in [0, {n_cls - 1}]")
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    tk = np.where(keep, t, 0)
    rows = np.arange(t.size)
    loss = -float((w * logp[rows, tk]).sum())
    dz = np.exp(logp)
    dz[rows, tk] -= 1.0
    dz *= w[:, None]
    return loss, dz.reshape(logits.shape).astype(logits.dtype)


def bits_per_char(total_nats, n_chars) -> float:
    """Bits per character: total nats / (ln 2 x characters), comparable across tokenizers."""
    check_range("n_chars", n_chars, 1, kind=int)
    return total_nats / (math.log(2) * n_chars)


def evaluate(model, ids, n_chars=None, batch_size=16) -> dict:
    """Loss over every token of ids after the first, in windows of block_size tokens.

    Window k reads ids[kL : kL + L] and predicts ids[kL + 1 : kL + L + 1], so each token but the
    first is predicted once, with 0 to L - 1 tokens of context. Returns loss (nats per token),
    perplexity exp(loss), bits_per_token, total_nats, n_tokens and, given n_chars (the number of
    characters those predicted tokens decode to), bpc = total_nats / (ln 2 n_chars).
    """
    check_range("batch_size", batch_size, 1, kind=int)
    ids = as_ids(ids, model.cfg.vocab_size)
    if len(ids) < 2:
        raise ValueError("evaluate needs at least 2 tokens: one to read, one to predict")
    n_ctx = model.cfg.block_size
    starts = np.arange(0, len(ids) - 1, n_ctx)
    total, count = 0.0, 0
    was_training = [getattr(m, "training", None) for _, m in model.named_modules()]
    model.train(False)
    full = [s for s in starts if s + n_ctx + 1 <= len(ids)]
    for b in range(0, len(full), batch_size):  # full windows, batched
        rows = np.asarray(full[b: b + batch_size])[:, None] + np.arange(n_ctx)
        loss, _ = cross_entropy(np.asarray(model(ids[rows])), ids[rows + 1])
        total += loss * rows.size
        count += rows.size
    if len(full) < len(starts):  # the last, shorter window
        s = starts[-1]
        x, y = ids[s:-1][None], ids[s + 1:][None]
        loss, _ = cross_entropy(np.asarray(model(x)), y)
        total += loss * x.size
        count += x.size
    for (_, m), mode in zip(model.named_modules(), was_training):
        if mode is not None:
            m.training = mode
    loss = total / count
    out = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
           "bits_per_token": loss / math.log(2), "total_nats": total, "n_tokens": count}
    if n_chars is not None:
        out["bpc"] = bits_per_char(total, n_chars)
    return out
