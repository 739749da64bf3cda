"""The generative QA route, 2 x 2: context-first against question-first prompts, each with and
without the context's language-model loss, on the same steps, batches, lr and seed.

Every run fine-tunes a fresh copy of the base checkpoint (full or LoRA, as `python -m spike_lib
finetune --head generate` does; each run stores the equivalent command), then scores exact match,
F1 and answer loss on N validation questions, sampled as scripts/ch09_strategies.py samples its
questions (seed 0), with prompts in the run's order. The base model's zero-shot scores in both
orders come first. One JSON line, written atomically:

    nice -n 10 .venv/bin/python scripts/qa_prompt_order.py --out data/qa/prompt_order.json

A result kept under data/ must be hashed into data/manifest.json: python -m spike_lib data manifest.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ch09_strategies import sample  # chapter 9's validation sample (seed 0)

from spike_lib.core.atomic import write_json
from spike_lib.core.config import check_range
from spike_lib.data.qa import QA_DIR
from spike_lib.numpy_impl.lora import expand_targets, fingerprint
from spike_lib.train import finetune as ft
from spike_lib.train.evaluation import resolve_checkpoint
from spike_lib.train.qa_eval import evaluate_qa
from spike_lib.train.span_qa import cpu_name

BOOK = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "book"



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(BOOK), help="base model (data/checkpoints/book)")
    p.add_argument("--method", choices=("full", "lora"), default="full", help="full (default) "
                   "or lora (rank 8 on the attention, as finetune's defaults)")
    p.add_argument("--steps", type=int, default=150, help="updates per run (150)")
    p.add_argument("--batch-size", type=int, default=8, help="examples per step (8, chapter 9)")
    p.add_argument("--lr", type=float, help="peak learning rate (full 1e-3, lora 1e-2)")
    p.add_argument("--context-loss", type=float, default=0.5,
                   help="lambda of the context-loss runs (0.5); the other runs use 0")
    p.add_argument("--seed", type=int, default=0, help="adapters and batches (0)")
    p.add_argument("--answer-tokens", type=int, default=ft.ANSWER_TOKENS,
                   help=f"tokens reserved for the answer ({ft.ANSWER_TOKENS})")
    p.add_argument("--n-val", type=int, default=200, help="validation questions scored (200)")
    p.add_argument("--val-file", default=str(QA_DIR / "val.jsonl"))
    p.add_argument("--train-file", default=str(QA_DIR / "train.jsonl"))
    p.add_argument("--backend", choices=("mlx", "numpy"), default="mlx", help="mlx (default)")
    p.add_argument("--no-zero-shot", action="store_true", help="skip the base model's scores")
    p.add_argument("--out", default="data/qa/prompt_order.json", help="the JSON file to write")
    args = p.parse_args(argv)
    check_range("steps", args.steps, 1, kind=int)
    check_range("n_val", args.n_val, 1, kind=int)
    ft.check_context_loss(args.context_loss, "--context-loss")
    if args.context_loss == 0:
        raise ValueError("--context-loss 0 would run the same arm twice: give lambda > 0")
    args.lr = ft.DEFAULT_LR[args.method] if args.lr is None else args.lr
    return args


def finetune_command(args, order, lam) -> str:
    """The `python -m spike_lib finetune` command that trains the same model as one run."""
    return (f"python -m spike_lib finetune --head generate --checkpoint {args.checkpoint} "
            f"--method {args.method} --backend {args.backend} --train-file {args.train_file} "
            f"--steps {args.steps} --batch-size {args.batch_size} --lr {args.lr} "
            f"--seed {args.seed} --answer-tokens {args.answer_tokens} --prompt-order {order} "
            f"--context-loss {lam} --out OUT")


def scores(res) -> dict:
    keep = ("exact_match", "f1", "answer_loss", "n", "answer_cut", "firing_rate", "predictions")
    return {k: res[k] for k in keep}


def one_run(args, train_recs, val, order, lam) -> dict:
    """Fine-tune a fresh copy of the base in one prompt order with one lambda; its scores."""
    start = time.perf_counter()
    model, tok, _ = ft.load_base(args.checkpoint, args.backend)
    examples, counts = ft.encode_examples(tok, train_recs, model.cfg.block_size,
                                          args.answer_tokens, order)
    names = ft.setup_strategy(model, args.method, None, 8, 16.0, expand_targets("attn"),
                              np.random.default_rng(args.seed))
    hist = ft.finetune(model, tok, examples, names, args.steps, args.batch_size, args.lr,
                       seed=args.seed, context_loss=lam)
    t0 = time.perf_counter()
    res = evaluate_qa(model, tok, val, args.answer_tokens, order=order)
    return {"prompt_order": order, "context_loss": lam, **scores(res), **counts,
            **ft.count_params(model, names), "train_s": hist["seconds"],
            "eval_s": time.perf_counter() - t0, "wall_s": time.perf_counter() - start,
            "final_loss": float(np.mean(hist["loss"][-10:])),
            "loss": [float(v) for v in hist["loss"]],
            "command": finetune_command(args, order, lam)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    train_recs = ft.load_qa_file(args.train_file)
    val = sample(ft.load_qa_file(args.val_file), args.n_val, 0)
    result = {"command": "nice -n 10 .venv/bin/python scripts/qa_prompt_order.py "
                         + " ".join(sys.argv[1:] if argv is None else argv),
              "cpu": cpu_name(), "load_average_at_start": os.getloadavg()[0],
              "base": fingerprint(resolve_checkpoint(args.checkpoint)),
              "method": args.method, "steps": args.steps, "batch_size": args.batch_size,
              "lr": args.lr, "seed": args.seed, "answer_tokens": args.answer_tokens,
              "context_loss": args.context_loss, "backend": args.backend, "n_val": len(val),
              "val_ids": [r.get("id") for r in val], "runs": {}}
    if not args.no_zero_shot:
        model, tok, _ = ft.load_base(args.checkpoint, args.backend)
        for order in ft.ORDERS:
            t0 = time.perf_counter()
            res = evaluate_qa(model, tok, val, args.answer_tokens, order=order)
            result["runs"][f"zero-shot, {order} first"] = {
                "prompt_order": order, "context_loss": None, **scores(res), "train_s": 0.0,
                "eval_s": time.perf_counter() - t0, "wall_s": time.perf_counter() - t0}
    for order in ft.ORDERS:
        for lam in (0.0, args.context_loss):
            label = f"{order} first, context_loss {lam:g}"
            run = result["runs"][label] = one_run(args, train_recs, val, order, lam)
            print(label, {k: run[k] for k in ("exact_match", "f1", "answer_loss", "wall_s")},
                  flush=True)
    result["load_average_at_end"] = os.getloadavg()[0]
    result = json.loads(json.dumps(result, default=lambda o: o.item() if hasattr(o, "item")
                                   else str(o)))
    write_json(args.out, result, indent=None, newline=True)
    print("->", args.out)
    return result


if __name__ == "__main__":
    main()
