"""spike_lib.core.energy: the 45 nm estimates by hand (Horowitz 2014 figures), totals and bad input."""

import argparse
import math

import pytest

from spike_lib.core import energy
from spike_lib.core.energy import (
    E_AC_PJ,
    E_MAC_PJ,
    EnergyReport,
    ann_energy_pj,
    linear_flops,
    snn_energy_pj,
)


def test_constants_and_hand_values():
    assert (E_MAC_PJ, E_AC_PJ) == (4.6, 0.9)
    assert math.isclose(ann_energy_pj(1e6), 4.6e6)
    assert math.isclose(snn_energy_pj(1e6, 4, 0.1), 360_000.0)  # 1e6 x 4 x 0.1 x 0.9
    assert linear_flops(32, 64, n_tokens=10) == 20_480
    assert snn_energy_pj(1e6, 4, 0.0) == 0.0


def test_report_totals_and_ratio():
    rep = EnergyReport(num_steps=4)
    rep.add("spiking", 1000, firing_rate=0.5).add("first", 2000)  # "first": real-valued input
    a, b = rep.rows
    assert math.isclose(a["ann_pj"], 4600) and math.isclose(a["snn_pj"], 1800)  # 1000*4*.5*.9
    assert math.isclose(b["ann_pj"], 9200) and math.isclose(b["snn_pj"], 36_800)  # MACs x T
    assert math.isclose(rep.ann_pj, 13_800) and math.isclose(rep.snn_pj, 38_600)
    assert math.isclose(rep.ratio, 38_600 / 13_800)
    table = rep.table()
    assert "real" in table and "0.500" in table and "38,600" in table
    assert math.isnan(EnergyReport(num_steps=1).ratio)


def test_cli_run():
    out = energy.run(argparse.Namespace(flops=1e6, num_steps=4, rate=0.1))
    assert math.isclose(out["ann_pj"], 4.6e6) and math.isclose(out["snn_pj"], 360_000.0)
    assert math.isclose(out["ratio"], 0.9 * 0.4 / 4.6)


@pytest.mark.parametrize("call, field", [
    (lambda: snn_energy_pj(1e6, 4, 1.5), "firing_rate"),
    (lambda: snn_energy_pj(1e6, 0, 0.1), "num_steps"),
    (lambda: snn_energy_pj(1e6, 2.5, 0.1), "num_steps"),
    (lambda: ann_energy_pj(-1), "flops"),
    (lambda: linear_flops(-1, 3), "n_in"),
    (lambda: EnergyReport(num_steps=4).add("x", 100, firing_rate=-0.1), "firing_rate"),
])
def test_bad_inputs_raise(call, field):
    with pytest.raises(ValueError, match=field):
        call()
