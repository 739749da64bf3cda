"""Span-head fine-tuning, scoring and the QA model folder; qa-eval's bad-input errors."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.numpy_impl import span
from spike_lib.numpy_impl.lora import apply_lora, fingerprint
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers import get_tokenizer
from spike_lib.train import finetune as ft
from spike_lib.train import qa_eval, span_qa
from spike_lib.train.checkpoint import save_checkpoint

TOK = get_tokenizer("char")
CFG = Config.tiny(vocab_size=TOK.vocab_size, block_size=48, n_layer=1, n_embd=16, n_head=2,
                  d_ff=32)
RECS = [{"question": "Capital?", "context": f"The capital is {c}. It is big.", "answers": [c]}
        for c in ("Rome", "Oslo", "Lima", "Bern")]


@pytest.fixture
def base_dir(tmp_path):
    return save_checkpoint(tmp_path / "base", SpikeLLM(CFG), TOK)


def test_examples_and_fixed_shape_batches():
    ex, counts = span_qa.encode_span_examples(TOK, RECS, CFG.block_size)
    assert counts == {"records": 4, "kept": 4, "answer_cut": 0, "inexact": 0}
    x, valid, mask, start, end = span_qa.span_arrays(ex[:2], CFG.block_size, TOK.eot_id)
    assert x.shape == valid.shape == mask.shape == (2, CFG.block_size)
    assert not (mask & ~valid).any() and mask.sum(1).tolist() == [len(e["ids"]) - e["ctx_start"] for e in ex[:2]]
    assert TOK.decode(x[0, start[0]: end[0] + 1]).strip() == "Rome"


def test_epoch_batches_visit_every_example_once():
    gen = span_qa.epoch_batches(10, 3, np.random.default_rng(0))
    first = np.concatenate([next(gen) for _ in range(3)])
    assert len(set(first.tolist())) == 9  # 3 batches of 3 from one permutation, no repeats


@pytest.mark.parametrize("backend, question", [("numpy", False), ("mlx", False), ("numpy", True),
                                               ("mlx", True)])
def test_finetune_span_learns_the_answers(base_dir, backend, question):
    model, tok, _ = ft.load_base(base_dir, backend)
    qa = span_qa.build_span_model(model, question=question)
    names = span_qa.span_trainable(qa, ft.setup_strategy(model, "full"))
    ex, _ = span_qa.encode_span_examples(tok, RECS, CFG.block_size)
    before = span_qa.evaluate_span(qa, tok, RECS)
    hist = span_qa.finetune_span(qa, tok, ex, names, steps=60, batch_size=4, lr=3e-3, warmup=5,
                                 val_records=RECS, eval_every=30, compile=False)
    after = hist["evals"][-1]
    assert [e["step"] for e in hist["evals"]] == [30, 60]
    assert after["answer_loss"] < 0.5 * before["answer_loss"]
    assert after["exact_match"] == 100.0


def test_qa_folder_round_trip_lora_and_qa_eval(base_dir, tmp_path):
    model, tok, _ = ft.load_base(base_dir, "numpy")
    apply_lora(model, 2, 4.0, ("attn",), np.random.default_rng(0))
    for n, p, _ in model.named_parameters():
        p[...] += 0.1 * n.endswith(".B")
    qa = span_qa.build_span_model(model)
    qa.modules["head"].params["W"][...] = np.random.default_rng(1).normal(0, 1, (48, 2))
    out = span_qa.save_qa_model(tmp_path / "qa", qa, tok, base_dir, "span", "lora",
                                meta={"command": "test"})
    assert sorted(p.name for p in out.iterdir()) == ["adapter.npz", "head.npz", "qa.json"]
    back, _, info = span_qa.load_qa_model(out, "numpy")
    x = np.array([tok.encode("Question: a?\nContext: b c")])
    assert np.allclose(back(x), qa(x), atol=1e-5) and info["head"] == "span"
    mlx_back, _, _ = span_qa.load_qa_model(out, "mlx")
    assert np.allclose(np.array(mlx_back(x)), qa(x), atol=1e-4)
    qa_file = tmp_path / "q.jsonl"
    qa_file.write_text("".join(json.dumps(r) + "\n" for r in RECS))
    args = SimpleNamespace(checkpoint=str(out), adapter=None, head=None, qa_file=str(qa_file),
                           limit=None, backend="numpy", answer_tokens=16, batch_size=8)
    res = qa_eval.run(args)
    assert res["n"] == 4 and res["head"] == "span" and 0 <= res["exact_match"] <= 100
    assert set(res) >= {"exact_match", "f1", "n", "exact_match_by_type"}
    with pytest.raises(ValueError, match="holds a span head, not a generate head"):
        qa_eval.run(SimpleNamespace(**{**vars(args), "head": "generate"}))
    with pytest.raises(ValueError, match="needs a QA model folder"):
        qa_eval.run(SimpleNamespace(**{**vars(args), "checkpoint": str(base_dir), "head": "span"}))


def test_question_head_round_trip_and_a_head_file_without_u(base_dir, tmp_path):
    model, tok, _ = ft.load_base(base_dir, "numpy")
    qa = span_qa.build_span_model(model, question=True)
    rng = np.random.default_rng(2)
    for p in qa.modules["head"].params.values():
        p[...] = rng.normal(0, 1, p.shape)
    out = span_qa.save_qa_model(tmp_path / "qa", qa, tok, base_dir, "span", "full")
    assert json.loads((out / "qa.json").read_text())["question_head"] is True
    ex, _ = span_qa.encode_span_examples(tok, RECS, CFG.block_size)
    x, valid, mask, _, _ = span_qa.span_arrays(ex, CFG.block_size, tok.eot_id)
    want = qa(x, valid, mask)
    back, _, _ = span_qa.load_qa_model(out, "numpy")
    assert np.allclose(back(x, valid, mask), want, atol=1e-5)
    mlx_back, _, _ = span_qa.load_qa_model(out, "mlx")
    assert np.allclose(np.array(mlx_back(x, valid, mask)), want, atol=1e-4)
    np.savez(out / "head.npz", W=qa.modules["head"].params["W"])  # U lost
    with pytest.raises(ValueError, match="holds U of shape None"):
        span_qa.load_qa_model(out, "numpy")


def test_adapter_or_head_for_another_base_model(base_dir, tmp_path):
    model, tok, _ = ft.load_base(base_dir, "numpy")
    apply_lora(model, 2, 4.0, ("attn",), np.random.default_rng(0))
    out = span_qa.save_qa_model(tmp_path / "qa", span_qa.build_span_model(model), tok, base_dir,
                                "span", "lora")
    other = save_checkpoint(tmp_path / "other", SpikeLLM(CFG.replace(seed=1)), TOK)
    with pytest.raises(ValueError, match="trained on another base model"):
        span_qa.load_qa_model(out, "numpy", base=other)
    wide = save_checkpoint(tmp_path / "wide", SpikeLLM(CFG.replace(n_embd=24, n_head=2)), TOK)
    full = span_qa.save_qa_model(tmp_path / "full", span_qa.build_span_model(
        ft.load_base(wide, "numpy")[0]), tok, wide, "span", "full")
    np.savez(full / "head.npz", W=np.zeros((48, 2), dtype=np.float32))  # a head of width 16
    with pytest.raises(ValueError, match="trained for another base model"):
        span_qa.load_qa_model(full, "numpy")
    assert fingerprint(base_dir) != fingerprint(other)


def test_qa_file_with_missing_fields(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "answers": ["x"]}) + "\n")
    with pytest.raises(ValueError, match="line 1: missing field 'context'"):
        ft.load_qa_file(bad)


def test_question_longer_than_the_window_is_a_clear_error():
    rec = {**RECS[0], "question": "why " * 20}
    with pytest.raises(ValueError, match="no room is left for the context; shorten the question"):
        span.encode_span_example(TOK, rec, CFG.block_size)


def test_finetune_head_span_writes_a_qa_folder_that_qa_eval_reads(base_dir, tmp_path):
    qa_file = tmp_path / "q.jsonl"
    qa_file.write_text("".join(json.dumps(r) + "\n" for r in RECS))
    args = SimpleNamespace(checkpoint=str(base_dir), method="lora", freeze_layers=None, rank=2,
                           alpha=4.0, targets="attn", seed=0, backend="numpy", window=3,
                           train_file=str(qa_file), val_file=str(qa_file), val_questions=4,
                           steps=4, epochs=2.0, batch_size=2, lr=1e-2, warmup=1, eval_every=2,
                           long_contexts="windows", out=str(tmp_path / "qa"))
    res = span_qa.run_finetune(args)
    assert res["steps"] == 4  # 2 epochs of 4 examples in batches of 2
    info = span_qa.read_qa_config(tmp_path / "qa")
    assert info["head"] == "span" and info["strategy"] == "lora" and info["val"]["step"] == 4
    log = [json.loads(x) for x in (tmp_path / "qa" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "exact_match" in r] == [2, 4]
    out = qa_eval.run(SimpleNamespace(checkpoint=str(tmp_path / "qa"), adapter=None, head=None,
                                      qa_file=str(qa_file), limit=None, backend="numpy",
                                      answer_tokens=16, batch_size=8))
    assert out["n"] == 4 and out["head"] == "span"


def test_answer_widget_html_marks_the_span():
    from spike_lib.ui.qa_widget import answer_html

    html = answer_html("a <b> c", 2, 5, "Q?", "<b>")
    assert '<mark style="background:#ffd54f">&lt;b&gt;</mark>' in html and "<b>A:</b> &lt;b&gt;" in html
    with pytest.raises(ValueError, match="outside the context"):
        answer_html("abc", 2, 9)


def test_full_fine_tune_survives_a_replaced_base_model(base_dir, tmp_path):
    """A full (or freeze) QA folder holds its own weights: replacing the base it was tuned
    from (as data/checkpoints/book is replaced by a newer book model) changes none of its
    answers, and its qa.json still records the fingerprint of the base it came from."""
    model, tok, _ = ft.load_base(base_dir, "numpy")
    qa = span_qa.build_span_model(model)
    qa.modules["head"].params["W"][...] = np.random.default_rng(0).normal(0, 0.5, (48, 2))
    out = span_qa.save_qa_model(tmp_path / "qa", qa, tok, base_dir, "span", "full")
    before = span_qa.evaluate_span(span_qa.load_qa_model(out, "numpy")[0], tok, RECS)
    old = fingerprint(base_dir)
    save_checkpoint(base_dir, SpikeLLM(CFG.replace(seed=7)), TOK)  # the base is replaced
    assert fingerprint(base_dir) != old
    back, _, info = span_qa.load_qa_model(out, "numpy")
    assert info["base"]["weights_sha256"] == old["weights_sha256"]
    assert span_qa.evaluate_span(back, tok, RECS)["predictions"] == before["predictions"]
