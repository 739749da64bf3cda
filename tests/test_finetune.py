"""Fine-tuning: prompt format, answer-only loss by hand, QA file errors, strategies, the command."""

import json
import math

import numpy as np
import pytest

from spike_lib.train import finetune as ft
from spike_lib.train.checkpoint import load_meta, save_checkpoint
from spike_lib.cli import main
from spike_lib.core.config import Config
from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.numpy_impl.layers import cross_entropy
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers import get_tokenizer

TOK = get_tokenizer("char")  # one token per ASCII character: lengths are easy to count
CFG = Config.tiny(vocab_size=TOK.vocab_size, block_size=64, n_layer=2, n_embd=16, n_head=2,
                  d_ff=32, num_steps=2)
NAMES = ["Ab", "Cd", "Ef", "Gh", "Ij", "Kl"]
CITIES = ["xy", "zw", "uv", "st", "qr", "op"]


def toy_records():
    return [{"context": f"{n} has {c}. It is old.", "question": f"Where is {n}?",
             "answers": [{"text": c, "answer_start": len(n) + 5}]} for n, c in zip(NAMES, CITIES)]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_answer_only_loss_by_hand():
    # four positions, three classes; only positions 2 and 3 are answer targets
    logits = np.array([[[5.0, 0, 0], [0, 5.0, 0], [0, 0, 0], [math.log(2), 0, 0]]])
    y = np.array([[2, 2, 1, 0]])
    y[0, :2] = IGNORE_INDEX
    # position 2: uniform, p = 1/3; position 3: p(0) = 2 / (2 + 1 + 1) = 1/2
    want = (math.log(3) + math.log(2)) / 2
    loss, dlogits = cross_entropy(logits, y, ignore_index=IGNORE_INDEX)
    assert math.isclose(loss, want, rel_tol=1e-6)
    assert not dlogits[0, :2].any()  # the prompt positions get no gradient
    assert np.allclose(dlogits[0, 3], np.array([0.5 - 1, 0.25, 0.25]) / 2)
    mx = pytest.importorskip("mlx.core")
    from spike_lib.mlx_impl.layers import cross_entropy as mlx_ce

    assert math.isclose(mlx_ce(mx.array(logits), y, IGNORE_INDEX).item(), want, rel_tol=1e-6)


def test_prompt_format_and_batch():
    rec = toy_records()[0]
    ex = ft.encode_example(TOK, rec, block_size=64, answer_tokens=4)
    prompt = "Context: Ab has xy. It is old.\nQuestion: Where is Ab?\nAnswer:"
    assert TOK.decode(ex["prompt"]) == prompt and TOK.decode(ex["answer"]) == " xy\n"
    assert not ex["truncated"] and ex["answer_kept"]
    x, y = ft.answer_batch([ex], 64, TOK.eot_id)
    n = len(prompt)
    assert x.shape == y.shape == (1, 64)
    assert TOK.decode(x[0, : n + 3].tolist()) == prompt + " xy"  # seq[:-1]
    assert (x[0, n + 3:] == TOK.eot_id).all()  # right padding
    assert np.flatnonzero(y[0] != IGNORE_INDEX).tolist() == [n - 1, n, n + 1, n + 2]
    assert TOK.decode(y[0, n - 1: n + 3].tolist()) == " xy\n"


def test_context_is_cut_at_a_word_and_answers_counted():
    rec = toy_records()[0]
    # 56 + 1 - 4 = 53 prompt tokens, 40 of them around the context: 13 characters are left
    ex = ft.encode_example(TOK, rec, block_size=56, answer_tokens=4)
    assert TOK.decode(ex["prompt"]).startswith("Context: Ab has xy. It\nQuestion")
    assert len(ex["prompt"]) == 53 and ex["truncated"] and ex["answer_kept"]
    late = {**rec, "context": "It is old. " + rec["context"]}
    late["answers"] = [{"text": "xy", "answer_start": late["context"].index("xy")}]
    long = {**rec, "answers": ["Ab has"]}  # in the window, but 8 tokens with space and newline
    kept, counts = ft.encode_examples(TOK, [rec, late, long], block_size=56, answer_tokens=4)
    assert counts == {"records": 3, "kept": 1, "truncated": 3, "answer_cut": 1,
                      "answer_too_long": 1}
    assert kept[0]["prompt"] == ex["prompt"]
    with pytest.raises(ValueError, match="alone needs"):
        ft.fit_context(TOK, rec["context"], "Why? " * 20, 40)


