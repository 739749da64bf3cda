"""Training and evaluating the NumPy SpikeLLM on token-id arrays (any tokenizer).

Taught in: notebooks/06_spikellm_training.ipynb
"""

import math

import numpy as np

from spike_lib.core import checkpoint_format
from spike_lib.core.config import check_range
from spike_lib.core.energy import train_step_flops
from spike_lib.core.scoring import (  # noqa: F401
    as_ids,
    bits_per_char,
    cross_entropy,
    evaluate,
    weighted_cross_entropy,
)
from spike_lib.core.training import TrainingDiverged, median_seconds
from spike_lib.data.batches import IGNORE_INDEX, as_batches
from spike_lib.numpy_impl.optim import AdamW, clip_grad_norm, cosine_lr


def train_step(model, opt, x, y, lr=None, clip=1.0, weights=None, parallel=None) -> dict:
    """Forward, loss, backward, clip, AdamW update. Raises TrainingDiverged before a bad update.

    Targets equal to IGNORE_INDEX (-1, e.g. a metadata prefix) count neither in loss nor grad.
    weights (B, L): the loss is sum(weights * CE) instead of the mean (weighted_cross_entropy).
    parallel: the batch is split between this many threads (spike_lib.numpy_impl.parallel;
    None: as many as the usable cores, when the batch divides; 1: one thread). The loss and
    gradients are the whole batch's either way, to float rounding.
    """
    from spike_lib.core.blas import usable_cores
    from spike_lib.numpy_impl import parallel as par

    if parallel is None:
        parallel = usable_cores() if par.can_split(model) else 1
    parts = par.batch_parts(len(x), parallel)
    x, y = np.asarray(x), np.asarray(y)
    loss_fn = cross_entropy_ignoring if weights is None else weighted_cross_entropy
    if parts > 1:
        loss = par.loss_and_grads(model, x, y, loss_fn, weights, parts)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the loss is {loss}")
    else:
        loss, dlogits = loss_fn(model(x), y) if weights is None else loss_fn(model(x), y, weights)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the loss is {loss}")
        model.zero_grad()
        model.backward(dlogits)
    norm = clip_grad_norm(model, clip) if clip else float("nan")
    if clip and not math.isfinite(norm):
        raise TrainingDiverged(f"the gradient norm is {norm}")
    opt.step(lr)
    return {"loss": loss, "grad_norm": norm}


def cross_entropy_ignoring(logits, y):
    """cross_entropy with the IGNORE_INDEX targets skipped (the training loss)."""
    return cross_entropy(logits, y, ignore_index=IGNORE_INDEX)


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
            checkpoint_format.save_checkpoint(ckpt_dir, model, tokenizer, opt, meta={"step": step + 1,
                                                                   "loss": rec["loss"]})
            hist["last_checkpoint_step"] = step + 1
        if callback is not None:
            callback(step, rec)
    model.train(False)
    return hist


def benchmark_train_step(cfg, batch_size=8, repeats=3, seed=0, parallel=None) -> dict:
    """Median time of one training step (forward, backward, AdamW) on random tokens.

    parallel: as train_step's (None: the batch split over the usable cores; 1: one thread).
    Returns step_s, tokens_per_s and model_gflops_per_s = train_step_flops / step_s, to be
    compared with spike_lib.train.bench.numpy_matmul_gflops() measured in the same run.
    """
    from spike_lib.numpy_impl.model import SpikeLLM

    rng = np.random.default_rng(seed)
    model = SpikeLLM(cfg, rng)
    opt = AdamW(model, lr=1e-4)
    x = rng.integers(0, cfg.vocab_size, (batch_size, cfg.block_size))
    y = rng.integers(0, cfg.vocab_size, (batch_size, cfg.block_size))
    step_s = median_seconds(lambda: train_step(model, opt, x, y, parallel=parallel), repeats)
    return {"step_s": step_s, "tokens_per_s": x.size / step_s,
            "model_gflops_per_s": train_step_flops(cfg, batch_size) / step_s / 1e9}
