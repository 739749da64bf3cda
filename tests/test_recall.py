"""The MQAR recall task: hand-checked sequences, exact chance levels, softmax learns the lookup."""

from fractions import Fraction

import numpy as np
import pytest

from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.train.recall import chance_levels, probe_config, recall_batch


def test_recall_batch_hand_checked():
    x, y = recall_batch(np.random.default_rng(0), 2, 2, n_keys=4, n_values=4)
    # row 0: pairs (2 -> 5), (3 -> 4), then the queries 2, 3 each followed by its value
    np.testing.assert_array_equal(x, [[2, 5, 3, 4, 2, 5, 3, 4], [0, 5, 3, 7, 0, 5, 3, 7]])
    i = IGNORE_INDEX
    np.testing.assert_array_equal(y, [[i, i, i, i, 5, i, 4, i], [i, i, i, i, 5, i, 7, i]])


def test_recall_batch_answers_are_the_context_values():
    pairs, nk = 8, 32
    x, y = recall_batch(np.random.default_rng(3), 64, pairs, n_keys=nk, n_values=32)
    assert x.shape == y.shape == (64, 4 * pairs)
    keys, values = x[:, 0 : 2 * pairs : 2], x[:, 1 : 2 * pairs : 2]
    assert (keys < nk).all() and (values >= nk).all() and (values < nk + 32).all()
    for b in range(64):
        table = dict(zip(keys[b], values[b]))
        assert len(table) == pairs and len(set(values[b])) == pairs  # distinct keys and values
        queries = x[b, 2 * pairs :: 2]
        assert sorted(queries) == sorted(keys[b])  # every key is asked once
        assert [table[q] for q in queries] == list(y[b, 2 * pairs :: 2])
        assert list(x[b, 2 * pairs + 1 :: 2]) == list(y[b, 2 * pairs :: 2])  # teacher forcing
    assert (y[:, : 2 * pairs] == IGNORE_INDEX).all() and (y[:, 2 * pairs + 1 :: 2] == IGNORE_INDEX).all()


def test_recall_batch_rejects_too_many_pairs():
    with pytest.raises(ValueError, match="pairs=5"):
        recall_batch(np.random.default_rng(0), 1, 5, n_keys=4, n_values=8)


@pytest.mark.parametrize("pairs, unused", [(1, Fraction(1)), (2, Fraction(3, 4)),
                                           (4, Fraction(25, 48)), (8, Fraction(761, 2240))])
def test_chance_levels_exact(pairs, unused):
    c = chance_levels(pairs, n_values=32)
    assert c["random_value"] == 1 / 32
    assert c["context_value"] == pytest.approx(1 / pairs, abs=1e-15)
    assert c["unused_value"] == pytest.approx(float(unused), abs=1e-15)


def test_unused_value_guesser_matches_its_chance_level():
    # simulate the guesser: a uniform pick among the context values not yet answered
    rng, pairs, hits, total = np.random.default_rng(1), 4, 0, 0
    x, y = recall_batch(rng, 4000, pairs)
    for b in range(len(x)):
        left = list(x[b, 1 : 2 * pairs : 2])
        for a in y[b, 2 * pairs :: 2]:
            hits += rng.choice(left) == a
            total += 1
            left.remove(a)
    assert hits / total == pytest.approx(chance_levels(pairs)["unused_value"], abs=0.01)


def test_probe_config():
    cfg = probe_config("softmax", 8)
    assert (cfg.block_size, cfg.vocab_size, cfg.n_layer, cfg.n_embd) == (32, 64, 2, 64)


def test_softmax_learns_recall_on_a_tiny_budget():
    # softmax attention with token shift (softmax_shift): one block binds each value to the key
    # before it and looks it up; plain softmax needs two blocks and far more steps for that
    pytest.importorskip("mlx.core")
    from spike_lib.train.recall import run_recall

    r = run_recall("softmax_shift", 2, spiking=False, steps=200, batch_size=16, seed=0,
                   eval_sequences=128, config={"n_embd": 32, "d_ff": 64, "n_layer": 1})
    # chance: 1/32 (random value), 0.5 (a context value), 0.75 (a value not yet used)
    assert r["accuracy"] > 0.95, r
    assert r["chance"]["unused_value"] == 0.75 and r["steps"] == 200


def test_recall_cli_selects_the_non_spiking_twin():
    # `python -m spike_lib recall --no-spiking` trains the twin: the flag reaches the probe Config
    import argparse

    from spike_lib.train.recall import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    twin = parser.parse_args(["--attention", "sdsa", "--pairs", "8", "--no-spiking"])
    default = parser.parse_args(["--attention", "sdsa"])
    assert (twin.spiking, default.spiking, twin.pairs, default.pairs) == (False, True, 8, 2)
    cfg = probe_config(twin.attention, twin.pairs, twin.spiking)
    assert (cfg.spiking, cfg.attention, cfg.block_size) == (False, "sdsa", 32)
