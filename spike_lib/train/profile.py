"""Where a training step's time goes, by kind of work, for the NumPy and the MLX SpikeLLM.

NumPy: every layer's forward and backward is timed while one real step runs (exclusive times:
a block's time excludes its layers', so the kinds add up to the step). MLX compiles the whole
step into one graph that Python cannot look inside, so its profile times each kind of work alone,
compiled, forward and backward, at the step's shapes and counts (the remainder is what fusion
and scheduling add or save). `python -m spike_lib bench profile --json`.
Taught in: notebooks/07b_speed_and_generation.ipynb
"""

import time
from contextlib import contextmanager

import numpy as np

from spike_lib.core.energy import train_step_flops
from spike_lib.core.training import median_seconds

KINDS = ("matmul (Linear)", "LIF loops", "LayerNorm", "attention core", "residual adds",
         "embedding", "model glue (mean over T)", "loss", "zero_grad", "grad norm + clip",
         "optimizer (AdamW)")


def _numpy_kinds():
    from spike_lib.numpy_impl import attention, blocks, context_attention, layers, model, neurons

    attn = [attention.SDSA, attention.SoftmaxAttention, context_attention.MeanSDSA,
            context_attention.DecaySDSA, context_attention.SpikeMatrixAttention,
            context_attention.HybridAttention, context_attention.ShiftSoftmaxAttention,
            context_attention._Base]
    return {"matmul (Linear)": [layers.Linear], "LIF loops": [neurons.LIF, blocks.ClampLIF],
            "LayerNorm": [layers.LayerNorm], "attention core": attn,
            "residual adds": [blocks.Block, layers.Dropout, layers.GELU, blocks.SmoothGate],
            "embedding": [layers.Embedding], "model glue (mean over T)": [model.SpikeLLM]}


@contextmanager
def _timed_layers(totals, clock=time.perf_counter):
    """Wrap forward/backward of the layer classes with exclusive timers adding into totals."""
    stack, saved = [], []

    def wrap(kind, fn):
        def timed(self, *args, **kwargs):
            stack.append(0.0)
            start = clock()
            try:
                return fn(self, *args, **kwargs)
            finally:
                spent = clock() - start
                totals[kind] += spent - stack.pop()
                if stack:
                    stack[-1] += spent
        return timed

    for kind, classes in _numpy_kinds().items():
        for cls in classes:
            for name in ("forward", "backward"):
                if name in cls.__dict__:
                    saved.append((cls, name, cls.__dict__[name]))
                    setattr(cls, name, wrap(kind, cls.__dict__[name]))
    try:
        yield
    finally:
        for cls, name, fn in reversed(saved):
            setattr(cls, name, fn)


