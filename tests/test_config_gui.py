"""The config form: the command it shows parses back to the same Config, validation as you type."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spike_lib.ui import config_gui
from spike_lib.core.config import Config
from spike_lib.ui.config_gui import ConfigForm, config_command, format_value, parse_command
from spike_lib.train.runs import resolve_tokenizer

CHAR = resolve_tokenizer("char").vocab_size
BPE = resolve_tokenizer("bpe").vocab_size
DOCS = [{"text": "the quick brown fox jumps over the lazy dog. " * 6, "category": "x"}]


def test_format_value_round_trips_through_set():
    from spike_lib.train.runs import parse_override

    assert [format_value(v) for v in (None, True, False, 0.1, 3, "zero", 1e-05)] == [
        "none", "true", "false", "0.1", "3", "zero", "1e-05"]
    assert parse_override("mem_clamp=none") == ("mem_clamp", None)
    assert parse_override(f"beta={format_value(0.1 + 0.2)}") == ("beta", 0.1 + 0.2)


def test_the_command_of_a_hand_made_config():
    cfg = Config.tiny(vocab_size=CHAR, n_layer=2, beta=0.75, mem_clamp=2.5, detach_reset=False,
                      spiking=True, seed=3)
    assert config_command(cfg, "tiny", out="runs/a b", steps=50) == (
        "python -m spike_lib train --config tiny --out 'runs/a b' --steps 50 --seed 3 "
        "--set n_layer=2 --set beta=0.75 --set detach_reset=false --set mem_clamp=2.5")


@pytest.mark.parametrize("preset, tok, changes", [
    ("tiny", "char", {}),
    ("tiny", "char", {"n_layer": 3, "n_embd": 48, "n_head": 4, "beta": 0.1 + 0.2,
                      "reset": "zero", "surrogate": "sigmoid", "in_threshold": 0.7,
                      "tie_weights": True, "dropout": 0.1}),
    ("small", "bpe", {"spiking": False, "attention": "softmax", "seed": 7, "num_steps": 2}),
    ("book", "bpe", {"mem_clamp": 4.0, "qkv_threshold": 1.25, "detach_reset": False}),
])
def test_command_parses_back_to_the_same_config(preset, tok, changes):
    cfg = getattr(Config, preset)(vocab_size=CHAR if tok == "char" else BPE, **changes)
    cmd = config_command(cfg, preset, out="runs/x", tokenizer=tok, steps=10, lr=0.002)
    opts, back = parse_command(cmd)
    assert back == cfg
    assert (opts["steps"], opts["lr"], opts["tokenizer"], opts["config"]) == (10, 0.002, tok, preset)


@settings(max_examples=15, deadline=None)
@given(beta=st.floats(0.0, 1.0), threshold=st.floats(0.01, 10.0),
       clamp=st.none() | st.floats(10.5, 100.0), n_layer=st.integers(1, 8))
def test_round_trip_for_any_valid_values(beta, threshold, clamp, n_layer):
    cfg = Config.tiny(vocab_size=CHAR, beta=beta, threshold=threshold, mem_clamp=clamp,
                      n_layer=n_layer)
    assert parse_command(config_command(cfg, out="runs/x"))[1] == cfg


def test_bad_commands_and_options():
    with pytest.raises(ValueError, match="out is missing"):
        config_command(Config.tiny())
    with pytest.raises(ValueError, match="unknown train options \\['epochs'\\]"):
        config_command(Config.tiny(), out="r", epochs=3)
    with pytest.raises(ValueError, match="is not a `python -m spike_lib train"):
        parse_command("python -m spike_lib eval --checkpoint x")
    with pytest.raises(ValueError, match="preset='huge' is invalid"):
        config_command(Config.tiny(), "huge", out="r")


def test_form_validates_as_you_type():
    form = ConfigForm("tiny", out="runs/f", steps=30)
    assert form.valid and form.error_text == "valid" and not form.button.disabled
    assert form.command_box.value == form.command()
    form.set(n_head=3)  # 32 channels do not split into 3 heads
    assert not form.valid and form.button.disabled
    assert form.error_text == "n_embd=32 is invalid: it must be divisible by n_head=3"
    assert form.widgets["n_head"].layout.border == form.widgets["n_embd"].layout.border != ""
    assert form.widgets["beta"].layout.border == ""
    form.set(n_head=4)
    assert form.valid and "--set n_head=4" in form.command_box.value
    form.set(mem_clamp="abc")
    assert form.error_text == "mem_clamp='abc' is invalid: type a number, or leave it empty for None"
    form.set(mem_clamp=0.5)  # below the threshold: no neuron could fire
    assert form.error_text.startswith("mem_clamp=0.5 is invalid: it must exceed every threshold")
    form.set(mem_clamp=None, steps=0)
    assert form.error_text == "steps=0 is invalid: allowed range is [1, inf]"
    form.set(steps=5, tokenizer="bpe")
    assert form.valid and form.widgets["vocab_size"].value == BPE == form.config().vocab_size
    assert parse_command(form.command_box.value)[1] == form.config()
    with pytest.raises(ValueError, match="the form has no field 'depth'"):
        form.set(depth=3)
    with pytest.raises(ValueError, match="unknown train options \\['epochs'\\]"):
        ConfigForm(out="r", epochs=2)


def test_form_summary_is_a_static_rendering():
    form = ConfigForm("tiny", out="runs/f").set(n_layer=2)
    lines = form.summary().splitlines()
    assert lines[0].split() == ["vocab_size", str(CHAR), "(preset", "tiny:", "64)"]
    assert lines[1].split() == ["n_layer", "2", "(preset", "tiny:", "1)"]
    assert lines[-1] == form.command()


def test_form_trains_what_the_command_says(tmp_path):
    form = ConfigForm("tiny", out=str(tmp_path / "run"), steps=3, eval_every=3, batch_size=2,
                      train_docs=DOCS, val_docs=DOCS).set(n_embd=16, beta=0.25)
    result = form.train(live=False)
    assert result["steps"] == 3 and result["checkpoint_step"] == 3
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert Config.from_dict(saved["model"]) == form.config() == parse_command(form.command())[1]
    assert saved["options"]["set"] == {"n_embd": 16, "beta": 0.25}
    assert form.figure is not None  # the dashboard's static figure
    form.set(n_head=5)
    with pytest.raises(ValueError, match="the form is invalid: n_embd=16"):
        form.train(live=False)


def test_choices_follow_the_registry():
    from spike_lib.core.config import RESETS
    from spike_lib.train import registry

    assert config_gui.choices("attention") == registry.names("attention")
    assert {"sdsa", "softmax"} <= set(config_gui.choices("attention"))
    assert config_gui.choices("reset") == list(RESETS) and "zero" in RESETS
    assert config_gui.field_kind(next(f for f in __import__("dataclasses").fields(Config)
                                      if f.name == "mem_clamp")) == "optional"


def test_the_train_button_reports_errors_under_the_form(tmp_path, capsys):
    form = ConfigForm("tiny", out=str(tmp_path / "run"), steps=2, eval_every=2, batch_size=2,
                      train_docs=DOCS, val_docs=DOCS)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")  # a run is already there
    form.button.click()  # outside a kernel the form's output area prints to stdout
    assert f"error: {tmp_path / 'run'} already holds a run" in capsys.readouterr().out
