"""`python -m spike_lib check`: the whole-model gradient check of SpikeLLM in smooth mode.

Every parameter of a small float64 model in smooth mode is compared with central finite
differences of the cross-entropy loss. The headline number is normwise per tensor,
    rel_err = ||g_mine - g_num|| / (||g_mine|| + ||g_num||),  maximised over tensors,
because an entrywise ratio is dominated by finite-difference noise on entries near 1e-7.
The denominator is floored at 1e-4, so a tensor whose gradient is zero by symmetry (softmax
attention's key bias: adding q.b to a whole row leaves the softmax unchanged) is judged by
its absolute error, which finite differences resolve to about 1e-11.
Taught in: notebooks/06_spikellm_training.ipynb
"""

import numpy as np

from spike_lib.core.config import Config, check_range

FLOOR = 1e-4


def gradcheck_config(**overrides) -> Config:
    """A model small enough to check every entry: 2 blocks, width 8, 2 heads, T = 3.

    detach_reset=False: in smooth mode the reset is differentiable, and finite differences
    see that path, so the analytic gradient must include it too.
    """
    base = {"vocab_size": 11, "block_size": 6, "n_layer": 2, "n_embd": 8, "n_head": 2,
            "d_ff": 12, "num_steps": 3, "detach_reset": False}
    return Config.tiny(**{**base, **overrides})


def model_gradcheck(cfg=None, seed=0, eps=1e-5, max_entries=None, n_batch=2, n_tok=5) -> dict:
    """Check SpikeLLM's backward against finite differences; returns errors and the worst tensor.

    max_entries: check a random subset of each tensor (None: every entry).
    """
    from spike_lib.core.gradcheck import numerical_grad
    from spike_lib.numpy_impl.layers import cross_entropy
    from spike_lib.numpy_impl.model import SpikeLLM

    cfg = gradcheck_config() if cfg is None else cfg
    rng = np.random.default_rng(seed)
    model = SpikeLLM(cfg, np.random.default_rng(seed)).astype(np.float64).set_smooth(True)
    idx = rng.integers(0, cfg.vocab_size, (n_batch, min(n_tok, cfg.block_size)))
    targets = rng.integers(0, cfg.vocab_size, idx.shape)
    loss, dlogits = cross_entropy(model(idx), targets)
    model.zero_grad()
    model.backward(dlogits)

    def f():
        return cross_entropy(model(idx), targets)[0]

    errors, entry_errors, n_checked = {}, {}, 0
    for name, p, g in model.named_parameters():
        pick = None
        if max_entries is not None and p.size > max_entries:
            pick = rng.choice(p.size, max_entries, replace=False)
        num = numerical_grad(f, p, eps, pick)
        mine = g.reshape(-1) if pick is None else g.reshape(-1)[pick]
        num = num.reshape(-1)
        errors[name] = normwise_rel_error(mine, num)
        entry_errors[name] = float(np.max(np.abs(mine - num) / np.maximum(
            np.abs(mine) + np.abs(num), 1e-8)))
        n_checked += mine.size
    worst = max(errors, key=errors.get)
    return {"max_rel_err": errors[worst], "worst_tensor": worst,
            "max_entry_rel_err": max(entry_errors.values()), "n_checked": n_checked,
            "n_params": model.num_params(), "loss": float(loss), "errors": errors}


def normwise_rel_error(mine, ref) -> float:
    """||mine - ref|| / max(||mine|| + ||ref||, FLOOR): one number per tensor."""
    mine, ref = np.ravel(mine).astype(np.float64), np.ravel(ref).astype(np.float64)
    den = max(np.linalg.norm(mine) + np.linalg.norm(ref), FLOOR)
    return float(np.linalg.norm(mine - ref) / den)


def module_gradcheck(module, x, rng, eps=1e-6, max_entries=None) -> dict:
    """Normwise errors of module.backward for L = sum(forward(x) * dout), per input/parameter.

    Like spike_lib.core.gradcheck.check_module (which reports the entrywise ratio); put the module
    in float64 and smooth mode first.
    """
    from spike_lib.core.gradcheck import numerical_grad

    x = np.array(x, dtype=np.float64)
    dout = rng.standard_normal(module.forward(x).shape)
    module.zero_grad()
    analytic = {"x": module.backward(dout)}
    analytic.update({n: g.copy() for n, _, g in module.named_parameters()})
    targets = {"x": x, **{n: p for n, p, _ in module.named_parameters()}}
    errors = {}
    for name, arr in targets.items():
        pick = None
        if max_entries is not None and arr.size > max_entries:
            pick = rng.choice(arr.size, max_entries, replace=False)
        num = numerical_grad(lambda: float(np.sum(module.forward(x) * dout)), arr, eps, pick)
        mine = analytic[name] if pick is None else analytic[name].reshape(-1)[pick]
        errors[name] = normwise_rel_error(mine, num)
    return errors


def add_arguments(parser) -> None:
    parser.add_argument("--backend", default="numpy", help="numpy (mlx: see chapter 7)")
    parser.add_argument("--attention", default="sdsa", help="sdsa or softmax")
    parser.add_argument("--twin", action="store_true", help="check the non-spiking twin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-entries", type=int, default=None,
                        help="check a random subset of each tensor (default: every entry)")


def run(args) -> dict:
    if args.backend != "numpy":
        raise ValueError(f"--backend {args.backend!r} is not checked here yet: use "
                         "--backend numpy (the MLX port is compared with NumPy in chapter 7)")
    if args.max_entries is not None:
        check_range("--max-entries", args.max_entries, 1, kind=int)
    cfg = gradcheck_config(attention=args.attention, spiking=not args.twin)
    res = model_gradcheck(cfg, seed=args.seed, max_entries=args.max_entries)
    res.pop("errors")
    return {"backend": "numpy", "attention": cfg.attention, "spiking": cfg.spiking,
            "ok": res["max_rel_err"] < 1e-6, **res}
