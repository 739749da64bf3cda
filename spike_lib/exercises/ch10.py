"""Checks for chapter 10's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/10_toolkit.ipynb
"""

import importlib.metadata
import tempfile
from pathlib import Path

import numpy as np

from spike_lib.core.config import Config


def _correct(name):
    print(f"{name}: correct")


def check_overrides(fn):
    """Exercise 1: fn(cfg, preset) -> the --set dict: fields that differ from the preset,
    except those with an option of their own (vocab_size, spiking, attention, seed)."""
    from spike_lib.ui.config_gui import OWN

    cases = [(Config.tiny(n_layer=2, vocab_size=439, seed=3), "tiny", {"n_layer": 2}),
             (Config.book(spiking=False, beta=0.75), "book", {"beta": 0.75}),
             (Config.small(num_steps=2), "book", {}),
             (Config.small(num_steps=2, mem_clamp=3.0), "small", {"num_steps": 2,
                                                                   "mem_clamp": 3.0})]
    for cfg, preset, want in cases:
        got = dict(fn(cfg, preset))
        own = sorted(set(got) & set(OWN))
        assert not own, (f"{own} have options of their own ({', '.join(OWN[k] for k in own)}): "
                         "--set refuses them, leave them out")
        assert got == want, (f"for Config.{preset}() as the base, got {got}, expected {want}: "
                             "keep exactly the fields whose value differs from the preset's")
    _correct("--set overrides")


def check_plif(cls):
    """Exercise 2: cls is a LIF whose leak is learned through a sigmoid (PLIF, Fang et al. 2021):
    one 0-d parameter w, beta = 1 - sigmoid(w) (that is 1/tau = sigmoid(w)), started at the
    beta it is given, and a backward that passes the registry's gradient check (w included)."""
    from spike_lib.core.neurons import lif_forward
    from spike_lib.train.plugin_checks import validate_neuron

    kwargs = Config.tiny().lif_kwargs("in")
    neuron = cls(**kwargs)
    names = [n for n, _, _ in neuron.named_parameters()]
    assert names == ["w"], (f"parameters {names}: add one parameter named 'w' with "
                            "self.add_param('w', np.array(log(1 / beta - 1)... ) so that 1 - sigmoid(w) = beta")
    assert np.shape(neuron.params["w"]) == (), "w is one number: a 0-d array"
    w0 = float(neuron.params["w"])
    assert np.isclose(1 - 1 / (1 + np.exp(-w0)), kwargs["beta"], atol=1e-6), (
        f"w = {w0:.4f} gives beta = 1 - sigmoid(w) = {1 - 1 / (1 + np.exp(-w0)):.4f}, but the neuron "
        f"was given beta = {kwargs['beta']}: start at w = log(1 / beta - 1) ... of 1 - beta")
    x = np.random.default_rng(3).normal(0.6, 0.8, (5, 2, 4)).astype(np.float32)
    for w in (-3.0, 0.4, 2.5):  # any real w is a valid leak: that is what the sigmoid is for
        neuron.params["w"][...] = w
        beta = 1 - 1 / (1 + np.exp(-w))
        ref, _ = lif_forward(x, float(beta), neuron.threshold, neuron.reset)
        assert np.array_equal(neuron(x), ref), (
            f"with w = {w} the spikes differ from lif_forward with beta = 1 - sigmoid(w) = {beta:.4f}")
    rep = validate_neuron(cls, name="plif")  # shapes, gradient (w included), smoke run
    neuron.params["w"][...] = w0
    neuron.zero_grad()
    neuron(x)
    neuron.backward(np.ones_like(x))
    assert neuron.grads["w"].shape == () and neuron.grads["w"] != 0, (
        "accumulate d loss / d w = -sigmoid(w) (1 - sigmoid(w)) sum_t du[t] v[t-1] into self.grads['w']")
    print(f"gradient check (w included): {rep['grad_rel_error']:.1e}")
    _correct("learnable-leak neuron")


def check_entry_points(text):
    """Exercise 3: entry_points.txt of my_spikes: neuron plif and tokenizer words."""
    with tempfile.TemporaryDirectory() as tmp:
        info = Path(tmp) / "my_spikes-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my_spikes\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(text)
        (dist,) = importlib.metadata.distributions(path=[tmp])
        found = {(ep.group, ep.name, ep.value) for ep in dist.entry_points}
    want = {("spike_lib.neurons", "plif", "my_spikes.neurons:PLIF"),
            ("spike_lib.tokenizers", "words", "my_spikes.tok:WordTokenizer")}
    groups = {g for g, _, _ in found}
    assert groups <= {"spike_lib.neurons", "spike_lib.tokenizers"}, (
        f"groups {sorted(groups)}: spike_lib looks in [spike_lib.neurons] and "
        "[spike_lib.tokenizers] (plural)")
    assert found == want, (f"importlib.metadata reads {sorted(found)}; expected {sorted(want)}: "
                           "a [group] line, then name = module:attribute lines")
    _correct("entry points")


def check_advantages(fn):
    """Exercise 4: fn(candidates, golds) -> F1 rewards minus their mean (REINFORCE with a
    group-mean baseline; the reward is checkable: token F1 against the gold answers)."""
    got = [float(a) for a in fn(["Paris", "the city of Paris", "Lyon"], ["Paris"])]
    if got == [1.0, 1.0 / 3.0, 0.0]:
        raise AssertionError("those are precision-like rewards: use token F1 (2PR / (P + R)), "
                             "and subtract the mean")
    if np.allclose(got, [1.0, 0.5, 0.0]):
        raise AssertionError("those are the rewards: subtract their mean, the baseline")
    assert np.allclose(got, [0.5, 0.0, -0.5]), (
        f"got {got}, expected [0.5, 0.0, -0.5]: F1 of 'Paris' is 1, of 'the city of Paris' "
        "0.5 ('the' is dropped: P = 1/3, R = 1), of 'Lyon' 0; the mean is 0.5")
    got = [float(a) for a in fn(["Algiers", "Algiers"], ["Algiers", "El Djazair"])]
    assert got == [0.0, 0.0], "equal rewards give zero advantages: nothing to reinforce"
    _correct("F1 advantages")


def check_trace(make_trace, answer_of):
    """Exercise 5: a QA prompt with a reasoning trace, and reading the answer back."""
    prompt, target = make_trace("Oslo is the capital of Norway.", "What is the capital of Norway?",
                                ["The context names the capital.", "It is Oslo."], "Oslo")
    assert prompt == ("Context: Oslo is the capital of Norway.\nQuestion: What is the capital "
                      "of Norway?\nReasoning:"), (
        f"prompt {prompt!r}: the chapter-9 prompt with 'Reasoning:' in place of 'Answer:'")
    assert target == " The context names the capital. It is Oslo.\nAnswer: Oslo\n", (
        f"target {target!r}: the steps joined by spaces after one space, a newline, "
        "'Answer: <answer>' and the closing newline")
    cases = {" It says so.\nAnswer: Oslo\nContext: ...": "Oslo",
             " No answer line": "", "\nAnswer:  Bergen ": "Bergen"}
    for text, want in cases.items():
        got = answer_of(text)
        assert got == want, f"answer_of({text!r}) = {got!r}, expected {want!r}"
    _correct("reasoning traces")

