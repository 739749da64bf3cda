"""Training the MLX SpikeLLM: nn.value_and_grad, AdamW, clipping, and an mx.compile'd step.

Taught in: notebooks/07_mlx_port.ipynb
"""

import math

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from mlx import nn
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from spike_lib.core import scoring
from spike_lib.core.config import check_range
from spike_lib.core.energy import train_step_flops
from spike_lib.core.training import TrainingDiverged, cosine_lr, median_seconds, token_weight
from spike_lib.data.batches import IGNORE_INDEX, as_batches
from spike_lib.mlx_impl.layers import cross_entropy, weighted_cross_entropy


def average_over_ranks(loss, grads, n_tokens, group):
    """(global mean loss, global mean gradients) from this rank's token-mean loss and grads.

    Runs inside the compiled step (mx.compile traces the all_sum): one all_sum for the token
    count, one for the loss and nn.average_gradients for the gradients (packed into few
    messages). Every rank gets the same sums, so every rank applies the same update.
    """
    size = group.size()
    w = token_weight(n_tokens, mx.distributed.all_sum(n_tokens, group=group), size)
    grads = tree_map(lambda g: g * w.astype(g.dtype), grads)
    grads = nn.average_gradients(grads, group=group)
    loss = mx.distributed.all_sum(loss * w.astype(loss.dtype), group=group) / size
    return loss, grads


