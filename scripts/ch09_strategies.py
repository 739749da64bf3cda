"""Chapter 9's strategy runs (full, freeze k=2, LoRA r=8 attn and attn+MLP), stored for the book.

Each strategy starts from data/checkpoints/book and trains on the same seeded batches (answer-only
loss, Eq. 9.1) for STEPS steps of BATCH, with the answer loss on VAL_N validation questions every
EVAL_EVERY steps; then exact match, F1, answer loss and firing rate on the chapter's 200 test
questions (seed 0), and, for the best strategy by F1, the same on 200 training questions whose
examples were actually drawn into a batch. Chapter 9 reads the result instead of training for
many minutes:

    nice -n 10 .venv/bin/python scripts/ch09_strategies.py data/qa/ch09_strategies.json
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from spike_lib.core.atomic import write_json
from spike_lib.data.qa import QA_DIR
from spike_lib.mlx_impl.model import load_checkpoint
from spike_lib.numpy_impl.lora import fingerprint
from spike_lib.train import finetune as ft
from spike_lib.train.qa_eval import answer_loss, evaluate_qa
from spike_lib.train.span_qa import cpu_name

BOOK = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "book"
STEPS, BATCH, N_TEST, VAL_N, EVAL_EVERY = 150, 8, 200, 64, 25
if os.environ.get("CH09_SMOKE"):  # a two-step run that exercises every line
    STEPS, N_TEST, VAL_N, EVAL_EVERY = 2, 2, 2, 1
STRATEGIES = {"full": ("full", {}), "freeze k=2": ("freeze", {"freeze_layers": 2}),
              "LoRA r=8 (attn)": ("lora", {"rank": 8, "alpha": 16.0, "targets": ("attn",)}),
              "LoRA r=8 (+MLP)": ("lora", {"rank": 8, "alpha": 16.0, "targets": ("attn", "mlp")})}


def sample(records, n, seed):
    idx = np.random.default_rng(seed).choice(len(records), min(n, len(records)), replace=False)
    return [records[i] for i in sorted(idx)]


def drawn_indices(n_examples, steps, batch, seed=0):
    """The example indices ft.finetune draws (it seeds default_rng(seed), one choice per step)."""
    rng = np.random.default_rng(seed)
    return sorted({int(i) for _ in range(steps)
                   for i in rng.choice(n_examples, size=min(batch, n_examples), replace=False)})


def main(out):
    base, tok, _ = load_checkpoint(BOOK)
    train_recs = ft.load_qa_file(QA_DIR / "train.jsonl")
    test_sample = sample(ft.load_qa_file(QA_DIR / "test.jsonl"), N_TEST, 0)
    val_sample = sample(ft.load_qa_file(QA_DIR / "val.jsonl"), VAL_N, 0)
    # encode_examples, keeping the record of each kept example
    kept = [(i, ex) for i, ex in ((i, ft.encode_example(tok, r, base.cfg.block_size))
                                  for i, r in enumerate(train_recs))
            if ex["answer_kept"] and len(ex["answer"]) <= ft.ANSWER_TOKENS]
    train_ex = [ex for _, ex in kept]
    t0 = time.perf_counter()
    zero = evaluate_qa(base, tok, test_sample)
    result = {"command": "nice -n 10 .venv/bin/python scripts/ch09_strategies.py " + out,
              "cpu": cpu_name(), "base": fingerprint(BOOK), "load_average_at_start": os.getloadavg()[0], "steps": STEPS,
              "batch_size": BATCH, "n_test": N_TEST, "val_n": VAL_N, "eval_every": EVAL_EVERY,
              "peak_lr": ft.DEFAULT_LR, "train_examples": len(train_ex),
              "strategies": {"zero-shot": {**zero, "trainable_params": 0, "trainable_pct": 0.0,
                                           "train_s": 0.0, "eval_s": time.perf_counter() - t0,
                                           "loss": []}}}
    models = {}
    for label, (method, kw) in STRATEGIES.items():
        model = load_checkpoint(BOOK)[0]
        names = ft.setup_strategy(model, method, rng=np.random.default_rng(0), **kw)
        curve = {"step": [0], "answer_loss": [answer_loss(model, tok, val_sample)]}
        model.train(True)

        def callback(step, loss, model=model, curve=curve):
            if (step + 1) % EVAL_EVERY == 0:
                curve["step"].append(step + 1)
                curve["answer_loss"].append(answer_loss(model, tok, val_sample))
                model.train(True)

        hist = ft.finetune(model, tok, train_ex, names, STEPS, BATCH, ft.DEFAULT_LR[method],
                           callback=callback)
        t0 = time.perf_counter()
        res = evaluate_qa(model, tok, test_sample)
        # the seconds of the validation losses inside the loop are not training time
        result["strategies"][label] = {**ft.count_params(model, names), **res,
                                       "train_s": hist["seconds"], "eval_s": time.perf_counter() - t0,
                                       "loss": [float(v) for v in hist["loss"]], "val_curve": curve}
        models[label] = model
        print(label, {k: res[k] for k in ("exact_match", "f1", "answer_loss")}, flush=True)
    best = max(STRATEGIES, key=lambda k: result["strategies"][k]["f1"])
    drawn = drawn_indices(len(train_ex), STEPS, BATCH)
    seen_idx = sorted(np.random.default_rng(1).choice(drawn, N_TEST, replace=False).tolist())
    seen = [train_recs[kept[i][0]] for i in seen_idx]
    res = evaluate_qa(models[best], tok, seen)
    result["seen"] = {"strategy": best, "drawn_examples": len(drawn), **res,
                      "ids": [r["id"] for r in seen]}
    result["load_average_at_end"] = os.getloadavg()[0]
    result = json.loads(json.dumps(result, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    write_json(out, result, indent=None, newline=True)
    print("best", best, "seen EM", res["exact_match"], "->", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/qa/ch09_strategies.json")
