"""The NumPy step split between threads (spike_lib.numpy_impl.parallel) is the whole batch's step."""

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.numpy_impl import parallel as par
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.numpy_impl.optim import AdamW
from spike_lib.numpy_impl.train import cross_entropy_ignoring, train_step, weighted_cross_entropy
from spike_lib.train.check import normwise_rel_error

CFG = Config.tiny(vocab_size=30, block_size=8, n_embd=16, d_ff=32)
needs_blas = pytest.mark.skipif(par._LOCAL_THREADS is None,
                                reason="NumPy's OpenBLAS has no openblas_set_num_threads_local")


def _batch(seed=5, rows=4):
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, 30, (rows, 8)), rng.integers(0, 30, (rows, 8))
    y[:2].flat[:13] = IGNORE_INDEX  # the first half keeps 3 of its 16 targets
    return x, y


def _grads(model):
    return {k: g.copy() for k, _, g in model.named_parameters()}


def test_batch_parts_hand_values():
    assert [par.batch_parts(b, 2) for b in (16, 7, 1)] == [2, 1, 1]
    assert [par.batch_parts(b, 4) for b in (16, 9, 6, 2)] == [4, 3, 3, 2]
    assert par.batch_parts(16, 1) == 1


def test_replica_shares_weights_not_gradients():
    model = SpikeLLM(CFG)
    rep = par.replica(model)
    for (name, p, g), (_, rp, rg) in zip(model.named_parameters(), rep.named_parameters()):
        assert rp is p and rg is not g and not rg.any()
    assert rep.blocks[0] is rep.modules["blocks.0"] and rep.blocks[0] is not model.blocks[0]
    model.modules["lm_head"].params["W"][0, 0] += 1.0  # an in-place change reaches the replica
    assert rep.modules["lm_head"].params["W"][0, 0] == model.modules["lm_head"].params["W"][0, 0]


@needs_blas
@pytest.mark.parametrize("parts", [2, 4])
def test_split_gives_the_whole_batch_mean_loss_and_gradient(parts):
    x, y = _batch()
    whole, split = SpikeLLM(CFG), SpikeLLM(CFG)
    loss, dlogits = cross_entropy_ignoring(whole(x), y)
    whole.zero_grad()
    whole.backward(dlogits)
    got = par.loss_and_grads(split, x, y, cross_entropy_ignoring, None, parts)
    assert got == pytest.approx(loss, rel=1e-6)
    want, have = _grads(whole), _grads(split)
    assert max(normwise_rel_error(have[k], want[k]) for k in want) < 1e-5
    halves = [cross_entropy_ignoring(SpikeLLM(CFG)(x[r]), y[r])[0] for r in (slice(0, 2), slice(2, 4))]
    assert abs(np.mean(halves) - loss) > 0.05  # so the token-count weighting is what matched


@needs_blas
def test_split_of_a_weighted_loss_adds_the_parts():
    x, y = _batch(7)
    w = np.random.default_rng(1).random(y.shape).astype(np.float32)
    w /= w.sum()
    whole, split = SpikeLLM(CFG), SpikeLLM(CFG)
    loss, dlogits = weighted_cross_entropy(whole(x), np.where(y < 0, 0, y), w)
    whole.zero_grad()
    whole.backward(dlogits)
    got = par.loss_and_grads(split, x, np.where(y < 0, 0, y), weighted_cross_entropy, w, 2)
    assert got == pytest.approx(loss, rel=1e-6)
    want, have = _grads(whole), _grads(split)
    assert max(normwise_rel_error(have[k], want[k]) for k in want) < 1e-5


@needs_blas
def test_three_train_steps_split_and_whole_agree():
    x, y = _batch()
    models = {}
    for parallel in (1, 2):
        model = SpikeLLM(CFG)
        opt = AdamW(model, lr=1e-2)
        recs = [train_step(model, opt, x, y, lr=1e-2, clip=0.5, parallel=parallel)
                for _ in range(3)]
        models[parallel] = (recs, model.state_dict())
    for a, b in zip(*(models[p][0] for p in (1, 2))):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    assert max(normwise_rel_error(models[2][1][k], models[1][1][k]) for k in models[1][1]) < 1e-4


def test_no_split_for_a_trainable_view():
    from spike_lib.numpy_impl.lora import Trainable

    model = SpikeLLM(CFG)
    assert not par.can_split(Trainable(model, ["lm_head.W"]))


def test_no_split_with_dropout_on():
    model = SpikeLLM(CFG.replace(dropout=0.5)).train(True)
    assert not par.can_split(model)
    model.train(False)
    assert par.can_split(model) == (par._LOCAL_THREADS is not None)


@needs_blas
def test_an_error_in_a_part_is_raised_after_every_part_ends():
    model = SpikeLLM(CFG)
    x, y = _batch()
    with pytest.raises(ValueError):
        par.loss_and_grads(model, x, y[:, :5], cross_entropy_ignoring, None, 2)
