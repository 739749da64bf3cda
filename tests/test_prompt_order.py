"""Prompt order and context loss: exact prompts, cuts, targets and weights by hand, gradcheck,
NumPy/MLX parity, the order a folder records, and the 2 x 2 comparison script."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from spike_lib.cli import main
from spike_lib.core.config import Config
from spike_lib.core.gradcheck import numerical_grad
from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.numpy_impl.layers import cross_entropy, weighted_cross_entropy
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers import get_tokenizer
from spike_lib.train import finetune as ft
from spike_lib.train import prompt as pr
from spike_lib.train import qa_eval as qe
from spike_lib.train.check import gradcheck_config, normwise_rel_error
from spike_lib.train.checkpoint import load_meta, save_checkpoint

TOK = get_tokenizer("char")  # one token per ASCII character: positions are easy to count
CFG = Config.tiny(vocab_size=TOK.vocab_size, block_size=64, n_layer=2, n_embd=16, n_head=2,
                  d_ff=32, num_steps=2)
REC = {"context": "Ab has xy. It is old.", "question": "Where is Ab?",
       "answers": [{"text": "xy", "answer_start": 7}]}


def toy_records():
    names, cities = ["Ab", "Cd", "Ef", "Gh", "Ij", "Kl"], ["xy", "zw", "uv", "st", "qr", "op"]
    return [{"context": f"{n} has {c}. It is old.", "question": f"Where is {n}?",
             "answers": [{"text": c, "answer_start": len(n) + 5}]} for n, c in zip(names, cities)]


# ---------------------------------------------------------------- prompts and cuts
def test_exact_prompts_in_both_orders():
    assert ft.format_prompt(REC["context"], REC["question"]) == (
        "Context: Ab has xy. It is old.\nQuestion: Where is Ab?\nAnswer:")  # chapter 9's, as before
    assert ft.format_prompt(REC["context"], REC["question"], "question") == (
        "Question: Where is Ab?\nContext: Ab has xy. It is old.\nAnswer:")
    ex = pr.encode_example(TOK, REC, 64, 4)
    assert ex["prompt"] == TOK.encode("Context: Ab has xy. It is old.\nQuestion: Where is Ab?"
                                      "\nAnswer:")
    assert ex["context"] == (9, 30)  # "Context: " is 9 characters, the context 21
    q = pr.encode_example(TOK, REC, 64, 4, order="question")
    assert q["context"] == (32, 53) and q["answer"] == ex["answer"] == TOK.encode(" xy\n")
    assert TOK.decode(q["prompt"][32:53]) == REC["context"]


@pytest.mark.parametrize("order, want, span", [
    ("context", "Context: Ab has xy. It\nQuestion: Where is Ab?\nAnswer:", (9, 22)),
    ("question", "Question: Where is Ab?\nContext: Ab has xy. It\nAnswer:", (32, 45))])
def test_the_cut_keeps_the_whole_question(order, want, span):
    # 56 + 1 - 4 = 53 prompt tokens; 28 template + 12 question characters leave 13 of context
    ex = pr.encode_example(TOK, REC, block_size=56, answer_tokens=4, order=order)
    assert TOK.decode(ex["prompt"]) == want and len(ex["prompt"]) == 53
    assert ex["truncated"] and ex["answer_kept"] and ex["context"] == span
    long_q = "Which town does Ab have, and why?"  # 33 characters + 28 template = 61
    kept, ids = pr.fit_context(TOK, REC["context"], long_q, 61 + 13, order)
    assert kept == "Ab has xy. It" and long_q in TOK.decode(ids)  # the context alone was cut
    kept, ids = pr.fit_context(TOK, REC["context"], long_q, 61, order)
    assert kept == "" and long_q in TOK.decode(ids) and len(ids) == 61
    with pytest.raises(ValueError, match="alone needs 61 prompt tokens, more than the 60"):
        pr.fit_context(TOK, REC["context"], long_q, 60, order)


# ---------------------------------------------------------------- targets and weights
# two rows of a 6-token block: prompt ids, the answer ids, and where the context is
TOY = [{"prompt": [7, 1, 2, 8], "answer": [3, 4, 5], "context": (1, 3)},
       {"prompt": [9, 1, 8], "answer": [6, 10], "context": (1, 2)}]
IGN = IGNORE_INDEX


def test_targets_and_weights_on_a_six_token_toy():
    x, y = pr.answer_batch(TOY, 6, pad_id=0)
    assert x.tolist() == [[7, 1, 2, 8, 3, 4], [9, 1, 8, 6, 0, 0]]  # seq[:-1], right padding
    assert y.tolist() == [[IGN, IGN, IGN, 3, 4, 5], [IGN, IGN, 6, 10, IGN, IGN]]
    yc = pr.context_targets(TOY, 6)  # the context tokens 1, 2 and 1, read from one before
    assert yc.tolist() == [[1, 2, IGN, IGN, IGN, IGN], [1, IGN, IGN, IGN, IGN, IGN]]
    x2, y2, w = pr.qa_batch(TOY, 6, 0, context_loss=0.5)
    assert np.array_equal(x2, x)
    assert y2.tolist() == [[1, 2, IGN, 3, 4, 5], [1, IGN, 6, 10, IGN, IGN]]
    a, c = 1 / 5, 0.5 / 3  # five answer targets in the batch, three context targets
    assert np.allclose(w, [[c, c, 0, a, a, a], [c, 0, a, a, 0, 0]], rtol=0, atol=1e-15)
    _, y0, w0 = pr.qa_batch(TOY, 6, 0, context_loss=0)
    assert np.array_equal(y0, y) and np.allclose(w0, [[0, 0, 0, a, a, a], [0, 0, a, a, 0, 0]])
    # the weighted loss is the answer mean plus lambda times the context mean, dlogits too
    logits = np.random.default_rng(0).normal(0, 2, (2, 6, 11))
    loss, dlogits = weighted_cross_entropy(logits, y2, w)
    la, da = cross_entropy(logits, y, ignore_index=IGN)
    lc, dc = cross_entropy(logits, yc, ignore_index=IGN)
    assert math.isclose(loss, la + 0.5 * lc, rel_tol=1e-12)
    assert np.allclose(dlogits, da + 0.5 * dc, atol=1e-15)
    assert math.isclose(weighted_cross_entropy(logits, y0, w0)[0], la, rel_tol=1e-12)


def test_context_targets_spell_the_kept_context():
    for order in pr.ORDERS:
        ex = pr.encode_example(TOK, REC, block_size=56, answer_tokens=4, order=order)
        yc = pr.context_targets([ex], 56)[0]
        assert TOK.decode(yc[yc != IGN].tolist()) == "Ab has xy. It"
        assert np.flatnonzero(yc != IGN).tolist() == list(range(ex["context"][0] - 1,
                                                                ex["context"][1] - 1))
    empty = {"prompt": [7, 8], "answer": [3], "context": (1, 1)}  # a context cut to nothing
    assert (pr.context_targets([empty], 6) == IGN).all()
    with pytest.raises(ValueError, match="does not say where its context is"):
        pr.qa_batch([{"prompt": [7, 8], "answer": [3]}], 6, 0, context_loss=0.5)


def test_weighted_loss_gradcheck_float64():
    cfg = gradcheck_config()  # block_size 6, vocab 11: the toy batch fits
    model = SpikeLLM(cfg, np.random.default_rng(0)).set_smooth().astype(np.float64)
    x, y, w = pr.qa_batch(TOY, 6, 0, context_loss=0.5)

    def loss():
        return weighted_cross_entropy(model(x), y, w)[0]

    logits = model(x)
    _, dlogits = weighted_cross_entropy(logits, y, w)
    num = numerical_grad(lambda: weighted_cross_entropy(logits, y, w)[0], logits, 1e-6)
    assert normwise_rel_error(dlogits, num) < 1e-8
    model.zero_grad()
    model(x)
    model.backward(dlogits)
    rng = np.random.default_rng(1)
    errs = {}
    for name, p, g in model.named_parameters():
        idx = rng.choice(p.size, min(p.size, 24), replace=False)
        errs[name] = normwise_rel_error(g.reshape(-1)[idx], numerical_grad(loss, p, 1e-5, idx))
    assert max(errs.values()) < 1e-6, max(errs, key=errs.get)


# ---------------------------------------------------------------- NumPy and MLX agree
@pytest.mark.parametrize("smooth", [True, False])
def test_numpy_mlx_parity_of_the_context_loss(smooth):
    mx = pytest.importorskip("mlx.core")
    from mlx import nn
    from mlx.utils import tree_flatten

    from spike_lib.mlx_impl.model import SpikeLLM as MlxSpikeLLM
    from spike_lib.mlx_impl.train import weighted_loss_fn

    cfg = gradcheck_config() if smooth else Config.tiny(n_layer=2, vocab_size=11, block_size=6)
    ref, port = SpikeLLM(cfg), MlxSpikeLLM(cfg)  # same seed, same weights
    if smooth:  # float64 and the smooth surrogate: agreement to rounding
        ref, port = ref.set_smooth().astype(np.float64), port.set_smooth().astype(mx.float64)
    x, y, w = pr.qa_batch(TOY, 6, 0, context_loss=0.5)
    loss, dlogits = weighted_cross_entropy(ref(x), y, w)
    ref.zero_grad()
    ref.backward(dlogits)
    dtype = mx.float64 if smooth else mx.float32
    mloss, grads = nn.value_and_grad(port, weighted_loss_fn)(
        port, mx.array(x), mx.array(y), mx.array(w, dtype=dtype))
    grads = dict(tree_flatten(grads))
    errs = {n: normwise_rel_error(np.array(grads[n]), g) for n, _, g in ref.named_parameters()}
    assert abs(mloss.item() - loss) < (1e-7 if smooth else 1e-5) * loss
    # MLX's float64 smooth path agrees to ~1e-7, as in test_mlx_model; float32 to ~1e-4
    assert max(errs.values()) < (2e-7 if smooth else 1e-4), max(errs, key=errs.get)


@pytest.mark.parametrize("backend", ["numpy", "mlx"])
def test_finetune_loss_is_the_hand_computed_objective(backend):
    """The first step's loss of finetune, before any update: Eq. 9.1 exactly for lambda = 0,
    plus lambda times the context mean for lambda > 0, on both backends."""
    examples, _ = pr.encode_examples(TOK, toy_records(), 64, 4, order="question")
    x, y = pr.answer_batch(examples, 64, TOK.eot_id)
    yc = pr.context_targets(examples, 64)
    logits = SpikeLLM(CFG)(x)  # the whole set is one batch; the order of rows does not matter
    la, lc = (cross_entropy(logits, t, ignore_index=IGN)[0] for t in (y, yc))
    if backend == "mlx":
        pytest.importorskip("mlx.core")
        from spike_lib.mlx_impl.model import SpikeLLM as Model
    else:
        Model = SpikeLLM
    for lam, want in ((0.0, la), (0.5, la + 0.5 * lc)):
        model = Model(CFG)
        names = ft.setup_strategy(model, "full")
        hist = ft.finetune(model, TOK, examples, names, steps=2, batch_size=6, lr=1e-3,
                           warmup=1, context_loss=lam, compile=False)
        assert math.isclose(hist["loss"][0], want, rel_tol=1e-5), (lam, hist["loss"][0], want)
        assert hist["loss"][1] < hist["loss"][0]


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "0.5", True, None])
def test_bad_context_loss_and_order(bad):
    with pytest.raises(ValueError, match=r"context_loss=.* is invalid: it must be a finite "
                                         r"number >= 0"):
        pr.check_context_loss(bad)
    with pytest.raises(ValueError, match="context_loss"):
        ft.finetune(SpikeLLM(CFG), TOK, [{}], [], context_loss=bad)
    with pytest.raises(ValueError, match=r"prompt_order='answer' is invalid: choose one of "
                                         r"\['context', 'question'\]"):
        pr.format_prompt("c", "q", order="answer")


# ---------------------------------------------------------------- the order a folder records
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("order")
    save_checkpoint(root / "base", SpikeLLM(CFG), TOK)
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in toy_records()),
                                   encoding="utf-8")
    return root


def cli(capsys, argv):
    code = main([*argv, "--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out.strip().splitlines()[-1]) if code == 0 else out.err)


def finetune_argv(base, method, out, *extra):
    return ["finetune", "--checkpoint", str(base / "base"), "--method", method, "--out",
            str(out), "--train-file", str(base / "qa.jsonl"), "--steps", "2", "--batch-size",
            "3", "--rank", "2", "--freeze-layers", "1", "--answer-tokens", "4", *extra]


@pytest.mark.parametrize("method, backend", [("freeze", "numpy"), ("lora", "mlx")])
def test_the_order_is_saved_and_read_back(capsys, monkeypatch, base, method, backend):
    if backend == "mlx":
        pytest.importorskip("mlx.core")
    out = base / f"q-{method}"
    code, res = cli(capsys, finetune_argv(base, method, out, "--backend", backend,
                                          "--prompt-order", "question", "--context-loss", "0.5"))
    assert code == 0, res
    assert res["prompt_order"] == "question" and res["context_loss"] == 0.5
    saved = (json.loads((out / "adapter.json").read_text())["finetune"] if method == "lora"
             else load_meta(out)["finetune"])
    assert saved["prompt_order"] == "question" and saved["context_loss"] == 0.5
    assert pr.saved_prompt_order(out) == "question"
    seen = []
    real = qe.evaluate_qa
    monkeypatch.setattr(qe, "evaluate_qa", lambda *a: seen.append(a[-1]) or real(*a))
    where = (["--checkpoint", str(base / "base"), "--adapter", str(out)] if method == "lora"
             else ["--checkpoint", str(out)])
    evaluate = ["qa-eval", *where, "--qa-file", str(base / "qa.jsonl"), "--backend", backend,
                "--answer-tokens", "4"]
    code, res = cli(capsys, evaluate)  # no --prompt-order: the folder says question
    assert code == 0, res
    assert res["prompt_order"] == "question" and seen == ["question"] and res["n"] == 6
    code, err = cli(capsys, [*evaluate, "--prompt-order", "context"])
    assert code == 2 and "fine-tuned with --prompt-order question" in err
    assert "drop --prompt-order context" in err and len(seen) == 1  # refused before evaluating


def test_old_folders_mean_context_and_base_models_take_any_order(capsys, base):
    old = base / "old"
    save_checkpoint(old, SpikeLLM(CFG), TOK, meta={"finetune": {"method": "full"}})
    assert pr.saved_prompt_order(old) == "context"  # fine-tuned before the option existed
    assert pr.saved_prompt_order(base / "base") is None  # never fine-tuned
    common = ["--qa-file", str(base / "qa.jsonl"), "--backend", "numpy", "--answer-tokens", "4"]
    code, err = cli(capsys, ["qa-eval", "--checkpoint", str(old), *common,
                             "--prompt-order", "question"])
    assert code == 2 and "fine-tuned with --prompt-order context" in err
    code, res = cli(capsys, ["qa-eval", "--checkpoint", str(base / "base"), *common,
                             "--prompt-order", "question"])
    assert code == 0 and res["prompt_order"] == "question"
    code, res = cli(capsys, ["qa-eval", "--checkpoint", str(old), *common])
    assert code == 0 and res["prompt_order"] == "context"


def test_fuse_and_generate_keep_the_order(capsys, base):
    ad = base / "ad-q"
    assert cli(capsys, finetune_argv(base, "lora", ad, "--backend", "numpy",
                                     "--prompt-order", "question"))[0] == 0
    code, res = cli(capsys, ["fuse", "--checkpoint", str(base / "base"), "--adapter", str(ad),
                             "--out", str(base / "fused-q")])
    assert code == 0, res
    assert pr.saved_prompt_order(base / "fused-q") == "question"
    ask = ["generate", "--checkpoint", str(base / "base"), "--adapter", str(ad),
           "--question", "Where is Ab?", "--context", REC["context"], "--max-new-tokens", "3"]
    code, res = cli(capsys, ask)
    assert code == 0, res
    # 64 + 1 - 16 = 49 prompt tokens: 40 for the template and question, 9 for "Ab has"
    assert res["prompt"] == "Question: Where is Ab?\nContext: Ab has\nAnswer:"
    assert res["prompt_order"] == "question" and "\n" not in res["text"]
    code, err = cli(capsys, [*ask, "--prompt-order", "context"])
    assert code == 2 and "fine-tuned with --prompt-order question" in err
    code, err = cli(capsys, ask[:-6] + ["--question", "Where?"])
    assert code == 2 and "--question and --context go together" in err


def test_commands_reject_bad_options(capsys, base):
    out = base / "never"
    code, err = cli(capsys, finetune_argv(base, "freeze", out, "--backend", "numpy",
                                          "--context-loss", "-1"))
    assert code == 2 and "--context-loss=-1.0 is invalid" in err and not out.exists()
    code, err = cli(capsys, finetune_argv(base, "freeze", out, "--backend", "numpy",
                                          "--context-loss", "nan"))
    assert code == 2 and "finite number >= 0" in err and not out.exists()
    code, err = cli(capsys, finetune_argv(base, "freeze", out, "--head", "span",
                                          "--prompt-order", "question"))
    assert code == 2 and "options of --head generate" in err and not out.exists()
    with pytest.raises(SystemExit):
        main(finetune_argv(base, "freeze", out, "--prompt-order", "answer"))
    assert "invalid choice: 'answer'" in capsys.readouterr().err


# ---------------------------------------------------------------- the 2 x 2 script
def test_comparison_script_runs_all_four_arms(capsys, base, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import qa_prompt_order

    out = tmp_path / "order.json"
    argv = ["--checkpoint", str(base / "base"), "--train-file", str(base / "qa.jsonl"),
            "--val-file", str(base / "qa.jsonl"), "--n-val", "6", "--steps", "2",
            "--batch-size", "3", "--answer-tokens", "4", "--backend", "numpy", "--out", str(out)]
    res = qa_prompt_order.main(argv)
    text = out.read_text(encoding="utf-8")
    assert text.count("\n") == 1 and json.loads(text) == res  # one line, what main returned
    assert list(res["runs"]) == ["zero-shot, context first", "zero-shot, question first",
                                 "context first, context_loss 0", "context first, context_loss 0.5",
                                 "question first, context_loss 0", "question first, context_loss 0.5"]
    assert res["cpu"] and res["n_val"] == 6 and res["lr"] == 1e-3 and res["method"] == "full"
    for run in res["runs"].values():
        assert 0 <= run["exact_match"] <= run["f1"] <= 100 and run["wall_s"] > 0
        assert run["n"] == 6 and math.isfinite(run["answer_loss"])
    trained = res["runs"]["question first, context_loss 0.5"]
    assert len(trained["loss"]) == 2 and trained["kept"] == 6
    # the stored command trains the same model: the same final loss to the last bit
    cmd = trained["command"].split()
    assert cmd[:4] == ["python", "-m", "spike_lib", "finetune"] and cmd[-1] == "OUT"
    code, got = cli(capsys, cmd[3:-1] + [str(tmp_path / "again")])
    assert code == 0, got
    assert got["final_loss"] == trained["final_loss"] and got["prompt_order"] == "question"
    # the context-first and question-first runs saw different prompts
    assert res["runs"]["context first, context_loss 0"]["answer_loss"] != \
        res["runs"]["question first, context_loss 0"]["answer_loss"]
    with pytest.raises(ValueError, match="--context-loss=-1.0 is invalid"):
        qa_prompt_order.main([*argv, "--context-loss", "-1"])
