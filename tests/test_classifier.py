"""SpikeClassifier: whole-model gradient checks, padding, firing rates, energy and training."""

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.core.energy import E_AC_PJ, E_MAC_PJ
from spike_lib.core.gradcheck import numerical_grad
from spike_lib.core.surrogate import ArcTan
from spike_lib.numpy_impl.classifier import (
    CharNgramNB,
    SpikeClassifier,
    batches,
    evaluate,
    train_classifier,
)
from spike_lib.numpy_impl.layers import cross_entropy

SMALL = {"vocab_size": 7, "block_size": 5, "n_embd": 8, "n_head": 2, "d_ff": 8, "num_steps": 2}


def toy_batch(rng, n=3):
    idx = rng.integers(1, 7, size=(n, 5))
    mask = np.ones((n, 5), bool)
    mask[0, 3:] = False
    mask[1, 4:] = False
    return np.where(mask, idx, 0), mask, rng.integers(0, 4, size=n)


@pytest.mark.parametrize("kw", [{}, {"n_layer": 2},
                                {"attention": "softmax", "spiking": False},
                                {"attention": "softmax", "spiking": True},
                                {"attention": "sdsa", "spiking": False}],
                         ids=["sdsa", "sdsa-2-layers", "softmax-ann", "softmax-spiking", "sdsa-ann"])
def test_whole_model_gradcheck_smooth(kw, rng):
    cfg = Config.tiny(**SMALL, detach_reset=False, **kw)
    model = SpikeClassifier(cfg, 4, rng).astype(np.float64).set_smooth()
    idx, mask, y = toy_batch(rng)

    def loss():
        return cross_entropy(model(idx, mask), y)[0]

    model.zero_grad()
    model.backward(cross_entropy(model(idx, mask), y)[1])
    for name, p, g in model.named_parameters():
        pick = rng.choice(p.size, size=min(p.size, 6), replace=False)
        num = numerical_grad(loss, p, indices=pick)
        mine = g.reshape(-1)[pick]
        scale = max(np.abs(num).max(), 1e-2)
        assert np.abs(mine - num).max() / scale < 1e-6, f"d{name} is wrong"


def test_padding_does_not_change_logits(rng):
    model = SpikeClassifier(Config.tiny(**SMALL), 4, rng)
    idx = rng.integers(1, 7, size=(2, 3))
    short = model(idx)
    padded = model(np.pad(idx, ((0, 0), (0, 2))), np.pad(np.ones((2, 3), bool), ((0, 0), (0, 2))))
    assert np.allclose(short, padded, atol=1e-6)


def test_non_spiking_twin_runs_one_step_and_has_same_size(rng):
    snn = SpikeClassifier(Config.tiny(**SMALL), 4, rng)
    ann = SpikeClassifier(Config.tiny(**SMALL, attention="softmax", spiking=False), 4, rng)
    assert ann.num_steps == 1 and snn.num_steps == 2
    assert ann.num_params() == snn.num_params()
    ann(*toy_batch(rng)[:2])
    assert ann.firing_rates() == {}


def test_firing_rates_ignore_padding(rng):
    model = SpikeClassifier(Config.tiny(**SMALL), 4, rng)
    idx, mask, _ = toy_batch(rng)
    model(idx, mask)
    rates = model.firing_rates()
    spk = model.modules["block0"].modules["act1"].last_spk  # (T, B, L, D)
    expected = spk[:, mask].mean()
    assert np.isclose(rates["block0.act1"], expected)
    assert {"block0.attn.kv", "block0.attn.out_in", "block0.attn.attn_lif"} <= set(rates)
    assert all(0.0 <= r <= 1.0 for r in rates.values())


def test_per_type_thresholds_reach_the_neurons(rng):
    cfg = Config.tiny(**SMALL, in_threshold=0.7, qkv_threshold=0.8, hidden_threshold=0.9)
    blk = SpikeClassifier(cfg, 4, rng).modules["block0"].modules
    attn = blk["attn"].modules
    assert blk["act1"].threshold == blk["act2"].threshold == 0.7
    assert attn["q_lif"].threshold == attn["v_lif"].threshold == 0.8
    assert blk["act_mlp"].threshold == 0.9
    assert attn["attn_lif"].threshold == cfg.attn_threshold


