"""Checks for chapter 1's exercises: each raises AssertionError with a hint, or prints "correct".

Part 1 (neurons): check_lif_by_hand, check_refractory_rate, check_spikingjelly_translation.
Part 2 (surrogate gradients): check_gaussian_surrogate, check_bptt_after_leak, check_target_time.
Taught in: notebooks/01_lif_neurons.ipynb and notebooks/01b_surrogate_gradients.ipynb
"""

import math

import numpy as np

from spike_lib.core.gradcheck import rel_error
from spike_lib.core.neurons import lif_backward, lif_forward, rate_encode

# part 1, exercise 1: one neuron by hand, in snnTorch's convention (subtract after the leak)
EX1 = {"beta": 0.5, "threshold": 1.0, "reset": "subtract_after_leak",
       "x": [0.25, 0.0, 1.0, 1.2, 0.0]}


def _correct(name):
    print(f"{name}: correct")


def check_lif_by_hand(mem, spk):
    """Part 1, exercise 1: mem U[t] and spk S[t] (5 values each) for EX1's snnTorch-style neuron."""
    x = np.array(EX1["x"])
    ref_spk, ref_mem = lif_forward(x, EX1["beta"], EX1["threshold"], EX1["reset"])
    ours_spk, ours_mem = lif_forward(x, EX1["beta"], EX1["threshold"], "subtract")
    mem, spk = np.asarray(mem, dtype=float), np.asarray(spk, dtype=float)
    for name, mine, ref, ours in (("mem", mem, ref_mem, ours_mem), ("spk", spk, ref_spk, ours_spk)):
        assert mine.shape == ref.shape, f"{name} needs {ref.shape[0]} values, one per timestep"
        bad = np.nonzero(~np.isclose(mine, ref, atol=1e-9))[0]
        if bad.size and np.allclose(mine, ours, atol=1e-9):
            raise AssertionError(
                f"{name} is the course's 'subtract' reset (threshold off before the leak). "
                "snnTorch leaks first: U[t] = beta U[t-1] + x[t] - threshold S[t-1]")
        assert not bad.size, (
            f"{name}[{bad[0]}] = {mine[bad[0]]} is wrong. snnTorch: U[t] = beta U[t-1] + x[t] - "
            "threshold S[t-1], then S[t] = 1 if U[t] > threshold; mem is U[t].")
    _correct("LIF by hand, snnTorch's convention")


def _simulated_refractory_rate(x, beta, threshold, refractory, steps=6000):
    """Spikes per step of a zero-reset LIF held at 0 for `refractory` steps after each spike."""
    v, hold, n = 0.0, 0, 0
    for _ in range(steps):
        if hold:
            hold -= 1
            continue
        u = beta * v + x
        if u > threshold:
            n, v, hold = n + 1, 0.0, refractory
        else:
            v = u
    return n / steps


def check_refractory_rate(fn):
    """Part 1, exercise 2: fn(x, beta, threshold, refractory) = rate with a refractory period."""
    cases = [(0.05, 0.9, 1.0, 2), (2.0, 0.5, 1.0, 0), (2.0, 0.5, 1.0, 3), (0.3, 0.8, 1.0, 1),
             (0.6, 0.95, 1.0, 4), (1.1, 0.5, 0.5, 2), (0.21, 0.8, 1.0, 5)]
    for x, beta, threshold, r in cases:
        ref = _simulated_refractory_rate(x, beta, threshold, r)
        mine = float(fn(x, beta, threshold, r))
        assert abs(mine - ref) < 2e-3, (
            f"x={x}, beta={beta}, threshold={threshold}, refractory={r}: the rate should be "
            f"{ref:.4f} spikes per step, got {mine:.4f}. After a spike the neuron sits out r "
            "steps, then needs n* steps from rest (Eq. 1.5): one spike every n* + r steps.")
    _correct("refractory firing rate")


def _spikingjelly_lif(x, tau, v_threshold, hard_reset):
    """SpikingJelly's LIFNode with decay_input=True, v_reset=0 (hard) or None (soft), by hand."""
    v, spks = 0.0, []
    for x_t in x:
        h = v + (x_t - v) / tau  # charge: H = V + (X - (V - V_reset)) / tau
        s = float(h >= v_threshold)  # fires at >=
        v = h * (1 - s) if hard_reset else h - v_threshold * s
        spks.append(s)
    return np.array(spks)


