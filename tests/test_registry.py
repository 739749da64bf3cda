"""The plug-in registry: names, registration, the four validation gates and training by name."""

import math
from pathlib import Path

import numpy as np
import pytest

from spike_lib.core import plugins
from spike_lib.train import registry
from spike_lib.core.config import Config
from spike_lib.numpy_impl.neurons import LIF
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.train.registry import PluginError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "spike_plugin_example"


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Every test starts from the built-ins and leaves them so; no entry-point search."""
    monkeypatch.setattr(plugins, "_TABLE", {k: dict(v) for k, v in plugins._TABLE.items()})
    monkeypatch.setattr(plugins, "_DISCOVERED", [True])


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURE))
    from spike_plugin_example import attention, neurons

    return neurons, attention


def test_builtins_are_listed_and_cannot_be_replaced_or_removed():
    assert registry.names("neuron") == ["lif"]
    assert registry.names("attention") == sorted(["sdsa", "softmax", *registry.CONTEXT_ATTENTIONS])
    assert {"char", "bpe", "syllable", "gpt2"} <= set(registry.names("tokenizer"))
    assert registry.names("dataset") == ["corpus"]
    assert registry.get("neuron", "lif") is LIF
    with pytest.raises(PluginError, match="clashes with the built-in neuron 'lif'"):
        registry.register_neuron("lif", LIF)
    with pytest.raises(ValueError, match="cannot be removed"):
        registry.unregister("attention", "sdsa")
    with pytest.raises(ValueError, match="kind='neurons' is invalid"):
        registry.names("neurons")


def test_register_a_neuron_then_build_and_train_by_name(example):
    neurons, _ = example
    rep = registry.register_neuron("alif", neurons.AdaptiveLIF)
    assert rep["shape"] == [4, 2, 3, 5] and rep["grad_rel_error"] < 1e-8
    assert rep["smoke_steps"] == 30 and rep["smoke_last_loss"] < 0.95 * rep["smoke_first_loss"]
    assert 0 < rep["firing_rate"] < 1
    assert registry.names("neuron") == ["alif", "lif"]
    assert registry.describe("neuron") == {"neuron": {"alif": "user", "lif": "built-in"}}
    cfg = Config.tiny(neuron="alif", n_layer=2)
    model = SpikeLLM(cfg)
    kinds = {name: type(m).__name__ for name, m in model.named_modules()}
    assert kinds["blocks.1.sn_hidden"] == kinds["blocks.0.attn.k_lif"] == "AdaptiveLIF"
    # the plug-in has no weights: the parameter names are those of the LIF model
    assert sorted(model.state_dict()) == sorted(SpikeLLM(Config.tiny(n_layer=2)).state_dict())
    lif_model = SpikeLLM(Config.tiny(n_layer=2))
    model(np.arange(8)[None]), lif_model(np.arange(8)[None])
    assert set(model.firing_rates()) == set(lif_model.firing_rates())
    assert len(model.firing_rates()) == 2 * 9  # sn1, q, k, v, attn, sn2, hidden; kv, out_in


def test_config_records_the_neuron_only_when_it_is_not_the_default(example):
    registry.register_neuron("alif", example[0].AdaptiveLIF)
    assert "neuron" not in Config.tiny().to_dict()  # old run.json files still compare equal
    d = Config.tiny(neuron="alif").to_dict()
    assert d["neuron"] == "alif" and Config.from_dict(d) == Config.tiny(neuron="alif")
    with pytest.raises(ValueError, match="spiking=False"):
        Config.tiny(neuron="alif", spiking=False)
    with pytest.raises(ValueError, match="mem_clamp"):
        Config.tiny(neuron="alif", mem_clamp=3.0)


def test_unknown_names_say_how_to_register():
    with pytest.raises(ValueError, match=r"neuron='izhikevich' is invalid: choose one of \['lif'\]"
                       r", or register yours with spike_lib.train.registry.register_neuron"):
        Config.tiny(neuron="izhikevich")
    with pytest.raises(ValueError, match="attention='linear' is invalid"):
        Config.tiny(attention="linear")


def test_name_clash_and_replace(example):
    neurons, _ = example
    registry.register_neuron("alif", neurons.AdaptiveLIF)
    with pytest.raises(PluginError, match="clashes with the one registered by user.*replace=True"):
        registry.register_neuron("alif", neurons.AdaptiveLIF)
    registry.register_neuron("alif", neurons.AdaptiveLIF, replace=True)
    with pytest.raises(PluginError, match="Python identifier"):
        registry.register_neuron("my-lif", neurons.AdaptiveLIF)
    registry.unregister("neuron", "alif")
    assert registry.names("neuron") == ["lif"]


# -- broken neurons: each fails one gate, and nothing is registered ------------------------------
class SumsOverTime(LIF):
    def forward(self, x):
        self.last_spk = (x.sum(axis=0) > 1).astype(x.dtype)
        return self.last_spk


class MixesNeurons(LIF):
    def forward(self, x):  # one membrane per batch row instead of per entry
        return super().forward(np.broadcast_to(x.mean(axis=-1, keepdims=True), x.shape))


class ReadsTheFuture(LIF):
    def forward(self, x):
        return super().forward(x[::-1].copy())[::-1].copy()


class NotBinary(LIF):
    def forward(self, x):
        self.last_spk = 1.0 / (1.0 + np.exp(-x))
        return self.last_spk


class HalfGradient(LIF):
    def backward(self, dspk):
        return 0.5 * super().backward(dspk)


class IgnoresSmooth(LIF):
    def forward(self, x):
        smooth, self.smooth = self.smooth, False
        out = super().forward(x)
        self.smooth = smooth
        return out


class NaNWhenSpiking(LIF):
    def backward(self, dspk):
        dx = super().backward(dspk)
        return dx if self.smooth else dx * np.nan


class NaNAfterSomeSteps(LIF):
    def backward(self, dspk):  # an instability that shows only once training has run a while
        self.calls = getattr(self, "calls", 0) + 1
        return super().backward(dspk) * (np.nan if self.calls > 5 else 1.0)


class NoArguments(LIF):
    def __init__(self):
        super().__init__()


class ForgetsLastSpk(LIF):
    def forward(self, x):
        out = super().forward(x)
        self.last_spk = None
        return out


@pytest.mark.parametrize("cls, pattern", [
    (SumsOverTime, r"failed the shape check: input \(T, B, N, C\) = \(4, 2, 3, 5\) gave \(2, 3, 5\)"),
    (MixesNeurons, "shape check: changing one neuron's input changed other neurons"),
    (ReadsTheFuture, "causality check: changing the input at the last step changed earlier"),
    (NotBinary, "spike check: outputs .* are not all 0 or 1"),
    (HalfGradient, r"gradient check: .*normwise error 3\.3e-01 on 'x'.*Fix: write backward"),
    (IgnoresSmooth, "gradient check: smooth mode still outputs 0/1 spikes"),
    (NaNWhenSpiking, r"finite check: backward returned NaN or inf.*\(4, 2, 3, 5\)"),
    (NaNAfterSomeSteps, "smoke run check: training diverged .*gradient norm is nan"),
    (NoArguments, "build check: .*TypeError.*accept the LIF arguments"),
    (ForgetsLastSpk, "firing rate check: .*last_spk"),
])
def test_a_broken_neuron_is_rejected_with_the_check_and_the_fix(cls, pattern):
    with pytest.raises(PluginError, match=pattern) as err:
        registry.register_neuron("broken", cls)
    assert str(err.value).startswith("neuron 'broken' failed the ") and "Fix: " in str(err.value)
    assert registry.names("neuron") == ["lif"]  # never registered
    with pytest.raises(ValueError, match="neuron='broken' is invalid"):
        Config.tiny(neuron="broken")


# -- attention -----------------------------------------------------------------------------------
def test_register_an_attention_and_build_it_by_name(example):
    _, attention = example
    rep = registry.register_attention("mean_mixer", attention.CausalMeanMixer)
    assert rep["params"] == 2 * (8 * 8 + 8) and rep["grad_rel_error"] < 1e-8
    model = SpikeLLM(Config.tiny(attention="mean_mixer"))
    assert type(model.modules["blocks.0"].modules["attn"]).__name__ == "CausalMeanMixer"
    assert "blocks.0.attn.v_proj.W" in model.state_dict()


def non_causal_sdsa(cfg, rng):
    from spike_lib.numpy_impl.attention import SDSA

    return SDSA.from_config(cfg, rng, causal=False)


def wrong_width(cfg, rng):
    from spike_lib.numpy_impl.attention import SDSA

    attn = SDSA.from_config(cfg, rng, causal=True)
    from spike_lib.numpy_impl.layers import Linear

    attn.modules["out_proj"] = Linear(cfg.n_embd, 2 * cfg.n_embd, rng)
    return attn


@pytest.mark.parametrize("factory, pattern", [
    (non_causal_sdsa, "causality check: changing the last token changed the outputs at earlier"),
    (wrong_width, r"shape check: input \(T, B, L, D\) = \(3, 2, 5, 8\) gave \(3, 2, 5, 16\)"),
    (lambda cfg: None, "build check: .*factory \\(cfg, rng\\)"),
])
def test_a_broken_attention_is_rejected(factory, pattern):
    with pytest.raises(PluginError, match=pattern):
        registry.register_attention("broken", factory)
    assert registry.names("attention") == sorted(["sdsa", "softmax", *registry.CONTEXT_ATTENTIONS])


# -- MLX ports -----------------------------------------------------------------------------------
def test_mlx_port_parity_and_models_in_both_backends(example):
    pytest.importorskip("mlx.core")
    from spike_lib.train.check import normwise_rel_error
    from spike_lib.mlx_impl.model import SpikeLLM as MLXSpikeLLM

    neurons, attention = example
    rep = registry.register_neuron("alif", neurons.AdaptiveLIF, mlx=neurons.AdaptiveLIF.mlx_port)
    assert rep["mlx_grad_rel_error"] < 1e-5
    cfg = Config.tiny(neuron="alif", vocab_size=20, block_size=8)
    x = np.random.default_rng(1).integers(0, 20, (2, 8))
    assert normwise_rel_error(np.array(MLXSpikeLLM(cfg)(x)), SpikeLLM(cfg)(x)) < 1e-4
    registry.register_attention("mean_mixer", attention.CausalMeanMixer)
    with pytest.raises(ValueError, match="'mean_mixer' has no mlx implementation.*--backend numpy"):
        MLXSpikeLLM(cfg.replace(attention="mean_mixer"))


def test_a_wrong_mlx_port_is_rejected(example):
    pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl.neurons import LIF as MLXLIF

    with pytest.raises(PluginError, match="MLX parity check"):
        registry.register_neuron("alif", example[0].AdaptiveLIF, mlx=MLXLIF)  # no adaptation


# -- tokenizers and datasets ----------------------------------------------------------------------
class Lowercase:
    vocab_size = 256

    def encode(self, text):
        return list(text.lower().encode("utf-8"))

    def decode(self, ids):
        return bytes(ids).decode("utf-8", errors="replace")


def test_tokenizer_and_dataset_plugins(example):
    from spike_plugin_example.data import proverbs
    from spike_plugin_example.tokenizer import ByteTokenizer

    rep = registry.register_tokenizer("bytes", ByteTokenizer)
    assert rep["vocab_size"] == 257
    assert registry.get_tokenizer("bytes").encode("hé") == [104, 195, 169]
    assert registry.get_tokenizer("char").vocab_size > 50  # the shipped one, by the same call
    assert registry.register_dataset("proverbs", proverbs) == {
        "train_docs": 8, "train_chars": sum(len(d["text"]) for d in proverbs("train")),
        "val_docs": 2, "val_chars": 63}
    with pytest.raises(PluginError, match=r"round trip check: decode\(encode\('Hello, spiking "
                       r"world!'\)\) gave 'hello, spiking world!'.*lossless"):
        registry.register_tokenizer("lower", Lowercase)
    with pytest.raises(PluginError, match="documents check: document 1 of split 'train' has no"):
        registry.register_dataset("bad", lambda split: [{"text": "a"}, {"title": "b"}])
    with pytest.raises(PluginError, match="returned list of length 0"):
        registry.register_dataset("empty", lambda split: [])


def test_train_run_with_a_plugin_neuron_by_name(example, tmp_path):
    """--set neuron=alif: the run trains the plug-in and records it in run.json."""
    import json

    from spike_lib.train.runs import parse_overrides, train_run

    registry.register_neuron("alif", example[0].AdaptiveLIF)
    from spike_plugin_example.data import proverbs

    res = train_run(tmp_path / "run", steps=4, batch_size=4, eval_every=4, val_tokens=40,
                    set=parse_overrides(["neuron=alif", "block_size=8"]),
                    train_docs=proverbs("train"), val_docs=proverbs("val"))
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["model"]["neuron"] == "alif" and saved["options"]["set"]["neuron"] == "alif"
    assert res["steps"] == 4 and math.isfinite(res["val_bpc"])


def test_builtins_follow_the_plugin_protocols():
    from spike_lib.numpy_impl.attention import SDSA, SoftmaxAttention

    make = registry.get("attention", "softmax")
    assert isinstance(make(Config.tiny(attention="softmax"), np.random.default_rng(0)),
                      SoftmaxAttention)
    assert isinstance(registry.get("attention", "sdsa")(Config.tiny(), np.random.default_rng(0)),
                      SDSA)
    assert isinstance(registry.get("neuron", "lif")(**Config.tiny().lif_kwargs("in")), LIF)
    assert registry.get_dataset("corpus").__name__ == "load_corpus"
