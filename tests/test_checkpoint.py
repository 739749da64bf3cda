import json

import numpy as np
import pytest

from spike_lib.train.checkpoint import load_checkpoint, load_meta, load_weights, save_checkpoint
from spike_lib.core.config import Config
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.numpy_impl.optim import AdamW
from spike_lib.tokenizers import CharTokenizer


def small_model(seed=0, **kw):
    kw = {"vocab_size": 300, **kw}
    cfg = Config.tiny(block_size=8, n_embd=8, n_head=2, d_ff=16, seed=seed, **kw)
    return SpikeLLM(cfg)


def test_round_trip_gives_identical_logits_tokenizer_and_meta(tmp_path, rng):
    tok = CharTokenizer.train("héllo wörld", min_count=1)
    model = small_model(vocab_size=tok.vocab_size)  # a tokenizer of another size is refused
    save_checkpoint(tmp_path / "ck", model, tok, meta={"step": 7})
    loaded, tok2, meta = load_checkpoint(tmp_path / "ck")
    idx = rng.integers(0, tok.vocab_size, (2, 8))
    np.testing.assert_array_equal(model(idx), loaded(idx))
    assert loaded.cfg == model.cfg
    assert tok2.encode("héllo ü") == tok.encode("héllo ü")
    assert meta["step"] == 7 and meta["n_params"] == model.num_params()
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "config.json", "meta.json", "tokenizer.json", "weights.npz"]
    assert "blocks.0.attn.q_proj.W" in load_weights(tmp_path / "ck")


def test_optimizer_state_round_trips(tmp_path):
    model = small_model()
    opt = AdamW(model, lr=0.1)
    for _, _, g in model.named_parameters():
        g[...] = 1.0
    opt.step()
    save_checkpoint(tmp_path / "ck", model, optimizer=opt)
    opt2 = AdamW(small_model(seed=1))
    loaded, tok, _ = load_checkpoint(tmp_path / "ck", model=opt2.model, optimizer=opt2)
    assert loaded is opt2.model
    assert tok is None and opt2.t == 1
    np.testing.assert_array_equal(opt2.m["tok_emb.W"], opt.m["tok_emb.W"])


def test_loading_into_another_shape_names_the_tensor_and_both_shapes(tmp_path):
    save_checkpoint(tmp_path / "ck", small_model())
    other = SpikeLLM(Config.tiny(vocab_size=300, block_size=8, n_embd=8, n_head=2, d_ff=32))
    with pytest.raises(ValueError, match=r"'blocks.0.fc1.W' has shape \(8, 16\) in the state "
                                         r"dict but \(8, 32\) in the model"):
        load_checkpoint(tmp_path / "ck", model=other)


def test_corrupt_and_missing_files_give_clear_errors(tmp_path):
    ck = save_checkpoint(tmp_path / "ck", small_model())
    data = (ck / "weights.npz").read_bytes()
    (ck / "weights.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="weights.npz is corrupt or truncated"):
        load_checkpoint(ck)
    (ck / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json is corrupt"):
        load_checkpoint(ck)
    with pytest.raises(ValueError, match="no checkpoint folder at"):
        load_checkpoint(tmp_path / "nowhere")
    (ck / "meta.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        load_meta(ck)


def test_pickled_arrays_are_refused(tmp_path):
    ck = save_checkpoint(tmp_path / "ck", small_model())
    np.savez(ck / "weights.npz", evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="corrupt or truncated.*pickle"):
        load_checkpoint(ck)


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, rng):
    model = small_model()
    save_checkpoint(tmp_path / "ck", model, meta={"step": 1})

    class BrokenTokenizer:
        def save(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "ck", small_model(seed=5), BrokenTokenizer(), meta={"step": 2})
    loaded, _, meta = load_checkpoint(tmp_path / "ck")
    assert meta["step"] == 1
    idx = rng.integers(0, 300, (1, 8))
    np.testing.assert_array_equal(loaded(idx), model(idx))
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temp folders left behind
    save_checkpoint(tmp_path / "ck", small_model(seed=5), meta={"step": 3})  # overwrite works
    assert load_meta(tmp_path / "ck")["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_spike_levels_round_trip_and_old_configs_load_as_binary(tmp_path, rng):
    model = small_model(spike_levels=2)
    save_checkpoint(tmp_path / "ck", model)
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["spike_levels"] == 2
    loaded, _, _ = load_checkpoint(tmp_path / "ck")
    idx = rng.integers(0, 300, (2, 8))
    np.testing.assert_array_equal(loaded(idx), model(idx))
    assert loaded.cfg.spike_levels == 2
    assert {m.levels for _, m in loaded.named_modules() if hasattr(m, "levels")} == {2}
    # a config.json written before the field existed (as every shipped checkpoint's)
    old = {k: v for k, v in model.cfg.to_dict().items() if k != "spike_levels"}
    (tmp_path / "ck" / "config.json").write_text(json.dumps(old))
    binary, _, _ = load_checkpoint(tmp_path / "ck")
    assert binary.cfg.spike_levels == 1 and binary.cfg == model.cfg.replace(spike_levels=1)
    assert not np.array_equal(binary(idx), model(idx))  # the same weights fire other spikes
