"""fuse: a LoRA adapter merged into its base gives a plain checkpoint with the same logits."""

from types import SimpleNamespace

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.numpy_impl.lora import apply_lora, fingerprint, save_adapter
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers import get_tokenizer
from spike_lib.train import finetune as ft
from spike_lib.train import fuse, span_qa
from spike_lib.train.checkpoint import load_checkpoint, save_checkpoint

TOK = get_tokenizer("char")
CFG = Config.tiny(vocab_size=TOK.vocab_size, block_size=16, n_layer=2, n_embd=16, n_head=2, d_ff=32)


def _adapted(base_dir):
    model, tok, _ = ft.load_base(base_dir, "numpy")
    apply_lora(model, 2, 4.0, ("attn", "mlp"), np.random.default_rng(0))
    for n, p, _ in model.named_parameters():
        p[...] += np.random.default_rng(2).normal(0, 0.2, p.shape) * n.endswith(".B")
    return model, tok


def test_fuse_adapter_gives_same_logits_without_lora(tmp_path):
    base_dir = save_checkpoint(tmp_path / "base", SpikeLLM(CFG), TOK)
    model, tok = _adapted(base_dir)
    save_adapter(tmp_path / "ad", model, fingerprint(base_dir))
    res = fuse.run(SimpleNamespace(checkpoint=str(base_dir), adapter=str(tmp_path / "ad"),
                                   out=str(tmp_path / "fused")))
    assert res["fused_layers"] == 2 * 6 and res["params"] == SpikeLLM(CFG).num_params()
    fused, _, _ = load_checkpoint(tmp_path / "fused", SpikeLLM(CFG))
    assert not any(n.endswith((".A", ".B")) for n in fused.state_dict())
    x = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 16))
    assert np.allclose(fused(x), model(x), atol=1e-4)
    base = SpikeLLM(CFG).load_state_dict(ft.load_base(base_dir, "numpy")[0].state_dict())
    assert not np.allclose(fused(x), base(x), atol=1e-3)  # the adapter did change the model


@pytest.mark.parametrize("question", [False, True])
def test_fuse_a_span_qa_folder(tmp_path, question):
    base_dir = save_checkpoint(tmp_path / "base", SpikeLLM(CFG), TOK)
    model, tok = _adapted(base_dir)
    qa = span_qa.build_span_model(model, question=question)
    for p in qa.modules["head"].params.values():
        p[...] = np.random.default_rng(4).normal(0, 0.5, p.shape)
    src = span_qa.save_qa_model(tmp_path / "qa", qa, tok, base_dir, "span", "lora")
    fuse.run(SimpleNamespace(checkpoint=str(src), adapter=None, out=str(tmp_path / "fused")))
    back, _, info = span_qa.load_qa_model(tmp_path / "fused", "numpy")
    assert info["strategy"] == "fused" and info["question_head"] is question
    x = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 16))
    context = np.arange(16)[None].repeat(2, 0) >= 5  # a prompt of 5 tokens, then the context
    assert np.allclose(back(x, None, context), qa(x, None, context), atol=1e-4)


def test_fuse_needs_an_adapter(tmp_path):
    base_dir = save_checkpoint(tmp_path / "base", SpikeLLM(CFG), TOK)
    with pytest.raises(ValueError, match="needs --adapter"):
        fuse.run(SimpleNamespace(checkpoint=str(base_dir), adapter=None, out=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="no LoRA adapter to fuse"):
        fuse.fuse_model(SpikeLLM(CFG))


def test_generate_with_adapter_and_refused_on_another_base(tmp_path):
    from spike_lib.cli import cmd_generate

    base_dir = save_checkpoint(tmp_path / "base", SpikeLLM(CFG), TOK)
    model, tok = _adapted(base_dir)
    save_adapter(tmp_path / "ad", model, fingerprint(base_dir))
    args = SimpleNamespace(checkpoint=str(base_dir), prompt="ab", stream=False, max_new_tokens=5,
                           temperature=0.0, top_k=None, top_p=None, seed=0, json=True,
                           adapter=str(tmp_path / "ad"))
    out = cmd_generate.run(args)
    greedy = fuse.fuse_model(model)
    ids = TOK.encode("ab")
    for _ in range(5):  # greedy continuation of the fused model, token by token
        ids.append(int(np.argmax(greedy(np.array([ids]))[0, -1])))
    assert out["text"] == TOK.decode(ids[2:])
    other = save_checkpoint(tmp_path / "other", SpikeLLM(CFG.replace(seed=3)), TOK)
    with pytest.raises(ValueError, match="trained on another base model"):
        cmd_generate.run(SimpleNamespace(**{**vars(args), "checkpoint": str(other)}))
