"""Checks for chapter 8's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/08_training_the_book_model.ipynb
"""

import math

from spike_lib.core.energy import E_AC_PJ, E_MAC_PJ


def _correct(name):
    print(f"{name}: correct")


def check_passes(fn):
    """Exercise 1: fn(steps, batch_size, block_size, train_tokens) = passes over the training set."""
    cases = [(3000, 16, 128, 6_144_000, 1.0), (10, 4, 8, 640, 0.5), (2, 3, 5, 120, 0.25)]
    for steps, batch, block, n_train, want in cases:
        got = float(fn(steps, batch, block, n_train))
        if math.isclose(got, steps * batch / n_train):
            raise AssertionError("every row of a batch holds block_size tokens: tokens seen = "
                                 "steps x batch_size x block_size")
        assert math.isclose(got, want, rel_tol=1e-12), (
            f"steps={steps}, batch_size={batch}, block_size={block}, train_tokens={n_train}: got "
            f"{got}, expected {want} (tokens seen / tokens in the training split)")
    _correct("passes over the training data")


def check_gap(fn):
    """Exercise 2: fn(bpc_spiking, bpc_twin) = the spiking gap in percent of the twin's BPC."""
    got = float(fn(1.283, 1.137))
    if math.isclose(got, 100 * 0.146 / 1.283, rel_tol=1e-9):
        raise AssertionError("divide by the twin's BPC (the reference), not the spiking model's")
    if math.isclose(got, 0.146 / 1.137, rel_tol=1e-9):
        raise AssertionError("a fraction, not a percentage: multiply by 100")
    assert math.isclose(got, 100 * 0.146 / 1.137, rel_tol=1e-9), (
        f"SpikeGPT: 1.283 vs 1.137 BPC gives {got}, expected about 12.84 (% of 1.137)")
    assert math.isclose(float(fn(2.0, 2.5)), -20.0, rel_tol=1e-9), (
        "a spiking model better than its twin has a negative gap: keep the sign")
    _correct("spiking gap")


def check_steps_to_reach(fn):
    """Exercise 3: fn(records, target) = the first step whose val_bpc <= target, or None."""
    log = [{"step": 1, "loss": 6.0}, {"step": 2, "loss": 5.0, "val_bpc": 3.0},
           {"step": 3, "loss": 4.0}, {"step": 4, "loss": 3.5, "val_bpc": 2.5},
           {"step": 6, "loss": 3.0, "val_bpc": 2.6}, {"step": 8, "loss": 2.9, "val_bpc": 2.2}]
    cases = [(3.0, 2), (2.55, 4), (2.2, 8), (2.0, None), (9.9, 2)]
    for target, want in cases:
        got = fn(log, target)
        assert got == want, (
            f"target {target}: got {got!r}, expected {want!r}. Look only at records with a "
            "val_bpc, in order, and return the step of the first one at or below the target; "
            "None if the run never got there")
    _correct("steps to reach a BPC")


def check_energy_ratio(fn):
    """Exercise 4: fn(layers, num_steps) = E_SNN / E_ANN (Eq. 8.5) for layers [(MACs, input rate
    or None)]; rate None is the real-valued readout, which reads the mean over T and runs once."""
    def want_ratio(layers, t):
        snn = sum(m * (E_MAC_PJ if r is None else t * r * E_AC_PJ) for m, r in layers)
        return snn / sum(m * E_MAC_PJ for m, _ in layers)

    cases = [([(1000, 0.1)], 2, 2 * 0.1 * E_AC_PJ / E_MAC_PJ),
             ([(1000, 0.2), (500, None)], 4, (1000 * 4 * 0.2 * E_AC_PJ + 500 * E_MAC_PJ)
              / (1500 * E_MAC_PJ)),
             ([(300, 0.0), (100, 0.5)], 1, None)]
    for layers, t, want in cases:
        want = want_ratio(layers, t) if want is None else want
        got = float(fn(layers, t))
        if any(r is None for _, r in layers) and math.isclose(
                got, sum(m * t * (r or 0) * E_AC_PJ for m, r in layers)
                / sum(m * E_MAC_PJ for m, _ in layers), rel_tol=1e-9):
            raise AssertionError("the readout (rate None) is fed real values: it still does MACs "
                                 "in a spiking network, MACs x E_MAC")
        if any(r is None for _, r in layers) and math.isclose(
                got, sum(m * t * (E_MAC_PJ if r is None else r * E_AC_PJ) for m, r in layers)
                / sum(m * E_MAC_PJ for m, _ in layers), rel_tol=1e-9):
            raise AssertionError("the readout reads the mean over the T timesteps, so it runs "
                                 "once: MACs x E_MAC, not x T")
        assert math.isclose(got, want, rel_tol=1e-9), (
            f"layers {layers}, T={t}: got {got:.6f}, expected {want:.6f}. E_ANN = sum MACs x "
            f"{E_MAC_PJ} pJ; E_SNN = sum MACs x T x rate x {E_AC_PJ} pJ for spiking inputs, "
            f"+ MACs x {E_MAC_PJ} pJ once for the readout")
    _correct("energy ratio")


def check_twin_steps(fn):
    """Exercise 5: fn(records_spiking, records_twin) = {spiking eval step: first twin step as good}.

    For every step at which the spiking run logged a val_bpc, the first step at which the twin's
    val_bpc was at or below it (None if the twin never got there).
    """
    spk = [{"step": 1, "loss": 6.0}, {"step": 2, "loss": 5.0, "val_bpc": 3.3},
           {"step": 4, "loss": 4.0, "val_bpc": 3.0}, {"step": 6, "loss": 3.5, "val_bpc": 2.2}]
    twin = [{"step": 2, "loss": 4.9, "val_bpc": 3.1}, {"step": 3, "loss": 4.5, "val_bpc": 3.0},
            {"step": 4, "loss": 4.4}, {"step": 6, "loss": 3.2, "val_bpc": 2.4}]
    want, bpc = {2: 2, 4: 3, 6: None}, {2: 3.3, 4: 3.0, 6: 2.2}
    got = fn(spk, twin)
    assert isinstance(got, dict), f"return a dict {{step: twin step}}, not {type(got).__name__}"
    assert sorted(got) == sorted(want), (
        f"keys {sorted(got)}: one per evaluation of the spiking run, {sorted(want)}")
    for step, value in want.items():
        assert got[step] == value, (
            f"spiking step {step} (val_bpc {bpc[step]}): "
            f"got {got[step]!r}, expected {value!r}: the first twin evaluation at or below that "
            "BPC, None if there is none")
    _correct("equally good twin steps")