class AdamW(optim.AdamW):
    """AdamW with bias correction (Loshchilov & Hutter 2019), as spike_lib.numpy_impl.optim.AdamW:

        m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,  p <- p - lr wd p  (matrices only)
        p <- p - lr m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)
    Vectors (biases, LayerNorm gains) are not decayed, as in the NumPy default_decay.
    """

    def __init__(self, learning_rate=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        check_range("lr", learning_rate, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        super().__init__(learning_rate, list(betas), eps, weight_decay, bias_correction=True)

    def state_dict(self) -> dict:
        """Moments and step count in the NumPy AdamW's format: t, m.<name>, v.<name>."""
        state = {"t": np.array(int(self.state.get("step", 0)))}
        for key, value in tree_flatten({k: v for k, v in self.state.items()
                                        if k not in ("step", "learning_rate")}):
            name, moment = key.rsplit(".", 1)
            state[f"{moment}.{name}"] = np.array(value)
        return state

    def load_state_dict(self, state):
        """Load a NumPy AdamW state (e.g. a checkpoint's optimizer.npz) into an initialised one."""
        own = {k for k, _ in tree_flatten(self.state) if k not in ("step", "learning_rate")}
        got = {f"{k[2:]}.{k[0]}" for k in state if k[:2] in ("m.", "v.")}
        if not self._initialized or got != own:
            raise ValueError(f"optimizer state does not fit: missing {sorted(own - got)[:5]}, "
                             f"unexpected {sorted(got - own)[:5]}; call optimizer.init(model."
                             "trainable_parameters()) (make_step does) before loading")
        tree = tree_unflatten([(k, mx.array(state[f"{k[-1]}.{k[:-2]}"])) for k in sorted(own)])
        self.state.update(tree)
        self.state["step"] = mx.array(int(state["t"]), mx.uint64)
        return self

    def apply_single(self, gradient, parameter, state):
        if parameter.ndim < 2:
            return optim.Adam.apply_single(self, gradient, parameter, state)
        return super().apply_single(gradient, parameter, state)


def loss_fn(model, x, y):
    """Mean cross-entropy of the next-token logits; targets equal to IGNORE_INDEX are skipped."""
    return cross_entropy(model(x), y, ignore_index=IGNORE_INDEX)


def weighted_loss_fn(model, x, y, w):
    """sum(w * cross-entropy) of the next-token logits: per-position weights (B, L), e.g. the
    answer and context weights of spike_lib.train.prompt.qa_batch."""
    return weighted_cross_entropy(model(x), y, w)


def loss_and_grads(model, x, y):
    """(loss, grads): grads is a tree shaped like model.parameters() (MLX autodiff)."""
    return nn.value_and_grad(model, loss_fn)(model, x, y)


def grad_norm(grads) -> mx.array:
    """The global L2 norm of every gradient together (a scalar array)."""
    return mx.sqrt(sum(mx.square(g).sum() for _, g in tree_flatten(grads)))


def clip_and_update(model, optimizer, loss, grads, clip) -> tuple:
    """(loss, grad norm) after clipping grads to norm clip (None: no clip) and updating model;
    a non-finite loss or norm keeps the weights as they were (selected with mx.where)."""
    norm = grad_norm(grads)
    if clip:
        scale = mx.minimum(1.0, clip / (norm + 1e-12))  # as numpy_impl's clip_grad_norm
        grads = tree_map(lambda g: g * scale.astype(g.dtype), grads)
    old = model.trainable_parameters()
    optimizer.update(model, grads)
    ok = mx.isfinite(loss) & mx.isfinite(norm)
    model.update(tree_map(lambda new, prev: mx.where(ok, new, prev),
                          model.trainable_parameters(), old))
    return loss, norm


def parallel_parts(batch_size, cores=None) -> int:
    """Into how many parts make_step splits a batch: the most parts, up to the usable cores
    (spike_lib.core.blas.usable_cores), that divide batch_size; 1 off the CPU."""
    from spike_lib.core.blas import usable_cores

    if mx.default_device() != mx.cpu:
        return 1
    cores = usable_cores() if cores is None else cores
    return max(p for p in range(1, min(cores, batch_size) + 1) if batch_size % p == 0)


def make_step(model, optimizer, clip=1.0, compile=True, group=None, objective=None,
              parallel=None):
    """One training step step(x, y) -> (loss, grad_norm), compiled with mx.compile by default.

    x, y: (B, L) token ids and targets (NumPy arrays are checked, then converted).
    objective(model, x, y, *extra): the loss (default loss_fn); step(x, y, *extra) passes the
    extra arrays on, e.g. objective=weighted_loss_fn and step(x, y, w).
    group: an mx.distributed group of R > 1 processes, each passing its slice of one global
    batch: the loss and gradients are averaged over the ranks (spike_lib.train.distributed,
    weighted by token counts) inside the compiled step, before clipping, so the clipped norm
    and the update are the global batch's and every rank applies the same update.
    parallel: on the CPU, the batch is split into P parts (P = parallel_parts(B): up to the
    usable cores; parallel=1 turns it off), each part's loss and gradients are computed on its
    own CPU stream (a thread) with a one-thread OpenBLAS, and combined weighted by their
    token counts: the same mean loss and gradients as the whole batch (to float rounding).
    MLX's CPU kernels for element-wise work run on one thread, so one stream leaves a core
    idle outside the matmuls; P streams keep every core busy (chapter 7b measures it).
    Only for the default objective, one process and compile=True; the step is evaluated
    before it returns.
    The compiled function reads and writes model.state, optimizer.state and mx.random.state
    (dropout); optimizer.init is called first so its state exists before it is captured. A
    trace fixes Python flags, so train and eval mode (dropout on or off) get one trace each. A
    non-finite loss or gradient norm leaves the weights as they were (selected with mx.where);
    the optimizer's moments are not restored, so build a new optimizer before going on.
    """
    if objective is not None and group is not None and group.size() > 1:
        raise ValueError("make_step averages a token-mean loss over ranks: a custom objective "
                         "with a distributed group is not supported; train on one process")
    if parallel is not None:
        check_range("parallel", parallel, 1, kind=int)
    optimizer.init(model.trainable_parameters())
    state = [model.state, optimizer.state, mx.random.state]
    value_and_grad = nn.value_and_grad(model, objective or loss_fn)
    can_split = (compile and objective is None and (group is None or group.size() == 1)
                 and parallel != 1)

    def update(loss, grads):
        return clip_and_update(model, optimizer, loss, grads, clip)

    def build():
        def step(x, y, *extra):
            loss, grads = value_and_grad(model, x, y, *extra)
            if group is not None and group.size() > 1:
                n_tokens = (y != IGNORE_INDEX).sum().astype(mx.float32)
                loss, grads = average_over_ranks(loss, grads, n_tokens, group)
            return update(loss, grads)

        return mx.compile(step, inputs=state, outputs=state) if compile else step

    def build_part():
        def part(x, y):  # one part's summed loss and gradients, and its token count
            loss, grads = value_and_grad(model, x, y)
            n = (y != IGNORE_INDEX).sum().astype(mx.float32)
            return loss * n, n, tree_map(lambda g: g * n.astype(g.dtype), grads)

        return mx.compile(part, inputs=state, outputs=state)

    streams = []

    def split_step(fn, x, y, parts):
        from spike_lib.core.blas import mlx_blas_threads

        while len(streams) < parts:
            streams.append(mx.new_stream(mx.cpu))
        h = x.shape[0] // parts
        with mlx_blas_threads(1):
            outs = []
            for i in range(parts):
                with mx.stream(streams[i]):
                    outs.append(fn(x[i * h:(i + 1) * h], y[i * h:(i + 1) * h]))
            n = sum(o[1] for o in outs)
            grads = tree_map(lambda *g: sum(g) / n.astype(g[0].dtype), *[o[2] for o in outs])
            loss, norm = update(sum(o[0] for o in outs) / n, grads)
            mx.eval(loss, norm, model.state, optimizer.state)
        return loss, norm

    traced = {}  # a trace bakes in Python flags such as model.training: one trace per mode

    def checked(x, y, *extra):
        if not isinstance(x, mx.array):  # token ids in range, read before the compiled step
            x = model.check_idx(x)
        y, *extra = (a if isinstance(a, mx.array) else mx.array(np.asarray(a)) for a in (y, *extra))
        parts = (parallel_parts(x.shape[0]) if parallel is None else
                 max(p for p in range(1, parallel + 1) if x.shape[0] % p == 0))
        key = (model.training, parts > 1 and can_split)
        if key not in traced:
            traced[key] = build_part() if key[1] else build()
        if key[1]:
            return split_step(traced[key], x, y, parts)
        return traced[key](x, y, *extra)

    return checked


def train_step(step, optimizer, x, y, lr=None, weights=None) -> dict:
    """Run step (from make_step) on one batch; sets the learning rate first; checks for NaN.

    weights: passed on as step(x, y, weights) (a step made with objective=weighted_loss_fn).
    """
    if lr is not None:
        optimizer.learning_rate = lr
    loss, norm = step(x, y) if weights is None else step(x, y, weights)
    mx.eval(loss, norm)
    loss, norm = loss.item(), norm.item()
    if not math.isfinite(loss) or not math.isfinite(norm):
        raise TrainingDiverged(f"the loss is {loss}, the gradient norm {norm}; the weights "
                               "were not updated")
    return {"loss": loss, "grad_norm": norm}


def evaluate(model, ids, n_chars=None, batch_size=16) -> dict:
    """Loss over every token of ids after the first, as spike_lib.numpy_impl.train.evaluate.

    The windows are the NumPy function's; dropout is off while evaluating, then restored.
    """
    class _Modes:  # MLX's `training` is read-only: hand NumPy's evaluate a view without modes
        def __init__(self, m):
            self.cfg, self.m = m.cfg, m

        def __call__(self, x):
            return np.array(self.m(x))

        def named_modules(self):
            return []

        def train(self, mode):
            return self

    was_training = model.training
    model.train(False)
    try:
        return scoring.evaluate(_Modes(model), ids, n_chars, batch_size)
    finally:
        model.train(was_training)


def train(model, train_data, steps=200, batch_size=16, lr=3e-3, min_lr=None, warmup=20,
          weight_decay=0.01, clip=1.0, rng=None, compile=True, callback=None) -> dict:
    """Train with AdamW, warmup + cosine learning rate and gradient clipping (as numpy_impl.train).

    train_data: a 1-D array of token ids (random windows drawn with rng) or an iterator of
    (x, y) batches. Returns a history dict: step, loss, grad_norm, lr.
    """
    check_range("steps", steps, 1, kind=int)
    check_range("batch_size", batch_size, 1, kind=int)
    train_data = as_batches(train_data, model.cfg, batch_size, rng)
    min_lr = lr * 0.1 if min_lr is None else min_lr
    optimizer = AdamW(lr, weight_decay=weight_decay)
    model.train(True)
    step_fn = make_step(model, optimizer, clip, compile)
    hist = {"step": [], "loss": [], "grad_norm": [], "lr": []}
    for step in range(steps):
        x, y = next(train_data)
        lr_t = cosine_lr(step, lr, warmup, steps, min_lr)
        rec = train_step(step_fn, optimizer, x, y, lr_t)
        for key, value in (("step", step), ("loss", rec["loss"]),
                           ("grad_norm", rec["grad_norm"]), ("lr", lr_t)):
            hist[key].append(value)
        if callback is not None:
            callback(step, rec)
    model.train(False)
    return hist


def benchmark_train_step(cfg, batch_size=8, repeats=3, seed=0, compile=True,
                         parallel=None) -> dict:
    """Median time of one MLX training step (forward, autodiff, AdamW) on random tokens.

    parallel: as make_step's (None: the batch split over the usable cores; 1: one stream).
    Returns step_s, tokens_per_s and model_gflops_per_s (spike_lib.numpy_impl.model's
    train_step_flops / step_s), to compare with the NumPy step measured in the same run.
    """
    from spike_lib.mlx_impl.model import SpikeLLM

    rng = np.random.default_rng(seed)
    model = SpikeLLM(cfg, rng)
    optimizer = AdamW(1e-4)
    step = make_step(model, optimizer, compile=compile, parallel=parallel)
    x = mx.array(rng.integers(0, cfg.vocab_size, (batch_size, cfg.block_size)))
    y = mx.array(rng.integers(0, cfg.vocab_size, (batch_size, cfg.block_size)))

    def once():
        mx.eval(step(x, y), model.state, optimizer.state)

    once()  # mx.compile builds its kernels on the first call
    step_s = median_seconds(once, repeats)
    return {"step_s": step_s, "tokens_per_s": x.size / step_s,
            "model_gflops_per_s": train_step_flops(cfg, batch_size) / step_s / 1e9}
