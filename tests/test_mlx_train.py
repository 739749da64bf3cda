"""MLX training: AdamW and the compiled step agree with the NumPy optimizer and train_step."""

import math
import warnings

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from mlx.utils import tree_flatten

from spike_lib.train.check import normwise_rel_error
from spike_lib.core.config import Config
from spike_lib.mlx_impl.model import SpikeLLM
from spike_lib.mlx_impl.train import AdamW, grad_norm, make_step, train, train_step
from spike_lib.numpy_impl.model import SpikeLLM as NpSpikeLLM
from spike_lib.numpy_impl.optim import AdamW as NpAdamW
from spike_lib.numpy_impl.train import TrainingDiverged
from spike_lib.numpy_impl.train import train_step as np_train_step

warnings.filterwarnings("ignore", "MLX is using its slow", RuntimeWarning)
CFG = Config.tiny(vocab_size=30, block_size=8, n_embd=16, d_ff=32)


def _batch(seed=2):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 30, (4, 8)), rng.integers(0, 30, (4, 8))


def test_adamw_first_step_hand_value_and_no_decay_on_vectors():
    # step 1 with bias correction: m_hat = g, v_hat = g^2, so p -= lr * g / (|g| + eps) = lr sign(g)
    opt = AdamW(0.1, weight_decay=0.5)
    params = {"W": mx.ones((2, 2)), "b": mx.ones((2,))}
    grads = {"W": mx.full((2, 2), 3.0), "b": mx.full((2,), -2.0)}
    opt.init(params)
    new = opt.apply_gradients(grads, params)
    assert np.allclose(np.array(new["W"]), 1 - 0.1 * 0.5 - 0.1)  # decayed, then the Adam step
    assert np.allclose(np.array(new["b"]), 1 + 0.1)  # a vector: no decay


@pytest.mark.parametrize("compiled,parallel", [(True, 1), (False, 1), (True, 2)])
def test_three_steps_match_numpy(compiled, parallel):
    ref, model = NpSpikeLLM(CFG), SpikeLLM(CFG)
    opt_np, opt = NpAdamW(ref, lr=1e-2), AdamW(1e-2)
    step = make_step(model, opt, clip=0.5, compile=compiled, parallel=parallel)
    x, y = _batch()
    for lr in (1e-2, 5e-3, 2e-3):
        want = np_train_step(ref, opt_np, x, y, lr=lr, clip=0.5)
        got = train_step(step, opt, x, y, lr=lr)
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-4)
        assert want["grad_norm"] > 0.5  # clipping was active
    theirs = ref.state_dict()
    errs = [normwise_rel_error(a, theirs[k]) for k, a in model.state_dict().items()]
    assert max(errs) < 1e-5


def test_grad_norm_hand_value():
    assert grad_norm({"a": mx.array([3.0]), "b": [mx.array([[4.0, 0.0]])]}).item() == 5.0


def test_non_finite_loss_keeps_the_weights():
    model = SpikeLLM(CFG)
    opt = AdamW(1e-2)
    step = make_step(model, opt)
    x, y = _batch()
    train_step(step, opt, x, y)
    before = model.state_dict()
    model.lm_head.W = mx.full(model.lm_head.W.shape, float("nan"))
    before["lm_head.W"] = np.array(model.lm_head.W)
    with pytest.raises(TrainingDiverged, match="not updated"):
        train_step(step, opt, x, y)
    after = model.state_dict()
    assert all(np.array_equal(after[k], before[k], equal_nan=True) for k in before)


def test_train_learns_a_repeating_sequence():
    ids = np.tile(np.arange(10), 40)  # 0 1 2 ... 9 0 1 ...: perfectly predictable
    model = SpikeLLM(CFG)
    hist = train(model, ids, steps=40, batch_size=8, lr=1e-2, warmup=5,
                 rng=np.random.default_rng(0))
    assert len(hist["loss"]) == 40 and hist["lr"][4] == pytest.approx(1e-2)
    assert hist["loss"][0] > math.log(30) - 0.5  # starts near chance
    assert np.mean(hist["loss"][-5:]) < 0.5 * hist["loss"][0]
    assert not model.training


def test_bad_input():
    model = SpikeLLM(CFG)
    opt = AdamW(1e-3)
    step = make_step(model, opt)
    with pytest.raises(ValueError, match="vocab_size"):
        train_step(step, opt, np.full((2, 8), 31), np.zeros((2, 8), int))
    with pytest.raises(TypeError, match="rng"):
        train(model, np.arange(20) % 30, steps=1)
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW(1e-3, weight_decay=-1.0)
    names = [n for n, _ in tree_flatten(opt.state) if n.startswith("lm_head")]
    assert names == ["lm_head.W.m", "lm_head.W.v"]  # init ran before the step was compiled


def test_bench_train_reports_both_backends():
    from argparse import Namespace

    from spike_lib.train.bench import train_bench
    from spike_lib.numpy_impl.model import train_step_flops

    args = Namespace(config="tiny", batch=2, repeats=1, backend="all", no_before=True, n=64)
    out = train_bench(args)
    for key in ("numpy_train_tokens_per_s", "mlx_train_tokens_per_s", "matmul_gflops",
                "mlx_model_flops_fraction", "model_flops_fraction", "peak_memory_mb",
                "mlx_eager_train_tokens_per_s", "mlx_speedup", "numpy_infer_tokens_per_s",
                "model_flops_fraction_of_numpy_matmul"):
        assert out[key] > 0, key
    best = max(out["matmul_gflops"], out["mlx_matmul_gflops"])
    per_token = train_step_flops(Config.tiny(), 2) / (2 * Config.tiny().block_size)
    assert out["model_flops_fraction"] == pytest.approx(
        out["numpy_train_tokens_per_s"] * per_token / 1e9 / best)  # Eq. 7.5
    assert out["model_flops_fraction_of_numpy_matmul"] == pytest.approx(
        out["numpy_train_tokens_per_s"] * per_token / 1e9 / out["matmul_gflops"])
    assert out["mlx_speedup"] == pytest.approx(
        out["mlx_train_tokens_per_s"] / out["numpy_train_tokens_per_s"])


