import dataclasses

import pytest

import spike_lib
from spike_lib.core.config import Config, LIFConfig, check_range


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("beta", 1.5, "beta=1.5 is invalid: allowed range is [0.0, 1.0]"),
        ("beta", -0.1, "beta=-0.1"),
        ("threshold", 0.0, "threshold=0.0 is invalid: allowed range is (0.0, inf]"),
        ("threshold", -1.0, "threshold=-1.0"),
        ("num_steps", 0, "num_steps=0 is invalid: allowed range is [1, inf]"),
        ("num_steps", 2.5, "num_steps=2.5 is invalid: it must be a number (int)"),
        ("reset", "soft", "reset='soft' is invalid: choose one of ['subtract', 'zero']"),
        ("surrogate", "tanh", "surrogate='tanh' is invalid"),
    ],
)
def test_lif_config_rejects_bad_values(field, value, fragment):
    with pytest.raises(ValueError) as err:
        LIFConfig(**{field: value})
    assert fragment in str(err.value)


def test_lif_config_defaults_are_valid():
    cfg = LIFConfig()
    assert (cfg.beta, cfg.threshold, cfg.num_steps, cfg.reset) == (0.9, 1.0, 8, "subtract")


def test_config_heads_must_divide_width():
    with pytest.raises(ValueError, match="n_embd=30 is invalid: it must be divisible by n_head=4"):
        Config(n_embd=30, n_head=4)
    assert Config(n_embd=32, n_head=4).head_size == 8


@pytest.mark.parametrize("field, value", [("n_layer", 0), ("dropout", 1.5), ("dropout", -0.1),
                                          ("attention", "linear"), ("beta", float("nan"))])
def test_config_rejects(field, value):
    with pytest.raises(ValueError, match=field):
        Config(**{field: value})


def test_config_round_trips_through_dict_and_rejects_unknown_fields():
    cfg = Config.tiny(n_layer=2)
    assert Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown config fields \['n_layers'\]"):
        Config.from_dict({**cfg.to_dict(), "n_layers": 3})
    assert cfg.replace(n_head=4).n_head == 4
    assert dataclasses.replace(cfg, seed=1).seed == 1


def test_check_range_rejects_bools_and_accepts_bounds():
    check_range("p", 0.0, 0.0, 1.0)
    check_range("p", 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="must be a number"):
        check_range("p", True, 0.0, 1.0)


def test_quick_mode_switch(monkeypatch):
    monkeypatch.setenv("SPIKE_QUICK", "1")
    assert spike_lib.quick_mode() and spike_lib.budget(1000, 10) == 10
    monkeypatch.setenv("SPIKE_QUICK", "0")
    assert not spike_lib.quick_mode() and spike_lib.budget(1000, 10) == 1000
    monkeypatch.delenv("SPIKE_QUICK")
    assert spike_lib.budget(1000, 10) == 1000
    monkeypatch.setenv("SPIKE_QUICK", "maybe")
    with pytest.raises(ValueError, match="SPIKE_QUICK='maybe' is not understood"):
        spike_lib.quick_mode()


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "2", None])
def test_spike_levels_must_be_an_integer_of_at_least_one(value):
    with pytest.raises(ValueError) as err:
        Config(spike_levels=value)
    assert f"spike_levels={value!r} is invalid: it must be an integer >= 1" in str(err.value)
    assert "e.g. spike_levels=2" in str(err.value)  # the fix


def test_spike_levels_default_binary_saved_only_when_set():
    assert Config().spike_levels == 1 and Config(spike_levels=4).spike_levels == 4
    # a config dict written before the field existed has none: it reads as binary spikes,
    # and a binary config still writes none, so old config.json / run.json compare equal
    old = Config.tiny().to_dict()
    assert "spike_levels" not in old and Config.from_dict(old).spike_levels == 1
    d = Config.tiny(spike_levels=3).to_dict()
    assert d["spike_levels"] == 3 and Config.from_dict(d) == Config.tiny(spike_levels=3)


def test_spike_levels_refuse_a_plug_in_neuron():
    from spike_lib.core import plugins

    with plugins.temporarily("neuron", "binary_plugin", object):
        assert Config(neuron="binary_plugin").neuron == "binary_plugin"
        with pytest.raises(ValueError, match=r"spike_levels=2 is invalid with neuron="
                                             r"'binary_plugin'.*use neuron='lif'"):
            Config(neuron="binary_plugin", spike_levels=2)
