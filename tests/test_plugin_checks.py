"""The plug-in gates: the smoke run and its loss rule, and the gates on the built-in SDSA."""

import math

import pytest

from spike_lib.train import plugin_checks
from spike_lib.train.registry import PluginError


def test_a_loss_that_does_not_fall_fails_the_smoke_check():
    assert plugin_checks.check_losses("neuron", "x", [3.0] * 5 + [2.0] * 5)["smoke_last_loss"] == 2.0
    with pytest.raises(PluginError, match=r"went from 3\.000 to only 2\.900 in 10 steps"):
        plugin_checks.check_losses("neuron", "x", [3.0] * 5 + [2.9] * 5)
    with pytest.raises(PluginError, match="the loss is nan at step 4"):
        plugin_checks.check_losses("neuron", "x", [3.0, 2.0, 1.0, math.nan])


def test_smoke_run_is_deterministic_and_learns():
    a, b = plugin_checks.smoke_run(plugin_checks.smoke_config(), steps=12), \
        plugin_checks.smoke_run(plugin_checks.smoke_config(), steps=12)
    assert a == b and len(a) == 12 and a[-1] < 0.8 * a[0]


def test_the_causal_builtin_passes_the_attention_gates():
    from spike_lib.numpy_impl.attention import SDSA

    rep = plugin_checks.validate_attention(lambda cfg, rng: SDSA.from_config(cfg, rng, causal=True))
    assert rep["grad_rel_error"] < 1e-6 and rep["params"] == 4 * (8 * 8 + 8)