def numpy_profile(cfg, batch, repeats=3, seed=0, clock=time.perf_counter) -> dict:
    """Seconds per kind of work in one NumPy training step (the median step of `repeats`).

    clock() returns seconds; a test passes a fake clock to check the bookkeeping exactly."""
    from spike_lib.core.scoring import cross_entropy
    from spike_lib.numpy_impl.model import SpikeLLM
    from spike_lib.numpy_impl.optim import AdamW, clip_grad_norm

    rng = np.random.default_rng(seed)
    model = SpikeLLM(cfg, rng)
    opt = AdamW(model, lr=1e-4)
    x = rng.integers(0, cfg.vocab_size, (batch, cfg.block_size))
    y = rng.integers(0, cfg.vocab_size, (batch, cfg.block_size))
    runs = []
    for i in range(repeats + 1):  # the first step warms up (first-touch allocations)
        totals = dict.fromkeys(KINDS, 0.0)
        start = clock()
        with _timed_layers(totals, clock):
            logits = model(x)
            t = clock()
            _, dlogits = cross_entropy(logits, y)
            totals["loss"] += clock() - t
            t = clock()
            model.zero_grad()
            totals["zero_grad"] += clock() - t
            model.backward(dlogits)
            t = clock()
            clip_grad_norm(model, 1.0)
            totals["grad norm + clip"] += clock() - t
            t = clock()
            opt.step()
            totals["optimizer (AdamW)"] += clock() - t
        totals["step"] = clock() - start
        if i:
            runs.append(totals)
    runs.sort(key=lambda r: r["step"])
    return runs[len(runs) // 2]


def mlx_profile(cfg, batch, repeats=3, seed=0) -> dict:
    """Seconds per kind of work of the compiled MLX step, each kind timed alone (see module)."""
    import mlx.core as mx

    from spike_lib.mlx_impl.layers import LayerNorm
    from spike_lib.mlx_impl.neurons import LIF
    from spike_lib.mlx_impl.train import AdamW, benchmark_train_step

    rng = np.random.default_rng(seed)
    t, n_tok, d, f = (cfg.num_steps if cfg.spiking else 1), batch * cfg.block_size, cfg.n_embd, \
        cfg.d_ff
    shape = (t, batch, cfg.block_size)

    def fwd_bwd(fn, *arrays):
        """Median seconds of fn's forward and its gradient (w.r.t. every input), compiled."""
        grad = mx.compile(mx.grad(lambda *a: (fn(*a) * 1.0).sum(), argnums=list(range(len(arrays)))))
        mx.eval(grad(*arrays))
        return median_seconds(lambda: mx.eval(grad(*arrays)), repeats)

    def rand(*s):
        return mx.array(rng.standard_normal(s).astype(np.float32))

    def matmul(m, k, n):
        return fwd_bwd(lambda a, w: a @ w, rand(m, k), rand(k, n) * k**-0.5)

    lin = t * cfg.n_layer * (4 * matmul(n_tok, d, d) + matmul(n_tok, d, f) + matmul(n_tok, f, d))
    lin += matmul(n_tok, d, cfg.vocab_size)
    lif = LIF(beta=cfg.beta, threshold=cfg.threshold, levels=cfg.spike_levels)
    lifs = cfg.n_layer * (6 * fwd_bwd(lif, rand(*shape, d)) + fwd_bwd(lif, rand(*shape, f)))
    ln = LayerNorm(d)
    lns = 2 * cfg.n_layer * fwd_bwd(ln, rand(*shape, d)) + fwd_bwd(ln, rand(batch, cfg.block_size, d))
    cum = cfg.n_layer * fwd_bwd(lambda a, b: mx.cumsum(a * b, axis=-2), rand(*shape, d),
                                rand(*shape, d))
    params = {f"p{i}": rand(*p.shape) for i, p in enumerate(_numpy_param_shapes(cfg))}
    grads = {k: rand(*v.shape) for k, v in params.items()}
    opt = AdamW(1e-4)
    opt.init(params)

    def update(p, g):
        return opt.apply_gradients(g, p)

    update = mx.compile(update, inputs=opt.state, outputs=opt.state)

    mx.eval(update(params, grads))
    adam = median_seconds(lambda: mx.eval(update(params, grads), opt.state), repeats)
    step = benchmark_train_step(cfg, batch, repeats, seed, parallel=1)["step_s"]  # one stream
    out = {"matmul (Linear)": lin, "LIF loops": lifs, "LayerNorm": lns, "attention core": cum,
           "optimizer (AdamW)": adam, "step": step}
    out["rest (fusion, scheduling, loss, glue)"] = step - sum(
        v for k, v in out.items() if k != "step")
    return out


class _Shape:
    def __init__(self, shape):
        self.shape = shape


def _numpy_param_shapes(cfg):
    from spike_lib.numpy_impl.model import SpikeLLM

    return [_Shape(p.shape) for _, p, _ in SpikeLLM(cfg).named_parameters()]


def profile(cfg, batch, repeats=3, backends=("numpy", "mlx")) -> dict:
    """{backend: {kind: seconds, "step": seconds}} plus the step's model GFLOP."""
    out = {"train_step_gflop": train_step_flops(cfg, batch) / 1e9}
    if "numpy" in backends:
        out["numpy"] = numpy_profile(cfg, batch, repeats)
    if "mlx" in backends:
        out["mlx"] = mlx_profile(cfg, batch, repeats)
    return out
