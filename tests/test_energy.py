"""spike_lib.core.energy: the 45 nm estimates by hand (Horowitz 2014 figures), totals and bad input."""

import argparse
import math

import numpy as np
import pytest

from spike_lib.core import energy
from spike_lib.core.energy import (
    E_AC_PJ,
    E_MAC_PJ,
    EnergyReport,
    ann_energy_pj,
    attention_core_ops,
    attention_rates,
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


# -- attention cores (issue 13): accumulates on spikes vs real multiplications, by hand ---------
# one sequence, L = 3 tokens, D = 2, one head, T = 1; P = 6 causal pairs (l' <= l)
HAND = {"x": [[1, 0], [0, 1], [1, 1]], "q": [[1, 0], [0, 1], [1, 1]],
        "k": [[1, 1], [0, 0], [1, 1]], "v": [[1, 0], [0, 0], [1, 1]]}


def hand_spikes():
    return {key: np.array(a, dtype=np.float32)[None, None] for key, a in HAND.items()}


def test_attention_rates_by_hand():
    r = attention_rates("spike_matrix_shift", 1, **hand_spikes())
    # K AND V fires at (0,0), (2,0), (2,1): 3 of 6 entries
    assert r["kv"] == 0.5
    # Q[l] . K[l'] over pairs: (0,0) 1, (1,0) 1, (1,1) 0, (2,0) 2, (2,1) 0, (2,2) 2 = 6 of P D = 12
    assert r["qk"] == 0.5
    # V[l'] is read by L - l' queries: token 0 (1 spike) x 3 + token 2 (2 spikes) x 1 = 5 of 12
    assert r["v_pairs"] == pytest.approx(5 / 12)
    # |K| |V| per token: 2 x 1 + 0 x 0 + 2 x 2 = 6 of n d_h^2 = 12 outer-product entries
    assert r["kv_outer"] == 0.5
    assert r["q"] == r["k"] == pytest.approx(4 / 6)
    assert r["prev"] == pytest.approx(2 / 6)  # x[l-1]: [0 0], [1 0], [0 1]


def test_attention_core_ops_by_hand():
    rates = attention_rates("spike_matrix", 1, **hand_spikes())
    rows = {r["op"]: r for r in attention_core_ops("spike_matrix", 1, 3, 2, 1, rates)}
    assert {k: (r["kind"], r["ops"]) for k, r in rows.items()} == {
        "scores": ("ac", 12), "score_sum": ("ac", 6), "mix": ("ac", 12), "divide": ("mac", 6)}
    rep = EnergyReport(num_steps=1).add_attention("attn", list(rows.values()))
    # 6 coincidences + 6 score adds + 5 value adds = 17 AC; 6 divisions as MACs
    assert math.isclose(rep.snn_pj, 17 * 0.9 + 6 * 4.6)
    running = attention_core_ops("spike_matrix_running", 1, 3, 2, 1, rates)
    assert [(r["op"], r["kind"], r["ops"]) for r in running] == [
        ("state", "ac", 12), ("key_sum", "ac", 6), ("read", "ac", 12), ("den", "ac", 6),
        ("divide", "mac", 6)]
    # 6 state adds + 4 key adds + 8 row reads (4 query spikes x d_h) + 4 den adds = 22 AC
    rep = EnergyReport(num_steps=1).add_attention("attn", running)
    assert math.isclose(rep.snn_pj, 22 * 0.9 + 6 * 4.6)


def test_attention_core_ops_kinds():
    def kinds(name):
        return {r["op"]: r["kind"] for r in attention_core_ops(name, 2, 4, 8, 2)}

    assert kinds("sdsa") == {"kv_sum": "ac"}
    assert kinds("sdsa_mean") == {"kv_sum": "ac", "scale": "mac"}
    assert kinds("sdsa_decay_shift") == {"kv_sum": "ac", "decay": "mac", "scale": "mac",
                                         "k_shift": "ac", "v_shift": "ac"}
    assert kinds("hybrid") == {"scores": "mac", "exp": "exp", "score_sum": "ac", "mix": "ac",
                               "divide": "mac"}
    assert kinds("softmax_shift")["mix"] == "mac"  # real V: the mix multiplies
    shift = {r["op"]: r for r in attention_core_ops("sdsa_shift", 2, 4, 8, 2, {"prev": 0.25})}
    rep = EnergyReport(num_steps=2).add_attention("a", [shift["k_shift"]])
    # the SNN adds a second weight row per previous-token spike: 8 tokens x 8 x 8 x 0.25 x T=2;
    # the ANN mixes instead: 2 multiplications per token and channel
    assert math.isclose(rep.snn_pj, 8 * 64 * 0.25 * 2 * E_AC_PJ)
    assert math.isclose(rep.ann_pj, 2 * 8 * 8 * E_MAC_PJ)
    sdsa = attention_core_ops("sdsa", 2, 4, 8, 2)[0]
    assert sdsa["ops"] == 2 * 4 * 8 and sdsa["rate"] == 1.0  # no rates given: every op counted
    hyb = {r["op"]: r["ops"] for r in attention_core_ops("hybrid", 2, 4, 8, 2)}
    assert hyb["scores"] == 2 * 10 * 8 and hyb["exp"] == 2 * 10 * 2  # P = B L (L + 1) / 2
    rep = EnergyReport(num_steps=2).add_attention("a", attention_core_ops("hybrid", 2, 4, 8, 2))
    assert rep.uncosted == {"a.exp": 80} and "not costed" in rep.table()
    with pytest.raises(ValueError, match="has no energy accounting"):
        attention_core_ops("nope", 1, 1, 1)


# -- multi-level spikes (Config.spike_levels = D): a spike j/D is j accumulates ----------------
def test_a_spike_of_value_j_over_d_costs_j_accumulates():
    # D = 3: one input neuron fires 2/3 at each of T = 2 steps into 1000 weights: 2 events
    # (weight W/3 added twice) per weight and step = 1000 x 2 x 2 x 0.9 = 3,600 pJ
    rep = EnergyReport(num_steps=2, spike_levels=3).add("fc", 1000, firing_rate=2 / 3)
    assert math.isclose(rep.rows[0]["snn_pj"], 1000 * 2 * 2 * 0.9)
    assert rep.rows[0]["firing_rate"] == 2 / 3  # the rate stays the mean spike value
    # K V of two 3-level spikes 2/3 and 1/3: value 2/9, 2 x 1 = 2 coincident events per add
    rep.add("kv_sum", 10, firing_rate=2 / 9, spikes=2)
    assert math.isclose(rep.rows[1]["snn_pj"], 10 * 2 * 2 * 0.9)
    # adds of counts or weights (spikes=0) happen once each, whatever D
    rep.add("score_sum", 10, firing_rate=1.0, spikes=0)
    assert math.isclose(rep.rows[2]["snn_pj"], 10 * 2 * 1 * 0.9)
    with pytest.raises(ValueError, match=r"firing_rate=1.5 is invalid: allowed range is \[0.0, 1"):
        rep.add("fc", 10, firing_rate=1.5)  # a mean spike value never exceeds 1
    with pytest.raises(ValueError, match="spike_levels=0"):
        EnergyReport(num_steps=2, spike_levels=0)
    # D = 1: binary spikes cost as before, 1 accumulate per spike
    assert math.isclose(EnergyReport(num_steps=2).add("fc", 1000, 0.5).snn_pj, 1000 * 2 * 0.5 * 0.9)
    # the CLI: rate 0.75 of 2-level spikes = 1.5 events per weight and step
    out = energy.run(argparse.Namespace(flops=1e6, num_steps=4, rate=0.75, spike_levels=2))
    assert math.isclose(out["snn_pj"], 1e6 * 4 * 1.5 * 0.9)


def test_attention_rates_of_multi_level_spikes_are_mean_values_and_ops_count_events():
    # L = 2, D = 2 levels: K = (1, 1/2), V = (1/2, 1): K V = (1/2, 1/2), mean 1/2 in value,
    # i.e. 2 of 4 possible coincident events per token: 1 event (1 x 1) each
    k = np.array([1.0, 0.5])[None, None, :, None]
    v = np.array([0.5, 1.0])[None, None, :, None]
    rates = attention_rates("sdsa", 1, q=k, k=k, v=v)
    assert rates["kv"] == 0.5 and rates["k"] == 0.75
    # v_pairs: V[0] is read by 2 queries, V[1] by 1, over P = 3 pairs: (2 x 1/2 + 1 x 1) / 3
    assert math.isclose(rates["v_pairs"], 2 / 3)
    # qk: Q[0] K[0] + Q[1] (K[0] + K[1]) = 1 + 0.5 x 1.5 = 1.75 over P = 3 pairs
    assert math.isclose(rates["qk"], 1.75 / 3)
    rows = {r["op"]: r for r in attention_core_ops("spike_matrix", 1, 2, 1, 1, rates)}
    spikes = (rows["scores"]["spikes"], rows["mix"]["spikes"], rows["score_sum"]["spikes"])
    assert spikes == (2, 1, 0)  # Q AND K: two spikes; V: one; adds of scores: none
    rep = EnergyReport(num_steps=1, spike_levels=2).add_attention("a", list(rows.values()))
    # scores: 3 pairs x 1.75/3 x 2^2 = 7 events (Q[0] K[0]: 2 x 2 = 4; Q[1] K[0]: 1 x 2 = 2,
    # Q[1] K[1]: 1 x 1 = 1); mix: 3 x 2/3 x 2 = 4 events (V[0] = 1 event read twice, V[1] = 2
    # events once); score_sum: 3 adds; divide: 2 MACs
    by = {r["layer"]: r["snn_pj"] for r in rep.rows}
    assert math.isclose(by["a.scores"], 7 * 0.9) and math.isclose(by["a.mix"], 4 * 0.9)
    assert math.isclose(by["a.score_sum"], 3 * 0.9) and math.isclose(by["a.divide"], 2 * 4.6)


def test_model_energy_charges_d_events_per_unit_of_spike_value():
    from spike_lib.core.config import Config
    from spike_lib.numpy_impl.model import SpikeLLM

    cfg = Config.tiny(spike_levels=3)
    model = SpikeLLM(cfg)
    model(np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 8)))
    rates, rep = model.firing_rates(), model.energy_report(2, 8)
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    rows = {r["layer"]: r for r in rep.rows}
    fc1, kv = rows["blocks.0.fc1"], rows["blocks.0.attn.kv_sum"]
    assert math.isclose(fc1["snn_pj"], fc1["flops"] * cfg.num_steps * 3 * rates["blocks.0.sn2"]
                        * E_AC_PJ)
    assert math.isclose(kv["snn_pj"], kv["flops"] * cfg.num_steps * 9 * rates["blocks.0.attn.kv"]
                        * E_AC_PJ)