def test_evaluate_matches_numpy():
    from spike_lib.mlx_impl.train import evaluate
    from spike_lib.numpy_impl.train import evaluate as np_evaluate

    ids = np.random.default_rng(3).integers(0, 30, 45)  # 5 full windows of 8 and a short one
    model = SpikeLLM(CFG.replace(dropout=0.1)).train(True)
    want = np_evaluate(NpSpikeLLM(CFG.replace(dropout=0.1)), ids, n_chars=90)
    got = evaluate(model, ids, n_chars=90)
    assert got["n_tokens"] == want["n_tokens"] == 44
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)  # dropout was off in both
    assert got["bpc"] == pytest.approx(want["bpc"], rel=1e-5) and model.training


def test_compiled_step_draws_new_dropout_masks():
    model = SpikeLLM(CFG.replace(dropout=0.5)).train(True)
    step = make_step(model, AdamW(0.0, weight_decay=0.0))  # lr 0: the weights never change
    x, y = (mx.array(a) for a in _batch())
    mx.random.seed(0)
    losses = [step(x, y)[0].item() for _ in range(3)]
    assert len(set(losses)) == 3  # mx.random.state is an input and output of the compiled step
    model.train(False)
    assert step(x, y)[0].item() == step(x, y)[0].item()  # eval mode: no dropout


def test_optimizer_state_resumes_across_ports(tmp_path):
    from spike_lib.train.checkpoint import load_checkpoint, save_checkpoint
    from spike_lib.mlx_impl.model import load_checkpoint as mlx_load
    from spike_lib.mlx_impl.model import save_checkpoint as mlx_save

    x, y = _batch()
    ref = NpSpikeLLM(CFG)
    opt_np = NpAdamW(ref, lr=1e-2)
    for _ in range(2):
        np_train_step(ref, opt_np, x, y, clip=None)
    save_checkpoint(tmp_path / "np", ref, optimizer=opt_np)
    opt = AdamW(1e-2)
    model, _, _ = mlx_load(tmp_path / "np", optimizer=opt)  # NumPy -> MLX, moments included
    assert int(opt.state["step"]) == 2
    step = make_step(model, opt, clip=None)  # init keeps the loaded moments
    want = np_train_step(ref, opt_np, x, y, clip=None)
    assert train_step(step, opt, x, y)["loss"] == pytest.approx(want["loss"], rel=1e-5)
    theirs = ref.state_dict()
    assert max(normwise_rel_error(a, theirs[k]) for k, a in model.state_dict().items()) < 1e-5
    mlx_save(tmp_path / "mx", model, optimizer=opt)  # MLX -> NumPy
    back_opt = NpAdamW(NpSpikeLLM(CFG))
    load_checkpoint(tmp_path / "mx", back_opt.model, back_opt)
    assert back_opt.t == 3
    assert normwise_rel_error(back_opt.v["blocks.0.fc2.W"],
                              opt_np.v["blocks.0.fc2.W"]) < 1e-5
    with pytest.raises(ValueError, match="optimizer.init"):
        AdamW(1e-2).load_state_dict(opt_np.state_dict())


def test_parallel_parts_hand_values():
    from spike_lib.mlx_impl.train import parallel_parts

    with pytest.raises(ValueError, match="parallel"):
        make_step(SpikeLLM(CFG), AdamW(1e-3), parallel=0)
    assert [parallel_parts(b, cores=2) for b in (16, 7, 1)] == [2, 1, 1]
    assert [parallel_parts(b, cores=4) for b in (16, 9, 6, 2)] == [4, 3, 3, 2]


def test_split_batch_gives_the_whole_batch_loss_and_gradients():
    # parts weighted by their token counts: the first half has 13 of its 16 targets ignored,
    # so an unweighted mean of the two halves' losses would be far from the whole batch's
    import mlx.optimizers as optim

    from spike_lib.data.batches import IGNORE_INDEX

    x, y = _batch(5)
    y[:2].flat[:13] = IGNORE_INDEX
    got = {}
    for parts in (1, 2):
        model = SpikeLLM(CFG)
        before = dict(tree_flatten(model.parameters()))
        step = make_step(model, optim.SGD(learning_rate=1.0), clip=None, parallel=parts)
        loss, norm = step(x, y)
        after = dict(tree_flatten(model.parameters()))
        got[parts] = (loss.item(), norm.item(), {k: np.array(before[k] - after[k]) for k in after})
    halves = []
    for rows in (slice(0, 2), slice(2, 4)):
        halves.append(train_step(make_step(SpikeLLM(CFG), AdamW(0.0), parallel=1), AdamW(0.0),
                                 x[rows], y[rows])["loss"])
    assert got[2][0] == pytest.approx(got[1][0], rel=1e-6)
    assert abs(np.mean(halves) - got[1][0]) > 0.05  # the weighting matters here
    assert got[2][1] == pytest.approx(got[1][1], rel=1e-5)
    errs = [normwise_rel_error(got[2][2][k], got[1][2][k]) for k in got[1][2]]
    assert max(errs) < 1e-5
