"""soup: the mean of QA models fine-tuned from one base, and its refusals."""

from types import SimpleNamespace

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.numpy_impl.lora import apply_lora
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers import get_tokenizer
from spike_lib.train import finetune as ft
from spike_lib.train import soup, span_qa
from spike_lib.train.checkpoint import save_checkpoint

TOK = get_tokenizer("char")
CFG = Config.tiny(vocab_size=TOK.vocab_size, block_size=16, n_layer=2, n_embd=16, n_head=2, d_ff=32)


def _qa(tmp_path, base_dir, name, seed, question=True, strategy="full"):
    """A span QA folder whose weights are the base's moved by seeded noise."""
    model, tok, _ = ft.load_base(base_dir, "numpy")
    if strategy == "lora":
        apply_lora(model, 2, 4.0, ("attn", "mlp"), np.random.default_rng(0))
    qa = span_qa.build_span_model(model, question=question)
    rng = np.random.default_rng(seed)
    for _, p, _ in qa.named_parameters():
        p[...] += rng.normal(0, 0.1, p.shape).astype(p.dtype)
    return span_qa.save_qa_model(tmp_path / name, qa, tok, base_dir, "span", strategy), qa


def _args(models, out, weights=None):
    return SimpleNamespace(models=[str(m) for m in models], out=str(out), weights=weights)


def test_soup_states_by_hand():
    a = {"w": np.array([1.0, 2.0], np.float32), "b": np.array([[0.0]], np.float32)}
    b = {"w": np.array([3.0, 6.0], np.float32), "b": np.array([[4.0]], np.float32)}
    got = soup.soup_states([a, b])
    assert got["w"].tolist() == [2.0, 4.0] and got["b"].tolist() == [[2.0]]
    assert got["w"].dtype == np.float32
    got = soup.soup_states([a, b], [3, 1])  # normalised: 0.75 a + 0.25 b
    assert got["w"].tolist() == [1.5, 3.0] and got["b"].tolist() == [[1.0]]
    with pytest.raises(ValueError, match="at least two"):
        soup.soup_states([a])
    with pytest.raises(ValueError, match="non-negative"):
        soup.soup_states([a, b], [1, -1])
    with pytest.raises(ValueError, match="other tensors"):
        soup.soup_states([a, {"w": a["w"]}])
    with pytest.raises(ValueError, match="not one architecture"):
        soup.soup_states([a, {**b, "w": np.zeros(3, np.float32)}])


def test_soup_of_two_folders_is_their_mean(tmp_path):
    base_dir = save_checkpoint(tmp_path / "base", SpikeLLM(CFG), TOK)
    fa, qa_a = _qa(tmp_path, base_dir, "a", 1)
    fb, qb = _qa(tmp_path, base_dir, "b", 2)
    res = soup.run(_args([fa, fb], tmp_path / "soup"))
    assert res["models"] == 2 and res["tensors"] == len(qa_a.state_dict())
    back, _, info = span_qa.load_qa_model(tmp_path / "soup", "numpy")
    assert info["question_head"] is True and [s["path"] for s in info["soup"]] == [str(fa), str(fb)]
    sa, sb, got = qa_a.state_dict(), qb.state_dict(), back.state_dict()
    for k in sa:
        assert np.allclose(got[k], (sa[k].astype(np.float64) + sb[k]) / 2, atol=1e-6), k
    assert not np.allclose(got["head.U"], sa["head.U"])  # the head is averaged too
    # a soup of a model with itself is that model, bit for bit
    soup.run(_args([fa, fa], tmp_path / "same"))
    same = span_qa.load_qa_model(tmp_path / "same", "numpy")[0].state_dict()
    assert all(np.array_equal(same[k], sa[k]) for k in sa)
    x = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 16))
    context = np.arange(16)[None].repeat(2, 0) >= 5
    assert np.allclose(span_qa.load_qa_model(tmp_path / "same", "numpy")[0](x, None, context),
                       qa_a(x, None, context), atol=1e-5)


def test_soup_refuses_what_it_cannot_average(tmp_path):
    base_dir = save_checkpoint(tmp_path / "base", SpikeLLM(CFG), TOK)
    other = save_checkpoint(tmp_path / "other", SpikeLLM(Config.tiny(
        vocab_size=TOK.vocab_size, block_size=16, n_layer=2, n_embd=16, n_head=2, d_ff=32,
        seed=5)), TOK)
    fa, _ = _qa(tmp_path, base_dir, "a", 1)
    fo, _ = _qa(tmp_path, other, "o", 2)
    with pytest.raises(ValueError, match="another base model"):
        soup.run(_args([fa, fo], tmp_path / "s1"))
    fp, _ = _qa(tmp_path, base_dir, "plain", 3, question=False)
    with pytest.raises(ValueError, match="question_head"):
        soup.run(_args([fa, fp], tmp_path / "s2"))
    fl, _ = _qa(tmp_path, base_dir, "lora", 4, strategy="lora")
    with pytest.raises(ValueError, match="fuse it first"):
        soup.run(_args([fa, fl], tmp_path / "s3"))
    with pytest.raises(ValueError, match="not a QA model folder"):
        soup.run(_args([fa, base_dir], tmp_path / "s4"))
    with pytest.raises(ValueError, match="at least two"):
        soup.run(_args([fa], tmp_path / "s5"))
    with pytest.raises(ValueError, match="one of the ingredients"):
        soup.run(_args([fa, fa], fa))
    keep = tmp_path / "notes"
    keep.mkdir()
    (keep / "mine.txt").write_text("a learner's file")
    with pytest.raises(ValueError, match="not a QA model folder: choose another --out"):
        soup.run(_args([fa, fa], keep))
    assert (keep / "mine.txt").read_text() == "a learner's file"
    assert not any(p.name.startswith("s") and p.name[1:].isdigit() for p in tmp_path.iterdir())


def test_soup_on_the_command_line(tmp_path, capsys):
    from spike_lib.cli import main

    base_dir = save_checkpoint(tmp_path / "base", SpikeLLM(CFG), TOK)
    fa, _ = _qa(tmp_path, base_dir, "a", 1)
    fb, _ = _qa(tmp_path, base_dir, "b", 2)
    assert main(["soup", str(fa), str(fb), "--out", str(tmp_path / "s"), "--weights", "1", "3",
                 "--json"]) == 0
    import json
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["models"] == 2
    info = span_qa.read_qa_config(tmp_path / "s")
    assert [s["weight"] for s in info["soup"]] == [1.0, 3.0]