def test_energy_report_counts(rng):
    cfg = Config.tiny(**SMALL)
    model = SpikeClassifier(cfg, 4, rng)
    idx, mask, _ = toy_batch(rng)
    model(idx, mask)
    rates, rep = model.firing_rates(), model.energy_report()
    rows = {r["layer"]: r for r in rep.rows}
    n_tok = int(mask.sum())  # 3 + 4 + 5 = 12 real characters
    q = rows["block0.attn.q_proj"]
    assert q["flops"] == n_tok * 8 * 8
    assert np.isclose(q["snn_pj"], n_tok * 64 * 2 * rates["block0.act1"] * E_AC_PJ)
    assert rows["block0.attn.kv_sum"]["flops"] == n_tok * 8
    head = rows["head"]  # fed real values: MACs at every step
    assert head["flops"] == 3 * 8 * 4 and np.isclose(head["snn_pj"], 2 * 96 * E_MAC_PJ)
    ann = SpikeClassifier(Config.tiny(**SMALL, attention="softmax", spiking=False), 4, rng)
    ann(idx, mask)
    arows = {r["layer"]: r for r in ann.energy_report().rows}
    assert arows["block0.attn.qk_av"]["flops"] == 2 * (9 + 16 + 25) * 8  # 2 sum(L^2) D
    assert np.isclose(ann.energy_report().ratio, 1.0)


def test_bad_configs_and_inputs(rng):
    with pytest.raises(ValueError, match="no clamp"):
        SpikeClassifier(Config.tiny(**SMALL, mem_clamp=4.0), 4, rng)
    with pytest.raises(TypeError, match="Config"):
        SpikeClassifier(dict(SMALL), 4, rng)
    model = SpikeClassifier(Config.tiny(**SMALL), 4, rng)
    with pytest.raises(ValueError, match="block_size=5"):
        model(np.ones((2, 6), int))
    with pytest.raises(ValueError, match="at least one True"):
        model(np.ones((2, 3), int), np.zeros((2, 3), bool))
    with pytest.raises(TypeError, match="rng"):
        train_classifier(model, toy_batch(rng), steps=1)


def test_batches_cover_every_example_once_per_epoch():
    stream = batches(10, 5, np.random.default_rng(0))
    first = np.concatenate([next(stream), next(stream)])
    assert sorted(first) == list(range(10))


def test_training_learns_a_bag_of_characters_rule():
    # the class says whether the word holds character 1: a model that learns must get this
    rng = np.random.default_rng(1)
    idx = rng.integers(1, 7, size=(64, 5))
    labels = (idx == 1).any(axis=1).astype(int)
    mask = np.ones_like(idx, bool)
    cfg = Config.tiny(**SMALL)
    model = SpikeClassifier(cfg, 2, np.random.default_rng(0))
    hist = train_classifier(model, (idx, mask, labels), (idx, mask, labels), steps=150,
                            batch_size=16, lr=1e-2, rng=np.random.default_rng(0), eval_every=50)
    assert hist["loss"][-1] < hist["loss"][0]
    assert hist["val_acc"][-1] >= 0.9
    assert evaluate(model, idx, mask, labels)[0] == hist["val_acc"][-1]
    again = train_classifier(SpikeClassifier(cfg, 2, np.random.default_rng(0)),
                             (idx, mask, labels), steps=5, batch_size=16, lr=1e-2,
                             rng=np.random.default_rng(0))
    assert again["loss"] == hist["loss"][:5]  # seeded: the same run twice gives the same numbers


def test_non_spiking_sdsa_uses_soft_steps_in_one_step(rng):
    cfg = Config.tiny(**SMALL, spiking=False)  # attention="sdsa"
    model = SpikeClassifier(cfg, 4, rng)
    assert model.num_steps == 1
    assert model.num_params() == SpikeClassifier(Config.tiny(**SMALL), 4, rng).num_params()
    model(*toy_batch(rng)[:2])
    attn = model.modules["block0"].modules["attn"]
    q = attn.modules["q_lif"]
    u = q.cache[0]  # the membrane: projections of GELU(x), one step
    np.testing.assert_allclose(q.last_spk, ArcTan(cfg.surrogate_scale).smooth(u - cfg.threshold))
    assert 0 < q.last_spk.min() and q.last_spk.max() < 1 and not np.isin(q.last_spk, [0, 1]).all()
    assert model.firing_rates() == {}


def test_char_ngram_naive_bayes_by_hand():
    nb = CharNgramNB(orders=(1, 2), alpha=1.0)
    assert nb.features("ab") == ["a", "b", "^a", "ab", "b$"]
    nb.fit(["ab", "ba", "cc"], [0, 0, 1], n_classes=2)
    assert len(nb.vocab) == 12  # a b c ^a ab b$ ^b ba a$ ^c cc c$
    # class 0 holds 10 features, class 1 holds 5 ("c", "c", "^c", "cc", "c$")
    w = "ac"  # features a, c, ^a, ac (unseen), c$
    s0 = np.log(3) + sum(np.log((n + 1) / (10 + 12)) for n in (2, 0, 1, 0))
    s1 = np.log(2) + sum(np.log((n + 1) / (5 + 12)) for n in (0, 2, 0, 1))
    assert nb.predict([w]).tolist() == [int(s1 > s0)]
    assert np.isclose(nb.log_p[0, nb.vocab["a"]], np.log(3 / 22))
    assert np.isclose(nb.log_p[1, nb.vocab["c"]], np.log(3 / 17))
    with pytest.raises(ValueError, match="orders"):
        CharNgramNB(orders=(0,))
