"""Gradient checks: central finite differences in float64 and a comparison that says why.

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)        error O(eps^2)
Spiking layers must be checked in smooth mode (Module.set_smooth), because the Heaviside
step is flat almost everywhere and finite differences cannot see a surrogate.
Taught in: notebooks/01_lif_neurons.ipynb
"""

import numpy as np


def numerical_grad(f, x, eps=1e-6, indices=None):
    """dL/dx of a scalar function f() that reads x, by perturbing x in place (x: float64).

    indices: flat positions to check (returns a 1-D array for them); None checks every entry.
    """
    if x.dtype != np.float64:
        raise ValueError(f"numerical_grad needs a float64 array, got {x.dtype}; use .astype(np.float64)")
    flat = x.reshape(-1)
    positions = range(flat.size) if indices is None else indices
    grad = np.zeros(len(positions))
    for j, i in enumerate(positions):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        grad[j] = (fp - fm) / (2 * eps)
    return grad.reshape(x.shape) if indices is None else grad


def rel_error(a, b) -> float:
    """max |a - b| / max(|a| + |b|, 1e-8): about 1e-7 or less means agreement in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def cmp(name, mine, ref, tol=1e-6, verbose=True) -> float:
    """Compare a hand-written gradient with a reference; print exact / approximate / wrong."""
    err = rel_error(mine, ref)
    exact = bool(np.array_equal(np.asarray(mine), np.asarray(ref)))
    verdict = "exact" if exact else ("approximate" if err <= tol else "WRONG")
    if verbose:
        print(f"{name:<16} {verdict:<12} max rel err {err:.2e}")
    return err


def check_module(module, x, rng, eps=1e-6, verbose=False, max_entries=None) -> dict:
    """Check module.backward against finite differences of L = sum(forward(x) * dout).

    The module should already be in float64 and smooth mode. Returns {name: rel err} for
    the input ("x") and every parameter. max_entries: check only a random subset per tensor.
    """
    x = np.array(x, dtype=np.float64)
    out = module.forward(x)
    dout = rng.standard_normal(out.shape)
    module.zero_grad()
    dx = module.backward(dout)
    analytic = {"x": dx}
    analytic.update({name: g.copy() for name, _, g in module.named_parameters()})
    targets = {"x": x}
    targets.update({name: p for name, p, _ in module.named_parameters()})

    def loss():
        return float(np.sum(module.forward(x) * dout))

    errors = {}
    for name, arr in targets.items():
        idx = None
        if max_entries is not None and arr.size > max_entries:
            idx = rng.choice(arr.size, size=max_entries, replace=False)
        num = numerical_grad(loss, arr, eps, idx)
        mine = analytic[name] if idx is None else analytic[name].reshape(-1)[idx]
        errors[name] = cmp(name, mine, num, verbose=verbose)
    return errors
