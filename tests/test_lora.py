"""NumPy LoRA: hand-computed forward, gradient checks, merge/unmerge, freezing, adapters on disk."""

import json

import numpy as np
import pytest

from spike_lib.train.check import gradcheck_config, normwise_rel_error
from spike_lib.train.checkpoint import save_checkpoint
from spike_lib.core.config import Config
from spike_lib.core.gradcheck import check_module, numerical_grad
from spike_lib.numpy_impl.layers import Linear, cross_entropy
from spike_lib.numpy_impl.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    LoRALinear,
    Trainable,
    adapter_state_dict,
    apply_lora,
    check_base,
    expand_targets,
    fingerprint,
    load_adapter,
    merge_lora,
    save_adapter,
    unmerge_lora,
)
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.numpy_impl.optim import AdamW
from spike_lib.numpy_impl.train import train_step

CFG = Config.tiny(n_layer=2, vocab_size=30, block_size=8, n_embd=16, n_head=2, d_ff=32)


def _batch(seed=1, cfg=CFG):
    r = np.random.default_rng(seed)
    return (r.integers(0, cfg.vocab_size, (3, cfg.block_size)),
            r.integers(0, cfg.vocab_size, (3, cfg.block_size)))


def _randomize_b(model, seed=2):
    r = np.random.default_rng(seed)
    for name, p, _ in model.named_parameters():
        if name.endswith(".B"):
            p[...] = r.normal(0.0, 0.2, p.shape)


def test_forward_by_hand():
    base = Linear(2, 3, np.random.default_rng(0))
    base.params["W"] = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    base.params["b"] = np.array([0.5, 0.0, 0.0])
    lora = LoRALinear(base, rank=1, alpha=2.0, rng=np.random.default_rng(0))
    x = np.array([[1.0, 2.0]])
    assert np.array_equal(lora(x), [[1.5, 2.0, 0.0]])  # B = 0: exactly the base layer
    lora.params["A"] = np.array([[1.0], [1.0]])  # x A = 3
    lora.params["B"] = np.array([[1.0, 0.0, -1.0]])
    # y = x W + b + (alpha / r) (x A) B = [1.5, 2, 0] + 2 * 3 * [1, 0, -1]
    assert np.allclose(lora(x), [[7.5, 2.0, -6.0]])
    assert lora.num_params() == 6 + 3 + 2 + 3


def test_init_is_the_base_model_exactly():
    model = SpikeLLM(CFG)
    x, _ = _batch()
    before = model(x)
    names = apply_lora(model, rank=4, alpha=8.0, rng=np.random.default_rng(0))
    assert len(names) == 2 * 4 * CFG.n_layer
    assert np.array_equal(model(x), before)
    a = model.modules["blocks.0"].modules["attn"].modules["q_proj"].params["A"]
    assert a.shape == (16, 4) and 0.005 < a.std() < 0.02  # small and random


@pytest.mark.parametrize("train_base", [False, True])
def test_lora_linear_gradcheck(train_base):
    rng = np.random.default_rng(3)
    base = Linear(5, 4, rng).astype(np.float64)
    lora = LoRALinear(base, rank=2, alpha=3.0, rng=rng, train_base=train_base)
    lora.params["B"] = rng.standard_normal((2, 4))  # nonzero B: dA is not trivially 0
    x = rng.standard_normal((2, 3, 5))
    errs = check_module(lora, x, rng)
    for name in ("x", "A", "B") + (("W", "b") if train_base else ()):
        assert errs[name] < 1e-7, (name, errs)
    if not train_base:  # a frozen base gets no gradient at all
        assert not lora.grads["W"].any() and not lora.grads["b"].any()


def test_model_gradcheck_through_lora_smooth_float64():
    cfg = gradcheck_config()  # differentiable reset: finite differences see that path too
    model = SpikeLLM(cfg)
    apply_lora(model, rank=2, alpha=4.0, targets=("attn", "mlp"), rng=np.random.default_rng(0))
    model.astype(np.float64).set_smooth(True)
    _randomize_b(model)
    x, y = _batch(cfg=cfg)
    _, dlogits = cross_entropy(model(x), y)
    model.zero_grad()
    model.backward(dlogits)
    checked = 0
    for name, p, g in model.named_parameters():
        if name.endswith((".A", ".B")):
            num = numerical_grad(lambda: cross_entropy(model(x), y)[0], p, 1e-5)
            assert normwise_rel_error(g, num) < 1e-6, name
            checked += 1
    assert checked == 2 * 6 * cfg.n_layer


def test_merge_unmerge_and_merged_logits():
    model = SpikeLLM(CFG)
    apply_lora(model, rank=3, alpha=6.0, targets="attn,mlp", rng=np.random.default_rng(0))
    _randomize_b(model)
    x, _ = _batch()
    w0 = {n: p.copy() for n, p, _ in model.named_parameters() if n.endswith(".W")}
    adapted = model(x)
    merge_lora(model)
    lin = model.modules["blocks.1"].modules["fc2"]
    assert lin.merged and np.allclose(lin.params["W"], w0["blocks.1.fc2.W"] + lin.delta())
    assert np.allclose(model(x), adapted, atol=1e-5)  # one matmul instead of three, same logits
    unmerge_lora(model)
    for n, p, _ in model.named_parameters():
        if n.endswith(".W"):
            assert np.max(np.abs(p - w0[n])) <= 1e-6, n
    assert np.allclose(model(x), adapted, atol=1e-6)


