"""Checks for chapter 1's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/01_lif_neurons.ipynb
"""

import numpy as np

from spike_lib.core.gradcheck import rel_error
from spike_lib.core.neurons import lif_backward, lif_forward, rate_encode
from spike_lib.core.surrogate import FastSigmoid

# exercise 1: one neuron, by hand (binary fractions, so the answers are exact)
EX1 = {"beta": 0.5, "threshold": 1.0, "reset": "subtract", "x": [0.25, 0.0, 1.0, 0.75, 0.0]}


def _correct(name):
    print(f"{name}: correct")


def check_lif_by_hand(mem, spk):
    """Exercise 1: mem u[t] and spk s[t] (5 values each) for EX1's neuron."""
    ref_spk, ref_mem = lif_forward(np.array(EX1["x"]), EX1["beta"], EX1["threshold"], EX1["reset"])
    mem, spk = np.asarray(mem, dtype=float), np.asarray(spk, dtype=float)
    for name, mine, ref in (("mem", mem, ref_mem), ("spk", spk, ref_spk)):
        assert mine.shape == ref.shape, f"{name} needs {ref.shape[0]} values, one per timestep"
        bad = np.nonzero(~np.isclose(mine, ref, atol=1e-9))[0]
        assert not bad.size, (
            f"{name}[{bad[0]}] = {mine[bad[0]]} is wrong. Charge first, u = beta * v + x, then "
            "fire if u > threshold, then reset v = u - threshold * s; mem is u before the reset."
        )
    _correct("LIF by hand")


def check_fast_sigmoid_grad(fn, slope=2.0):
    """Exercise 2: fn(x, slope) must return the fast-sigmoid pseudo-derivative 1/(1+k|x|)^2."""
    x = np.array([-3.0, -1.0, -0.25, 0.0, 0.1, 0.5, 2.0])
    mine = np.asarray(fn(x, slope), dtype=float)
    ref = FastSigmoid(slope).grad(x)
    assert mine.shape == x.shape, f"fn must work elementwise: got shape {mine.shape} for {x.shape}"
    assert np.isclose(mine[3], 1.0), f"g(0) should be 1 (the peak), got {mine[3]}"
    assert np.allclose(mine, ref), (
        f"g({x}) should be {np.round(ref, 4)}, got {np.round(mine, 4)}; the formula is "
        "1 / (1 + slope * |x|) ** 2 (is the absolute value there?)"
    )
    _correct("fast sigmoid gradient")


def _simulated_zero_reset_rate(x, beta, threshold, max_steps=10_000):
    """1 / (first spike time, counted from 1) of a neuron at rest: with zero reset, its period."""
    v = 0.0
    for n in range(1, max_steps + 1):
        u = beta * v + x
        if u > threshold:
            return 1.0 / n
        v = u
    return 0.0


def check_zero_reset_rate(fn):
    """Exercise 3: fn(x, beta, threshold) = firing rate of constant input x with zero reset."""
    rng = np.random.default_rng(3)
    cases = [(0.05, 0.9, 1.0), (2.0, 0.5, 1.0), (0.12, 0.9, 1.0)]
    cases += [(float(rng.uniform(0.02, 1.5)), b, t) for b in (0.5, 0.8, 0.95) for t in (0.5, 1.0)]
    for x, beta, threshold in cases:
        ref = _simulated_zero_reset_rate(x, beta, threshold)
        mine = float(fn(x, beta, threshold))
        assert np.isclose(mine, ref), (
            f"x={x:.4f}, beta={beta}, threshold={threshold}: rate should be {ref:.4f} spikes per "
            f"timestep, got {mine:.4f}. From rest, u_n = x (1 - beta^n) / (1 - beta); the first n "
            "with u_n > threshold is the period, and it never fires if x <= threshold (1 - beta)."
        )
    _correct("zero-reset firing rate")


def check_bptt_zero_reset(fn):
    """Exercise 4: fn(dspk, mem, spk, beta, threshold) = dL/dx for zero reset, reset detached."""
    rng = np.random.default_rng(4)
    x = rng.normal(0.6, 0.8, (20, 6))
    spk, mem = lif_forward(x, 0.8, 1.0, "zero", "arctan")
    dspk = rng.standard_normal(x.shape)
    ref = lif_backward(dspk, mem, spk, 0.8, 1.0, "zero", "arctan", detach_reset=True)
    mine = np.asarray(fn(dspk, mem, spk, 0.8, 1.0), dtype=float)
    assert mine.shape == ref.shape, f"dx must have the shape of mem {ref.shape}, got {mine.shape}"
    if rel_error(mine, ref) > 1e-6:
        subtract = lif_backward(dspk, mem, spk, 0.8, 1.0, "subtract", "arctan")
        hint = (
            "you used the subtract-reset backward: with v = u (1 - s) the carried gradient "
            "is multiplied by (1 - s)"
            if rel_error(mine, subtract) < 1e-6
            else "walk t backwards: du = dv (1 - s) + dspk g(u - threshold), then dv = beta du "
            "(use spike_lib.core.surrogate.ArcTan().grad for g)"
        )
        raise AssertionError(
            f"dx differs from lif_backward (rel err {rel_error(mine, ref):.1e}): {hint}"
        )
    _correct("BPTT for zero reset")


def target_time_task():
    """Exercise 5's fixed problem: inputs inp (T, N_in), target spike times, LIF settings."""
    rng = np.random.default_rng(1)
    inp = rate_encode(np.full(20, 0.2), 30, rng)  # (T=30, N_in=20)
    return {"inp": inp, "t_target": np.array([8, 15, 24]), "beta": 0.9, "threshold": 1.0}


def check_target_time(W, tol=1):
    """Exercise 5: with weights W (20, 3), output j fires once, within tol steps of t_target[j]."""
    task = target_time_task()
    W = np.asarray(W, dtype=float)
    assert W.shape == (20, 3), f"W must have shape (N_in, N_out) = (20, 3), got {W.shape}"
    spk, _ = lif_forward(task["inp"] @ W, task["beta"], task["threshold"])
    for j, t in enumerate(task["t_target"]):
        times = np.nonzero(spk[:, j])[0].tolist()
        ok = len(times) == 1 and abs(times[0] - t) <= tol
        assert ok, (
            f"output {j} fires at {times}, target is one spike at t = {t}. Train longer or with a "
            "larger learning rate; the loss 0.5 sum (spk - target)^2 reaches 0 here."
        )
    _correct("fire at target times")
