"""Training and evaluating the NumPy SpikeLLM on token-id arrays (any tokenizer).

Taught in: notebooks/06_spikellm_training.ipynb
"""

import math

import numpy as np

from spike_lib.core.config import check_range
from spike_lib.data.batches import IGNORE_INDEX, batch_iterator
from spike_lib.numpy_impl.layers import cross_entropy
from spike_lib.numpy_impl.optim import AdamW, clip_grad_norm, cosine_lr


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the weights were not updated."""


def as_ids(ids, vocab_size=None):
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"token ids must be a 1-D integer array, got shape {ids.shape} and "
                         f"dtype {ids.dtype}: encode the text first")
    if vocab_size is not None and ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids range over {ids.min()}..{ids.max()} but the model has "
                         f"vocab_size={vocab_size}: build the model with the tokenizer's size")
    return ids


def as_batches(train_data, cfg, batch_size, rng):
    """An iterator of (x, y) batches: train_data itself, or random windows of a 1-D id array."""
    if not isinstance(train_data, (np.ndarray, list, tuple)):
        return train_data
    if not isinstance(rng, np.random.Generator):
        raise TypeError("pass rng=np.random.default_rng(seed): batches are drawn from it")
    ids = as_ids(train_data, cfg.vocab_size)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens to train on, got {len(ids)}")
    return batch_iterator(ids, min(cfg.block_size, len(ids) - 1), batch_size, rng)


def train_step(model, opt, x, y, lr=None, clip=1.0) -> dict:
    """Forward, loss, backward, clip, AdamW update. Raises TrainingDiverged before a bad update.

    Targets equal to IGNORE_INDEX (-1, e.g. a metadata prefix) count neither in loss nor grad.
    """
    loss, dlogits = cross_entropy(model(x), y, ignore_index=IGNORE_INDEX)
    if not math.isfinite(loss):
        raise TrainingDiverged(f"the loss is {loss}")
    model.zero_grad()
    model.backward(dlogits)
    norm = clip_grad_norm(model, clip) if clip else float("nan")
    if clip and not math.isfinite(norm):
        raise TrainingDiverged(f"the gradient norm is {norm}")
    opt.step(lr)
    return {"loss": loss, "grad_norm": norm}


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
        loss, _ = cross_entropy(model(ids[rows]), ids[rows + 1])
        total += loss * rows.size
        count += rows.size
    if len(full) < len(starts):  # the last, shorter window
        s = starts[-1]
        x, y = ids[s:-1][None], ids[s + 1:][None]
        loss, _ = cross_entropy(model(x), y)
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


def train(model, train_data, val_ids=None, steps=200, batch_size=16, lr=3e-3, min_lr=None,
          warmup=20, weight_decay=0.01, clip=1.0, rng=None, eval_every=50, val_tokens=4096,
          ckpt_dir=None, tokenizer=None, ckpt_every=None, callback=None) -> dict:
    """Train with AdamW, warmup + cosine learning rate and gradient clipping.

    train_data: a 1-D array of token ids (random windows of block_size tokens are drawn from
    it with spike_lib.data.batches.batch_iterator and rng), or any iterator of (x, y) batches.

    Returns a history dict: step, loss, grad_norm, lr (every step) and val_step, val_loss
    (every eval_every steps and at the end, on the first val_tokens tokens of val_ids).
    ckpt_dir: save a checkpoint there every ckpt_every steps (default eval_every) and at the
    end. A NaN or infinite loss stops training with TrainingDiverged *before* that update: the
    model keeps the last good weights, and the last checkpoint on disk is never overwritten.
    callback(step, record) is called after every step (for progress bars and plots).
    """
    check_range("steps", steps, 1, kind=int)
    check_range("batch_size", batch_size, 1, kind=int)
    check_range("eval_every", eval_every, 1, kind=int)
    train_data = as_batches(train_data, model.cfg, batch_size, rng)
    val_ids = None if val_ids is None else as_ids(val_ids, model.cfg.vocab_size)[:val_tokens]
    min_lr = lr * 0.1 if min_lr is None else min_lr
    ckpt_every = eval_every if ckpt_every is None else ckpt_every
    opt = AdamW(model, lr=lr, weight_decay=weight_decay)
    hist = {"step": [], "loss": [], "grad_norm": [], "lr": [], "val_step": [], "val_loss": [],
            "last_checkpoint_step": None}
    model.train(True)
    for step in range(steps):
        x, y = next(train_data)
        lr_t = cosine_lr(step, lr, warmup, steps, min_lr)
        try:
            rec = train_step(model, opt, x, y, lr_t, clip)
        except TrainingDiverged as err:
            saved = hist["last_checkpoint_step"]
            where = ("no checkpoint was saved yet" if saved is None else
                     f"the last good checkpoint, {ckpt_dir}, holds the weights after {saved} "
                     "updates")
            raise TrainingDiverged(
                f"training stopped at step {step} (counting from 0): {err}. The model keeps its "
                f"weights after {step} updates; {where}. Lower the learning rate (lr={lr}) or "
                f"the gradient clip (clip={clip}), or check the data") from None
        rec["lr"] = lr_t
        for k in ("loss", "grad_norm", "lr"):
            hist[k].append(rec[k])
        hist["step"].append(step)
        last = step == steps - 1
        if val_ids is not None and ((step + 1) % eval_every == 0 or last):
            hist["val_step"].append(step)
            hist["val_loss"].append(evaluate(model, val_ids, batch_size=batch_size)["loss"])
            model.train(True)
        if ckpt_dir is not None and ((step + 1) % ckpt_every == 0 or last):
            from spike_lib.train.checkpoint import save_checkpoint

            save_checkpoint(ckpt_dir, model, tokenizer, opt, meta={"step": step + 1,
                                                                   "loss": rec["loss"]})
            hist["last_checkpoint_step"] = step + 1
        if callback is not None:
            callback(step, rec)
    model.train(False)
    return hist


def benchmark_train_step(cfg, batch_size=8, repeats=3, seed=0) -> dict:
    """Median time of one training step (forward, backward, AdamW) on random tokens.

    Returns step_s, tokens_per_s and model_gflops_per_s = train_step_flops / step_s, to be
    compared with spike_lib.train.bench.numpy_matmul_gflops() measured in the same run.
    """
    from spike_lib.train.bench import median_seconds
    from spike_lib.numpy_impl.model import SpikeLLM, train_step_flops

    rng = np.random.default_rng(seed)
    model = SpikeLLM(cfg, rng)
    opt = AdamW(model, lr=1e-4)
    x = rng.integers(0, cfg.vocab_size, (batch_size, cfg.block_size))
    y = rng.integers(0, cfg.vocab_size, (batch_size, cfg.block_size))
    step_s = median_seconds(lambda: train_step(model, opt, x, y), repeats)
    return {"step_s": step_s, "tokens_per_s": x.size / step_s,
            "model_gflops_per_s": train_step_flops(cfg, batch_size) / step_s / 1e9}
