"""AdamW, clipping and the learning-rate schedule against hand-computed steps."""

import math

import numpy as np
import pytest

from spike_lib.numpy_impl.module import Module
from spike_lib.numpy_impl.optim import AdamW, clip_grad_norm, cosine_lr, grad_norm


class Toy(Module):
    """One matrix w (decayed by default) and one bias b (not decayed), in a sub-module."""

    def __init__(self):
        super().__init__()
        self.add_param("w", np.ones((1, 1)))
        child = self.add_module("layer", Module())
        child.add_param("b", np.ones(1))


def test_adamw_two_hand_computed_steps():
    model = Toy()
    opt = AdamW(model, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    model.grads["w"][...] = 0.5
    opt.step()
    # m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25: step 0.1 * 0.5 / 0.5 = 0.1
    # decay 0.1 * 0.1 * 1.0 = 0.01, so w = 1 - 0.01 - 0.1
    assert math.isclose(model.params["w"][0, 0], 0.89, rel_tol=1e-7)
    opt.step()  # same gradient: m_hat and v_hat stay 0.5 and 0.25 thanks to bias correction
    assert math.isclose(model.params["w"][0, 0], 0.89 - 0.0089 - 0.1, rel_tol=1e-7)
    assert opt.t == 2


def test_bias_is_not_decayed_and_zero_grad_means_no_move():
    model = Toy()
    opt = AdamW(model, lr=0.1, weight_decay=0.5)
    opt.step()  # all gradients are 0: Adam's step is 0, only decoupled decay acts
    assert math.isclose(model.params["w"][0, 0], 1.0 - 0.1 * 0.5)
    assert model.modules["layer"].params["b"][0] == 1.0


def test_layerwise_lr_multipliers():
    model = Toy()
    opt = AdamW(model, lr=0.1, weight_decay=0.0, lr_mult={"layer": 0.5})
    assert opt.mult("layer.b") == 0.5 and opt.mult("w") == 1.0
    for _, _, g in model.named_parameters():
        g[...] = 1.0
    opt.step()
    assert math.isclose(model.params["w"][0, 0], 0.9, rel_tol=1e-6)
    assert math.isclose(model.modules["layer"].params["b"][0], 0.95, rel_tol=1e-6)
    opt2 = AdamW(Toy(), lr_mult=lambda name: 3.0 if name == "w" else 1.0)
    assert opt2.mult("w") == 3.0 and opt2.mult("layer.b") == 1.0
    assert AdamW(Toy(), lr_mult={"lay": 2.0}).mult("layer.b") == 1.0  # prefixes end at a dot


def test_optimizer_survives_astype_and_state_roundtrip():
    model = Toy()
    opt = AdamW(model, lr=0.1, weight_decay=0.0)
    model.astype(np.float32)  # replaces the arrays: the optimizer must look them up by name
    model.grads["w"][...] = 1.0
    opt.step()
    assert math.isclose(float(model.params["w"][0, 0]), 0.9, rel_tol=1e-6)
    state = opt.state_dict()
    other = AdamW(Toy()).load_state_dict(state)
    assert other.t == 1 and np.allclose(other.m["w"], 0.1)
    with pytest.raises(ValueError, match="does not fit"):
        other.load_state_dict({"t": np.array(1)})


def test_clip_grad_norm():
    model = Toy()
    model.grads["w"][...] = 3.0
    model.modules["layer"].grads["b"][...] = 4.0
    assert math.isclose(grad_norm(model), 5.0)
    assert math.isclose(clip_grad_norm(model, 1.0), 5.0)  # returns the norm before clipping
    assert math.isclose(model.grads["w"][0, 0], 0.6) and math.isclose(grad_norm(model), 1.0)
    assert math.isclose(clip_grad_norm(model, 10.0), 1.0)
    assert math.isclose(model.grads["w"][0, 0], 0.6)  # below the limit: untouched
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(model, 0.0)


def test_cosine_lr_schedule_values():
    assert math.isclose(cosine_lr(0, 1.0, 10, 110), 0.1)  # warmup starts at max/warmup
    assert math.isclose(cosine_lr(9, 1.0, 10, 110), 1.0)
    assert math.isclose(cosine_lr(10, 1.0, 10, 110), 1.0)  # decay starts at the peak
    assert math.isclose(cosine_lr(60, 1.0, 10, 110, min_lr=0.2), 0.6)  # halfway: the mean
    assert math.isclose(cosine_lr(110, 1.0, 10, 110, min_lr=0.2), 0.2)
    assert math.isclose(cosine_lr(500, 1.0, 10, 110, min_lr=0.2), 0.2)  # stays at min_lr
    assert math.isclose(cosine_lr(0, 1.0, 0, 10), 1.0)  # no warmup


def test_bad_arguments():
    with pytest.raises(ValueError, match="betas"):
        AdamW(Toy(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        AdamW(Toy(), lr=-1.0)
    with pytest.raises(ValueError, match="lr_mult"):
        AdamW(Toy(), lr_mult=2.0)
    with pytest.raises(ValueError, match="min_lr"):
        cosine_lr(0, 1.0, 0, 10, min_lr=2.0)
    with pytest.raises(ValueError, match="total_steps"):
        cosine_lr(0, 1.0, 0, 0)