def test_parameter_count_and_targets():
    model = SpikeLLM(CFG)
    names = apply_lora(model, rank=2, alpha=1.0, targets=("attn", "mlp"),
                       rng=np.random.default_rng(0))
    sizes = {n: p.size for n, p, _ in model.named_parameters()}
    d, f, r = CFG.n_embd, CFG.d_ff, 2
    assert sum(sizes[n] for n in names) == CFG.n_layer * r * (4 * 2 * d + 2 * (d + f))
    assert expand_targets("attn") == ("q_proj", "k_proj", "v_proj", "out_proj")
    assert expand_targets(["fc1", "attn"])[:2] == ("fc1", "q_proj")


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 0}, "rank=0 is invalid"),
    ({"rank": 17}, r"rank=17 is larger than blocks.0.attn.k_proj \(16 -> 16\).*smaller"),
    ({"rank": 2.5}, "must be an integer"),
    ({"alpha": 0.0}, "alpha=0.0 is invalid"),
    ({"targets": ("nope",)}, "no Linear layer named"),
])
def test_bad_lora_arguments(kwargs, match):
    model = SpikeLLM(CFG)
    with pytest.raises(ValueError, match=match):
        apply_lora(model, **{"rank": 2, "alpha": 4.0, **kwargs})
    assert not any(n.endswith(".A") for n, _, _ in model.named_parameters())  # nothing swapped


def test_frozen_parameters_never_change():
    model = SpikeLLM(CFG)
    names = apply_lora(model, rank=2, alpha=4.0, rng=np.random.default_rng(0))
    frozen = {n: p.copy() for n, p, _ in model.named_parameters() if n not in names}
    view = Trainable(model, names)
    assert view.num_params() == sum(p.size for n, p, _ in model.named_parameters() if n in names)
    opt = AdamW(view, lr=1e-2, weight_decay=0.1)
    x, y = _batch()
    for _ in range(3):
        train_step(view, opt, x, y, clip=1.0)
    for n, p, _ in model.named_parameters():
        if n not in names:
            assert np.array_equal(p, frozen[n]), f"{n} changed"
        elif n.endswith(".B") and "out_proj" not in n:  # Q, K, V adapters learn
            assert np.abs(p).max() > 1e-3, f"{n} got no gradient"
    with pytest.raises(ValueError, match="not parameters"):
        Trainable(model, ["blocks.0.nope"])


def _base_checkpoint(tmp_path, seed=0):
    model = SpikeLLM(CFG.replace(seed=seed))
    save_checkpoint(tmp_path / f"base{seed}", model)
    return model, tmp_path / f"base{seed}"


def test_adapter_round_trip(tmp_path):
    model, base = _base_checkpoint(tmp_path)
    apply_lora(model, rank=2, alpha=4.0, targets=("attn", "mlp"), rng=np.random.default_rng(0))
    _randomize_b(model)
    x, _ = _batch()
    want = model(x)
    save_adapter(tmp_path / "ad", model, fingerprint(base), meta={"steps": 3})
    assert sorted(p.name for p in (tmp_path / "ad").iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    assert not list(tmp_path.glob(".ad.*"))  # no temporary folder left behind
    with np.load(tmp_path / "ad" / ADAPTER_WEIGHTS, allow_pickle=False) as data:
        assert set(data.files) == set(adapter_state_dict(model))
        assert all(k.endswith((".A", ".B")) for k in data.files) and len(data.files) == 24
    info = json.loads((tmp_path / "ad" / ADAPTER_CONFIG).read_text())
    assert (info["rank"], info["alpha"], info["steps"]) == (2, 4.0, 3)
    assert info["base"]["config"]["n_embd"] == 16 and len(info["base"]["weights_sha256"]) == 64
    fresh = SpikeLLM(CFG)
    load_adapter(tmp_path / "ad", fresh, fingerprint(base))
    assert np.allclose(fresh(x), want, atol=1e-6)


def test_adapter_for_another_base_model(tmp_path):
    model, base = _base_checkpoint(tmp_path)
    _, other = _base_checkpoint(tmp_path, seed=1)
    apply_lora(model, rank=2, alpha=4.0)
    save_adapter(tmp_path / "ad", model, fingerprint(base))
    want, got = fingerprint(base)["weights_sha256"][:16], fingerprint(other)["weights_sha256"][:16]
    with pytest.raises(ValueError, match=f"{want}.*{got}.*--checkpoint it was fine-tuned"):
        load_adapter(tmp_path / "ad", SpikeLLM(CFG.replace(seed=1)), fingerprint(other))
    wide = SpikeLLM(CFG.replace(n_embd=32))
    save_checkpoint(tmp_path / "wide", wide)
    with pytest.raises(ValueError, match=r"configs differ in \['n_embd'\]"):
        check_base(json.loads((tmp_path / "ad" / ADAPTER_CONFIG).read_text()),
                   fingerprint(tmp_path / "wide"))
    with pytest.raises(ValueError, match="no adapter folder at .*missing"):
        load_adapter(tmp_path / "missing", model, fingerprint(base))
    with pytest.raises(ValueError, match="no LoRA adapters"):
        save_adapter(tmp_path / "ad2", SpikeLLM(CFG), fingerprint(base))