@pytest.mark.parametrize("record, match", [
    ({"question": "q", "answers": ["a"]}, "line 1: missing field 'context'"),
    ({"context": "abc", "question": "q"}, "missing field 'answers'"),
    ({"context": "abc", "question": " ", "answers": ["a"]}, "'question' must be a non-empty"),
    ({"context": "abc", "question": "q", "answers": []}, "non-empty list"),
    ({"context": "abc", "question": "q", "answers": ["zz"]}, "'zz' is not a span.*verbatim"),
    ({"context": "abc", "question": "q", "answers": [{"text": "b", "answer_start": 0}]},
     "answer_start=0: fix answer_start"),
    ({"context": "abc", "question": "q", "answers": [{"text": "b", "answer_start": "1"}]},
     "integer 'answer_start'"),
])
def test_bad_qa_files(tmp_path, record, match):
    with pytest.raises(ValueError, match=match):
        ft.load_qa_file(write_jsonl(tmp_path / "bad.jsonl", [record]))


def test_qa_file_formats(tmp_path):
    (tmp_path / "broken.jsonl").write_text('{"context": \n', encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        ft.load_qa_file(tmp_path / "broken.jsonl")
    with pytest.raises(ValueError, match="does not exist"):
        ft.load_qa_file(tmp_path / "none.jsonl")
    recs = ft.load_qa_file(write_jsonl(tmp_path / "ok.jsonl", [
        {"context": "abc", "question": "q", "answers": ["bc"]}] * 3), limit=2)
    assert len(recs) == 2 and ft.answer_span(recs[0]) == (1, 3)


def test_strategies_choose_trainable_names():
    model = SpikeLLM(CFG)
    all_names = ft.param_names(model)
    assert ft.setup_strategy(model, "full") == all_names
    frozen = ft.setup_strategy(model, "freeze", freeze_layers=1)
    assert not any(n.startswith(("tok_emb", "pos_emb", "blocks.0.")) for n in frozen)
    assert "blocks.1.fc1.W" in frozen and "lm_head.W" in frozen
    counts = ft.count_params(model, frozen)
    assert counts["total_params"] == model.num_params()
    assert 0 < counts["trainable_pct"] < 100
    with pytest.raises(ValueError, match="freeze_layers=3 is invalid"):
        ft.setup_strategy(model, "freeze", freeze_layers=3)
    with pytest.raises(ValueError, match="method='adapter' is invalid"):
        ft.setup_strategy(model, "adapter")
    lora = ft.setup_strategy(SpikeLLM(CFG), "lora", rank=2, alpha=4.0)
    assert ft.count_params(SpikeLLM(CFG), [])["trainable_params"] == 0
    assert len(lora) == 16


@pytest.mark.parametrize("backend, method", [("numpy", "freeze"), ("numpy", "lora"),
                                             ("mlx", "freeze"), ("mlx", "lora")])
def test_finetune_changes_only_trainable_weights(backend, method):
    if backend == "mlx":
        pytest.importorskip("mlx.core")
        from spike_lib.mlx_impl.model import SpikeLLM as Model
    else:
        Model = SpikeLLM
    model = Model(CFG)
    examples, _ = ft.encode_examples(TOK, toy_records(), CFG.block_size, 4)
    names = ft.setup_strategy(model, method, freeze_layers=1, rank=2, alpha=4.0,
                              rng=np.random.default_rng(0))
    before = model.state_dict()
    hist = ft.finetune(model, TOK, examples, names, steps=3, batch_size=4, lr=1e-2, warmup=1)
    after = model.state_dict()
    assert len(hist["loss"]) == 3 and all(math.isfinite(v) for v in hist["loss"])
    changed = {n for n in before if not np.array_equal(before[n], after[n])}
    assert changed <= set(names) and changed  # frozen weights are bit-identical


def test_full_finetuning_learns_the_toy_task():
    model = SpikeLLM(CFG)
    examples, _ = ft.encode_examples(TOK, toy_records(), CFG.block_size, 4)
    names = ft.setup_strategy(model, "full")
    hist = ft.finetune(model, TOK, examples, names, steps=40, batch_size=6, lr=1e-2, warmup=2)
    first, last = np.mean(hist["loss"][:3]), np.mean(hist["loss"][-3:])
    assert last < 0.5 * first, (first, last)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    save_checkpoint(root / "base", SpikeLLM(CFG), TOK)
    write_jsonl(root / "qa.jsonl", toy_records())
    return root


def cli(capsys, argv):
    code = main([*argv, "--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out.strip().splitlines()[-1]) if code == 0 else out.err)


@pytest.mark.parametrize("method, backend", [("lora", "mlx"), ("freeze", "numpy")])
def test_finetune_and_qa_eval_commands(capsys, base, method, backend):
    if backend == "mlx":
        pytest.importorskip("mlx.core")
    out = base / f"out-{method}"
    code, res = cli(capsys, ["finetune", "--checkpoint", str(base / "base"), "--method", method,
                             "--out", str(out), "--train-file", str(base / "qa.jsonl"),
                             "--backend", backend, "--steps", "2", "--batch-size", "3",
                             "--rank", "2", "--freeze-layers", "1", "--answer-tokens", "4"])
    assert code == 0, res
    assert res["kept"] == 6 and res["steps"] == 2 and res["trainable_params"] > 0
    evaluate = ["qa-eval", "--qa-file", str(base / "qa.jsonl"), "--backend", backend,
                "--answer-tokens", "4"]
    if method == "lora":
        assert sorted(p.name for p in out.iterdir()) == ["adapter.json", "adapter.npz"]
        evaluate += ["--checkpoint", str(base / "base"), "--adapter", str(out)]
    else:
        assert load_meta(out)["finetune"]["method"] == "freeze"
        evaluate += ["--checkpoint", str(out)]
    code, res = cli(capsys, evaluate)
    assert code == 0, res
    assert {"exact_match", "f1", "n"} <= set(res) and res["head"] == "generate" and res["n"] == 6
    assert 0.0 <= res["exact_match"] <= res["f1"] <= 100.0


def test_commands_reject_bad_input(capsys, base):
    pytest.importorskip("mlx.core")
    ad = base / "ad"
    common = ["--train-file", str(base / "qa.jsonl"), "--steps", "1", "--batch-size", "2",
              "--answer-tokens", "4"]
    code, err = cli(capsys, ["finetune", "--checkpoint", str(base / "base"), "--method", "lora",
                             "--rank", "99", "--out", str(ad), *common])
    assert code == 2 and "rank=99 is larger than" in err and not ad.exists()
    assert cli(capsys, ["finetune", "--checkpoint", str(base / "base"), "--method", "lora",
                        "--rank", "2", "--out", str(ad), *common])[0] == 0
    save_checkpoint(base / "other", SpikeLLM(CFG.replace(seed=5)), TOK)
    code, err = cli(capsys, ["qa-eval", "--checkpoint", str(base / "other"), "--adapter",
                             str(ad), "--qa-file", str(base / "qa.jsonl")])
    assert code == 2 and "trained on another base model" in err and "sha256" in err
    write_jsonl(base / "bad.jsonl", [{"context": "abc", "question": "q", "answers": ["x"]}])
    code, err = cli(capsys, ["qa-eval", "--checkpoint", str(base / "base"), "--qa-file",
                             str(base / "bad.jsonl")])
    assert code == 2 and "line 1" in err and "not a span" in err


def test_epochs_to_steps_by_hand():
    assert ft.epochs_to_steps(2, 6, 3) == 4  # 12 examples drawn, 3 per update
    assert ft.epochs_to_steps(0.5, 6, 4) == 1  # int(0.75) = 0 updates: at least one
    assert ft.epochs_to_steps(2.0, 5949, 8) == 1487
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--epochs"):
            ft.epochs_to_steps(bad, 6, 3)


def test_by_epoch_batches_visit_every_example_once(monkeypatch):
    seen = []
    real = ft.answer_batch
    monkeypatch.setattr(ft, "answer_batch",
                        lambda b, *a: seen.extend(ex["id"] for ex in b) or real(b, *a))
    examples, _ = ft.encode_examples(TOK, toy_records(), CFG.block_size, 4)
    for i, ex in enumerate(examples):
        ex["id"] = i
    model = SpikeLLM(CFG)
    ft.finetune(model, TOK, examples, ft.setup_strategy(model, "full"), steps=4, batch_size=3,
                lr=1e-3, warmup=1, by_epoch=True)
    assert sorted(seen[:6]) == sorted(seen[6:]) == list(range(6))  # two epochs of 6


def test_generate_head_epochs_and_validation_curve(capsys, base):
    pytest.importorskip("mlx.core")
    from spike_lib.train.qa_baselines import test_sample

    out = base / "gen-epochs"
    code, res = cli(capsys, ["finetune", "--checkpoint", str(base / "base"), "--method", "full",
                             "--out", str(out), "--train-file", str(base / "qa.jsonl"),
                             "--epochs", "1", "--batch-size", "3", "--eval-every", "1",
                             "--val-file", str(base / "qa.jsonl"), "--val-questions", "3",
                             "--answer-tokens", "4", "--prompt-order", "question"])
    assert code == 0, res
    assert res["steps"] == 2 and res["epochs"] == 1.0 and "--epochs 1" in res["command"]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    evals = [r for r in log if "exact_match" in r]
    assert [e["step"] for e in evals] == [1, 2] and [e["epoch"] for e in evals] == [0.5, 1.0]
    assert res["val"] == evals[-1] and load_meta(out)["finetune"]["val"] == evals[-1]
    # the last score is what qa-eval gives for the same three questions and the saved model
    write_jsonl(base / "val3.jsonl", test_sample(toy_records(), 3))
    code, ev = cli(capsys, ["qa-eval", "--checkpoint", str(out), "--qa-file",
                            str(base / "val3.jsonl"), "--answer-tokens", "4"])
    assert code == 0, ev
    assert (ev["exact_match"], ev["f1"], ev["n"]) == (evals[-1]["exact_match"], evals[-1]["f1"], 3)
