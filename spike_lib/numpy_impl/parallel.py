"""One NumPy training step on every core: the batch split between replicas that share the weights.

NumPy runs its element-wise work (the LIF loops, LayerNorm, the attention's masks) on one
thread; only the matmuls use every core, through OpenBLAS. So during a step one core idles
about half of the time. Here P threads each run forward and backward on 1/P of the batch,
each with a one-thread OpenBLAS; the parts' gradients are then combined into the model's,
weighted by their token counts, which gives the whole batch's mean loss and gradient (to
float rounding). The replicas are shallow copies of the model: the same parameter arrays
(read only during forward and backward), their own gradient arrays and caches.
Taught in: notebooks/07b_speed_and_generation.ipynb
"""

import copy
import ctypes
import glob
import os
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from spike_lib.numpy_impl.module import Module

_POOL = {}
_REPLICAS = weakref.WeakKeyDictionary()


def _find_local_threads():
    """NumPy's OpenBLAS openblas_set_num_threads_local (per calling thread), or None."""
    for path in sorted(glob.glob(os.path.dirname(np.__file__) + ".libs/lib*openblas*.so*")):
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_int
        return fn
    return None


_LOCAL_THREADS = _find_local_threads()


def batch_parts(batch_size, cores) -> int:
    """The most parts, up to cores, into which batch_size splits evenly (1: no split)."""
    return max(p for p in range(1, max(1, min(cores, batch_size)) + 1) if batch_size % p == 0)


def replica(module, memo=None) -> Module:
    """A shallow copy of module (and of every sub-module): the same params dict, so the same
    weights, and its own zeroed gradients; attributes that name a sub-module name its copy.
    A module met twice (shared, or a wrapper that lists its parent) is copied once (memo)."""
    memo = {} if memo is None else memo
    if id(module) in memo:
        return memo[id(module)]
    r = memo[id(module)] = copy.copy(module)
    r.grads = {k: np.zeros_like(v) for k, v in module.grads.items()}
    r.modules = {k: replica(c, memo) for k, c in module.modules.items()}
    for name, value in vars(module).items():
        if isinstance(value, Module) and id(value) in memo:
            setattr(r, name, memo[id(value)])
        elif isinstance(value, list) and value and all(id(v) in memo for v in value):
            setattr(r, name, [memo[id(v)] for v in value])
    return r


def can_split(model) -> bool:
    """False when a part would need a shared random stream (dropout on), when OpenBLAS cannot
    run one thread per caller (then P parts would fight over the BLAS threads), or for a view
    that is not a Module (lora.Trainable: its parameters are a subset of the model's)."""
    if _LOCAL_THREADS is None or not isinstance(model, Module):
        return False
    return not any(getattr(m, "p", 0) > 0 and getattr(m, "training", False) and hasattr(m, "rng")
                   for _, m in model.named_modules())


def _replicas(model, n):
    reps = _REPLICAS.get(model, [])
    fresh = [r for r in reps if all(r_g.shape == p.shape and r_g.dtype == p.dtype for (
        _, p, _), (_, _, r_g) in zip(model.named_parameters(), r.named_parameters()))]
    while len(fresh) < n:
        fresh.append(replica(model))
    _REPLICAS[model] = fresh
    return fresh[:n]


def loss_and_grads(model, x, y, loss_fn, weights=None, parts=2) -> float:
    """Forward and backward of the batch in `parts` threads; model.grads end up holding the
    whole batch's gradient. Returns the loss.

    loss_fn(logits, y[, w]) -> (loss, dlogits): a token mean with weights=None (the parts are
    weighted by their counts of targets that are not IGNORE_INDEX), a sum of w * CE otherwise
    (the parts' sums add up).
    """
    from spike_lib.data.batches import IGNORE_INDEX

    models = [model, *_replicas(model, parts - 1)]
    h = x.shape[0] // parts
    pool = _POOL.get(parts - 1)
    if pool is None:
        pool = _POOL[parts - 1] = ThreadPoolExecutor(parts - 1, thread_name_prefix="spike-step")

    def part(i):
        before = _LOCAL_THREADS(1)  # this thread's OpenBLAS calls run on this thread alone
        try:
            m, rows = models[i], slice(i * h, (i + 1) * h)
            args = (y[rows],) if weights is None else (y[rows], weights[rows])
            loss, dlogits = loss_fn(m(x[rows]), *args)
            m.zero_grad()
            m.backward(dlogits)
            n = 1.0 if weights is not None else float((y[rows] != IGNORE_INDEX).sum())
            return loss, n
        finally:
            _LOCAL_THREADS(before)

    futures = [pool.submit(part, i) for i in range(1, parts)]
    try:
        first = part(0)
    finally:
        for f in futures:  # every part ends before an error leaves this function
            f.exception()
    results = [first] + [f.result() for f in futures]
    total = max(sum(n for _, n in results), 1.0) if weights is None else 1.0  # as cross_entropy
    for i, (_, n) in enumerate(results):  # model.grads = sum_i (n_i / N) grads_i
        scale = n / total
        for (_, _, g), (_, _, g_i) in zip(model.named_parameters(), models[i].named_parameters()):
            if i == 0:
                g *= scale
            else:
                g += g_i * scale
    return sum(loss * n for loss, n in results) / total