def check_spikingjelly_translation(fn):
    """Part 1, exercise 3: fn(tau, v_threshold, hard_reset) = (beta, input_scale, threshold, reset).

    lif_forward(input_scale * x, beta, threshold, reset) must spike as SpikingJelly's LIFNode
    (decay_input=True) does on the same x.
    """
    rng = np.random.default_rng(5)
    for tau, v_th, hard in [(2.0, 1.0, True), (2.0, 0.5, False), (4.0, 1.0, False), (1.5, 0.8, True)]:
        out = fn(tau, v_th, hard)
        assert len(out) == 4, "return (beta, input_scale, threshold, reset)"
        beta, scale, threshold, reset = out
        x = rng.uniform(0.0, 2.5 * v_th, 300) + 1e-7  # no exact ties with the threshold
        ref = _spikingjelly_lif(x, tau, v_th, hard)
        spk, _ = lif_forward(scale * x, float(beta), float(threshold), reset)
        if not np.array_equal(spk, ref):
            hint = ("the leak of H = V + (X - V) / tau is 1 - 1/tau (an Euler step), not "
                    "exp(-1/tau)" if not math.isclose(beta, 1 - 1 / tau) else
                    "decay_input divides the input by tau" if not math.isclose(scale, 1 / tau)
                    else "v_reset=0 is the zero reset, v_reset=None the subtract reset")
            raise AssertionError(f"tau={tau}, v_threshold={v_th}, hard reset={hard}: "
                                 f"{int((spk != ref).sum())} of 300 steps differ; {hint}")
    _correct("SpikingJelly translation")


def check_gaussian_surrogate(grad, smooth, sigma=0.5):
    """Part 2, exercise 1: grad(z, sigma) and smooth(z, sigma) of the Gaussian surrogate pair.

    g is the normal density with standard deviation sigma (area 1), G its antiderivative with
    G(0) = 1/2 (a soft step from 0 to 1).
    """
    z = np.linspace(-3, 3, 61) + 0.01
    g = np.asarray(grad(z, sigma), dtype=float)
    G = np.asarray(smooth(z, sigma), dtype=float)
    ref = np.exp(-0.5 * (z / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    assert g.shape == z.shape and G.shape == z.shape, "both functions must work elementwise"
    assert np.allclose(g, ref, atol=1e-9), (
        f"g(0.01) should be {ref[30]:.4f}, got {g[30]:.4f}: the normal density "
        "exp(-z^2 / (2 sigma^2)) / (sigma sqrt(2 pi)) has area 1")
    numeric = (np.asarray(smooth(z + 1e-6, sigma)) - np.asarray(smooth(z - 1e-6, sigma))) / 2e-6
    assert np.allclose(numeric, g, atol=1e-5), (
        "G' is not g: G(z) = (1 + erf(z / (sigma sqrt 2))) / 2 (math.erf, elementwise)")
    assert math.isclose(float(smooth(np.array(0.0), sigma)), 0.5, abs_tol=1e-9), "G(0) must be 1/2"
    _correct("Gaussian surrogate pair")


def check_bptt_after_leak(fn):
    """Part 2, exercise 2: fn(dspk, mem, spk, beta, threshold) = dL/dx for reset=
    "subtract_after_leak" (snnTorch), reset NOT detached, arctan surrogate."""
    rng = np.random.default_rng(4)
    x = rng.normal(0.6, 0.8, (20, 6))
    spk, mem = lif_forward(x, 0.8, 1.0, "subtract_after_leak", "arctan")
    assert 0.1 < spk.mean() < 0.6  # the check sees spikes and silences
    dspk = rng.standard_normal(x.shape)
    ref = lif_backward(dspk, mem, spk, 0.8, 1.0, "subtract_after_leak", "arctan", False)
    mine = np.asarray(fn(dspk, mem, spk, 0.8, 1.0), dtype=float)
    assert mine.shape == ref.shape, f"dx must have the shape of mem {ref.shape}, got {mine.shape}"
    if rel_error(mine, ref) > 1e-6:
        detached = lif_backward(dspk, mem, spk, 0.8, 1.0, "subtract_after_leak", "arctan", True)
        ours = lif_backward(dspk, mem, spk, 0.8, 1.0, "subtract", "arctan", False)
        hint = ("that is the detached gradient: here s[t] also lowers u[t+1] by threshold, so "
                "ds[t] gets - threshold * du[t+1]" if rel_error(mine, detached) < 1e-6 else
                "that is the 'subtract' reset's backward: in snnTorch's convention the "
                "threshold is not leaked, so ds[t] gets - threshold * du[t+1], not "
                "- threshold * beta * du[t+1]" if rel_error(mine, ours) < 1e-6 else
                "walk t backwards keeping du[t+1]: ds = dspk[t] - threshold du[t+1], du[t] = "
                "beta du[t+1] + ds g(u[t] - threshold)")
        raise AssertionError(f"dx differs from the exact gradient (rel err "
                             f"{rel_error(mine, ref):.1e}): {hint}")
    _correct("BPTT, snnTorch's convention, reset attached")


def target_time_task():
    """Part 2, exercise 3's fixed problem: inputs inp (T, N_in), target spike times, LIF settings."""
    rng = np.random.default_rng(1)
    inp = rate_encode(np.full(20, 0.2), 30, rng)  # (T=30, N_in=20)
    return {"inp": inp, "t_target": np.array([8, 15, 24]), "beta": 0.9, "threshold": 1.0}


def check_target_time(W, tol=1):
    """Part 2, exercise 3: with W (20, 3), output j fires once, within tol steps of t_target[j]."""
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
