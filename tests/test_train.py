import math

import numpy as np
import pytest

from spike_lib.train.checkpoint import load_checkpoint
from spike_lib.core.config import Config
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.numpy_impl.optim import AdamW
from spike_lib.numpy_impl.train import (
    TrainingDiverged,
    bits_per_char,
    evaluate,
    train,
    train_step,
)

TEXT = "the cat sat on the mat. the dog sat on the log. "
CHARS = sorted(set(TEXT))  # 14 characters
IDS = np.array([CHARS.index(c) for c in TEXT])


def tiny(**kw):
    base = {"vocab_size": len(CHARS), "block_size": 16, "n_embd": 32, "n_head": 2, "d_ff": 64,
            "n_layer": 1, "num_steps": 4}
    return Config.tiny(**{**base, **kw})


@pytest.mark.parametrize("kw", [{}, {"spiking": False}], ids=["spiking", "twin"])
def test_a_tiny_model_overfits_a_short_text(kw):
    # measured over seeds 0-2: from ln 14 = 2.64 nats to 0.35-0.46 (spiking) and 0.26-0.34
    # (twin) after 150 steps; the bound leaves a margin for BLAS rounding
    model = SpikeLLM(tiny(n_embd=16, d_ff=32, **kw))
    before = evaluate(model, IDS)["loss"]
    hist = train(model, IDS, steps=150, batch_size=8, lr=2e-2, warmup=10,
                 rng=np.random.default_rng(0))
    after = evaluate(model, IDS)["loss"]
    assert before > 2.0
    assert after < 0.7, after
    assert len(hist["loss"]) == 150 and hist["lr"][9] == pytest.approx(2e-2)


def test_uniform_logits_give_log2_vocab_bits_per_token():
    model = SpikeLLM(tiny(block_size=8))
    model.modules["lm_head"].params["W"][...] = 0.0  # every logit 0: a uniform guess
    ids = np.arange(20) % 14
    res = evaluate(model, ids, n_chars=2 * 19, batch_size=1)
    assert res["n_tokens"] == 19  # windows [0, 8), [8, 16), [16, 19): each token after the first
    assert res["total_nats"] == pytest.approx(19 * math.log(14), rel=1e-6)
    assert res["bits_per_token"] == pytest.approx(math.log2(14), rel=1e-6)
    assert res["perplexity"] == pytest.approx(14, rel=1e-5)
    assert res["bpc"] == pytest.approx(math.log2(14) / 2, rel=1e-6)  # 2 characters per token


def test_bits_per_char_by_hand():
    assert bits_per_char(100.0, 50) == pytest.approx(100 / (math.log(2) * 50))
    with pytest.raises(ValueError, match="n_chars=0"):
        bits_per_char(1.0, 0)


def test_train_accepts_an_iterator_of_batches_with_ignored_targets():
    model = SpikeLLM(tiny())
    x = np.tile(IDS[:8], (2, 1))
    y = np.tile(IDS[1:9], (2, 1))
    y[:, :3] = -1  # IGNORE_INDEX: e.g. a metadata prefix
    hist = train(model, iter([(x, y)] * 3), steps=3)
    assert len(hist["loss"]) == 3 and hist["loss"][-1] < hist["loss"][0]
    with pytest.raises(ValueError, match="at least 2 tokens"):
        train(model, IDS[:1], rng=np.random.default_rng(0))


def test_bad_token_arrays_are_rejected(rng):
    model = SpikeLLM(tiny())
    with pytest.raises(ValueError, match="1-D integer array"):
        train(model, np.zeros((2, 5), int), rng=rng)
    with pytest.raises(ValueError, match="vocab_size=14: build the model"):
        evaluate(model, np.array([1, 2, 30]))
    with pytest.raises(TypeError, match="rng=np.random.default_rng"):
        train(model, IDS)


def test_train_step_refuses_a_nan_update():
    model = SpikeLLM(tiny())
    opt = AdamW(model)
    model.modules["lm_head"].params["W"][0, 0] = np.nan
    before = model.modules["blocks.0"].modules["fc1"].params["W"].copy()
    with pytest.raises(TrainingDiverged, match="the loss is nan"):
        train_step(model, opt, IDS[None, :16], IDS[None, 1:17])
    np.testing.assert_array_equal(model.modules["blocks.0"].modules["fc1"].params["W"], before)
    assert opt.t == 0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model = SpikeLLM(tiny())

    def poison(step, rec):
        if step == 3:  # after the checkpoint of step 4 is written
            model.modules["lm_head"].params["W"][...] = np.inf

    with pytest.raises(TrainingDiverged) as err:
        train(model, IDS, steps=10, batch_size=4, rng=np.random.default_rng(0),
              ckpt_dir=tmp_path / "ck", ckpt_every=2, callback=poison)
    msg = str(err.value)
    assert "training stopped at step 4 (counting from 0): the loss is nan" in msg
    assert "weights after 4 updates" in msg and "holds the weights after 4 updates" in msg
    good, _, meta = load_checkpoint(tmp_path / "ck")
    assert meta["step"] == 4
    assert all(np.isfinite(p).all() for p in good.parameters())


def test_benchmark_train_step_reports_consistent_numbers():
    from spike_lib.numpy_impl.model import train_step_flops
    from spike_lib.numpy_impl.train import benchmark_train_step

    cfg = tiny(n_embd=16, d_ff=32)
    res = benchmark_train_step(cfg, batch_size=2, repeats=1)
    assert res["tokens_per_s"] * res["step_s"] == pytest.approx(2 * 16)
    assert res["model_gflops_per_s"] * res["step_s"] * 1e9 == pytest.approx(
        train_step_flops(cfg, 2))
