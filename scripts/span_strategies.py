"""Chapter 9b's strategy table: span-head fine-tunes of the book model, read from their folders.

Usage (from the repository root):

    python scripts/span_strategies.py --out data/qa/span_strategies.json \
        full=runs/qa/ms-stage1 lora=runs/qa/ms-lora freeze=runs/qa/ms-freeze \
        full-2ep=runs/qa/ms-full-2ep

Each folder is what `python -m spike_lib finetune --head span --method M ... --out FOLDER`
wrote. For each: the command, method, steps, epochs, peak lr, training seconds and CPU (from
qa.json), the validation curve (exact match, F1 and answer loss on 200 template validation
questions every --eval-every steps, from train_log.jsonl), the trainable weights, and the final
model's scores on the hand-written paraphrase validation set (measured here). The test sets are
not touched. One JSON object, written atomically on one line.
"""

import argparse
import json
import time
from pathlib import Path

from spike_lib.core.atomic import write_json
from spike_lib.data.qa import QA_DIR, load_qa
from spike_lib.train import span_qa


def trainable_count(model, method) -> int:
    """Weights the strategy trains: LoRA adapters + head, unfrozen layers + head, or all."""
    state = model.state_dict()
    if method == "lora":
        keys = [k for k in state if k.endswith((".A", ".B")) or k.startswith("head.")]
    else:
        keys = list(state)
    return int(sum(int(getattr(state[k], "size", 0)) for k in keys))


def summarise(folder) -> dict:
    from spike_lib.train.qa_baselines import score

    info = span_qa.read_qa_config(folder)
    log = [json.loads(x) for x in (Path(folder) / "train_log.jsonl").read_text().splitlines() if x]
    evals = [{k: r[k] for k in ("step", "exact_match", "f1", "answer_loss")}
             for r in log if "exact_match" in r]
    model, tok, _ = span_qa.load_qa_model(folder, "mlx")
    model.train(False)
    pval = load_qa(QA_DIR / "paraphrase_val.jsonl")
    res = span_qa.evaluate_span(model, tok, pval)
    per = score(res["predictions"], pval)["per_type"]
    return {"command": info["command"].replace("/work/runs/qa/", "runs/qa/"), "method": info["strategy"], "steps": info["steps"],
            "epochs": info["epochs"], "lr": info["lr"], "batch_size": info["batch_size"],
            "train_seconds": info["train_seconds"], "cpu": info["cpu"], "evals": evals,
            "trainable": trainable_count(model, info["strategy"]),
            "paraphrase_val": {"exact_match": res["exact_match"], "f1": res["f1"],
                               "answer_loss": res["answer_loss"], "n": res["n"],
                               "per_type": {t: round(v["exact_match"], 1) for t, v in per.items()}}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="NAME=FOLDER")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    t0 = time.process_time()
    runs = {}
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"error: {spec!r}: give NAME=FOLDER")
        runs[name] = summarise(folder)
    out = {"command": "python scripts/span_strategies.py --out " + args.out + " " + " ".join(args.runs),
           "runs": runs, "eval_cpu_s": round(time.process_time() - t0, 1)}
    write_json(args.out, out, indent=None)
    print(json.dumps({k: (v["evals"][-1], v["paraphrase_val"]["exact_match"]) for k, v in runs.items()}))


if __name__ == "__main__":
    main()
