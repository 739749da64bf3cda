"""MLX LoRA: parity with the NumPy LoRA (logits, LoRA gradients), freezing, merge, adapters."""

import warnings

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from mlx.utils import tree_flatten

from spike_lib.train.check import normwise_rel_error
from spike_lib.train.checkpoint import save_checkpoint
from spike_lib.core.config import Config
from spike_lib.mlx_impl import lora as mlx_lora
from spike_lib.mlx_impl.model import SpikeLLM
from spike_lib.mlx_impl.train import AdamW, loss_and_grads, make_step, train_step
from spike_lib.numpy_impl import lora as np_lora
from spike_lib.numpy_impl.layers import cross_entropy
from spike_lib.numpy_impl.model import SpikeLLM as NpSpikeLLM

warnings.filterwarnings("ignore", "MLX is using its slow", RuntimeWarning)

CFG = Config.tiny(n_layer=2, vocab_size=30, block_size=8, n_embd=16, n_head=2, d_ff=32)


def _batch(seed=1):
    r = np.random.default_rng(seed)
    return (r.integers(0, CFG.vocab_size, (3, CFG.block_size)),
            r.integers(0, CFG.vocab_size, (3, CFG.block_size)))


def _pair(targets=("attn", "mlp")):
    """A NumPy and an MLX model with the same weights and the same adapters (B random)."""
    ref, model = NpSpikeLLM(CFG), SpikeLLM(CFG)
    np_names = np_lora.apply_lora(ref, 4, 8.0, targets, np.random.default_rng(0))
    names = mlx_lora.apply_lora(model, 4, 8.0, targets, np.random.default_rng(0))
    assert names == np_names
    r = np.random.default_rng(2)
    for n, p, _ in ref.named_parameters():
        if n.endswith(".B"):
            p[...] = r.normal(0.0, 0.2, p.shape)
    mine = model.state_dict()
    assert all(np.array_equal(mine[k], v) for k, v in ref.state_dict().items() if
               not k.endswith(".B"))  # same rng, same A
    model.load_state_dict(ref.state_dict())
    return ref, model, names


def test_same_logits_and_lora_gradients():
    ref, model, names = _pair()
    x, y = _batch()
    assert np.allclose(np.array(model(mx.array(x))), ref(x), atol=1e-4)
    loss, dlogits = cross_entropy(ref(x), y)
    ref.zero_grad()
    ref.backward(dlogits)
    mloss, grads = loss_and_grads(model, mx.array(x), mx.array(y))
    grads = dict(tree_flatten(grads))
    assert sorted(grads) == sorted(names)  # autodiff sees only the adapters
    assert abs(mloss.item() - loss) < 1e-5 * abs(loss)
    np_grads = {n: g for n, _, g in ref.named_parameters()}
    for n in names:
        assert normwise_rel_error(np.array(grads[n]), np_grads[n]) <= 1e-4, n
    for p in ("q", "k", "v"):  # the original's MLX Q/K/V adapters got no gradient: ours do
        assert float(mx.abs(grads[f"blocks.0.attn.{p}_proj.B"]).sum()) > 1e-4


def test_frozen_weights_stay_bit_identical():
    model = SpikeLLM(CFG)
    names = mlx_lora.apply_lora(model, 2, 4.0, ("attn",), np.random.default_rng(0))
    assert sorted(k for k, _ in tree_flatten(model.trainable_parameters())) == sorted(names)
    before = model.state_dict()
    opt = AdamW(1e-2)
    step = make_step(model, opt, clip=1.0)
    x, y = _batch()
    for _ in range(3):
        train_step(step, opt, x, y)
    after = model.state_dict()
    for n, v in before.items():
        if n not in names:
            assert np.array_equal(after[n], v), f"{n} changed"
        elif n.endswith(".B") and "out_proj" not in n:
            assert np.abs(after[n]).max() > 1e-3, f"{n} got no update"


def test_freeze_except_names():
    model = SpikeLLM(CFG)
    mlx_lora.freeze_except(model, ["ln_f.gamma", "blocks.1.fc2.W"])
    assert sorted(k for k, _ in tree_flatten(model.trainable_parameters())) == [
        "blocks.1.fc2.W", "ln_f.gamma"]
    with pytest.raises(ValueError, match="not parameters"):
        mlx_lora.freeze_except(model, ["blocks.9.fc2.W"])


def test_merge_unmerge():
    _, model, _ = _pair()
    x = mx.array(_batch()[0])
    w0 = {n: v for n, v in model.state_dict().items() if n.endswith(".W")}
    adapted = np.array(model(x))
    mlx_lora.merge_lora(model)
    assert np.allclose(np.array(model(x)), adapted, atol=1e-5)
    mlx_lora.unmerge_lora(model)
    for n, v in model.state_dict().items():
        if n.endswith(".W"):
            assert np.max(np.abs(v - w0[n])) <= 1e-6, n
    trainable = sorted(k for k, _ in tree_flatten(model.trainable_parameters()))
    assert trainable == sorted(n for n in model.state_dict() if n.endswith((".A", ".B")))


def test_bad_rank_and_adapter_from_numpy(tmp_path):
    with pytest.raises(ValueError, match=r"rank=32 is larger than .*\(16 -> 16\)"):
        mlx_lora.apply_lora(SpikeLLM(CFG), 32, 8.0)
    ref, _, _ = _pair()
    base = NpSpikeLLM(CFG)
    save_checkpoint(tmp_path / "base", base)
    np_lora.save_adapter(tmp_path / "ad", ref, np_lora.fingerprint(tmp_path / "base"))
    model = SpikeLLM(CFG)
    np_lora.load_adapter(tmp_path / "ad", model, np_lora.fingerprint(tmp_path / "base"),
                         apply=mlx_lora.apply_lora)
    x = _batch()[0]
    assert np.allclose(np.array(model(mx.array(x))), ref(x), atol=1e-4)
