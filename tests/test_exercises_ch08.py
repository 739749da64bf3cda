"""Chapter 8's exercise checks: pass a right answer, reject wrong ones with a useful hint."""

import pytest

from spike_lib.core.energy import E_AC_PJ, E_MAC_PJ
from spike_lib.exercises import ch08


def test_passes(capsys):
    ch08.check_passes(lambda s, b, l, n: s * b * l / n)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="block_size tokens"):
        ch08.check_passes(lambda s, b, l, n: s * b / n)


def test_gap(capsys):
    ch08.check_gap(lambda s, t: 100 * (s - t) / t)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="divide by the twin"):
        ch08.check_gap(lambda s, t: 100 * (s - t) / s)
    with pytest.raises(AssertionError, match="multiply by 100"):
        ch08.check_gap(lambda s, t: (s - t) / t)
    with pytest.raises(AssertionError, match="keep the sign"):
        ch08.check_gap(lambda s, t: 100 * abs(s - t) / t)


def test_steps_to_reach(capsys):
    def first(records, target):
        return next((r["step"] for r in records if r.get("val_bpc", 1e9) <= target), None)

    ch08.check_steps_to_reach(first)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="first one at or below"):  # the last, not the first
        ch08.check_steps_to_reach(
            lambda recs, t: ([r["step"] for r in recs if r.get("val_bpc", 1e9) <= t] or [None])[-1])
    with pytest.raises(AssertionError, match="target 3.0: got 4, expected 2"):  # strictly below
        ch08.check_steps_to_reach(
            lambda recs, t: next((r["step"] for r in recs if r.get("val_bpc", 1e9) < t), None))


def test_energy_ratio(capsys):
    def ratio(layers, t):  # Eq. 8.5: the readout (rate None) once
        snn = sum(m * (E_MAC_PJ if r is None else t * r * E_AC_PJ) for m, r in layers)
        return snn / sum(m * E_MAC_PJ for m, _ in layers)

    ch08.check_energy_ratio(ratio)
    assert "correct" in capsys.readouterr().out
    # hand count: 1000 MACs at rate 0.2 over T=4, a 500-MAC readout once
    assert ratio([(1000, 0.2), (500, None)], 4) == pytest.approx((800 * 0.9 + 500 * 4.6) / (1500 * 4.6))
    with pytest.raises(AssertionError, match="still does MACs"):
        ch08.check_energy_ratio(lambda layers, t: sum(m * t * (r or 0) * E_AC_PJ for m, r in layers)
                                / sum(m * E_MAC_PJ for m, _ in layers))
    with pytest.raises(AssertionError, match="runs once"):
        ch08.check_energy_ratio(lambda layers, t: sum(
            m * t * (E_MAC_PJ if r is None else r * E_AC_PJ) for m, r in layers)
            / sum(m * E_MAC_PJ for m, _ in layers))
    with pytest.raises(AssertionError, match="expected"):  # forgets T
        ch08.check_energy_ratio(lambda layers, t: ratio(layers, 1))


def _twin_steps(spk, twin):
    evals = [(r["step"], r["val_bpc"]) for r in twin if "val_bpc" in r]
    return {r["step"]: next((k for k, b in evals if b <= r["val_bpc"]), None)
            for r in spk if "val_bpc" in r}


def test_twin_steps(capsys):
    ch08.check_twin_steps(_twin_steps)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="one per evaluation of the spiking run"):
        ch08.check_twin_steps(lambda s, t: {r["step"]: None for r in s})
    with pytest.raises(AssertionError, match="spiking step 4 .*got 6, expected 3"):  # strictly below
        ch08.check_twin_steps(lambda s, t: {
            r["step"]: next((x["step"] for x in t if x.get("val_bpc", 9) < r["val_bpc"]), None)
            for r in s if "val_bpc" in r})
    with pytest.raises(AssertionError, match="return a dict"):
        ch08.check_twin_steps(lambda s, t: list(_twin_steps(s, t).items()))
