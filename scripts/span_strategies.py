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
not touched. --stage2 NAME=LOG adds the validation records of a scripts/train_span_varied.py run
(its log.jsonl: template and paraphrase validation every few steps) that continued the full run;
--mix NAME=LOG the same for one started from the base model (one stage on the mix; --add-mix NAME=LOG adds
one to an existing --out and keeps the rest, with --replaced too); --previous QA_JSON keeps the
scores of an earlier shipped model (its qa.json) as a reference row. One JSON object, written
atomically on one line.
"""

import argparse
import json
import time
from pathlib import Path

from spike_lib.core.atomic import write_json
from spike_lib.data.qa import QA_DIR, load_qa
from spike_lib.train import span_qa


def trainable_count(model, method, command) -> int:
    """Weights the strategy trains: LoRA adapters + head, unfrozen layers + head, or all."""
    from spike_lib.train.finetune import frozen_prefixes

    state = model.state_dict()
    if method == "lora":
        keys = [k for k in state if k.endswith((".A", ".B")) or k.startswith("head.")]
    elif method == "freeze":  # finetune's default: the first n_layer // 2 blocks and the embeddings
        words = command.split()
        n = model.cfg.n_layer
        k = int(words[words.index("--freeze-layers") + 1]) if "--freeze-layers" in words else n // 2
        frozen = tuple("base." + p for p in frozen_prefixes(n, k))
        keys = [key for key in state if not key.startswith(frozen)]
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
            "trainable": trainable_count(model, info["strategy"], info["command"]),
            "paraphrase_val": {"exact_match": res["exact_match"], "f1": res["f1"],
                               "answer_loss": res["answer_loss"], "n": res["n"],
                               "per_type": {t: round(v["exact_match"], 1) for t, v in per.items()}}}


def varied_run(log) -> dict:
    """Settings, validation records and training seconds of a scripts/train_span_varied.py log."""
    recs = [json.loads(x) for x in Path(log).read_text().splitlines() if x]
    keys = ("start", "lr", "steps", "batch", "frac", "n_contexts", "rich", "windows", "varied", "mix",
            "seed", "hard", "qhead")
    settings = {k: recs[0].get(k) for k in keys}
    settings["start"] = str(settings["start"]).replace("/work/runs/qa/", "runs/qa/").replace("/work/main/", "")
    done = [r for r in recs if r.get("done")]
    return {"settings": settings, "evals": [r for r in recs if "pval_em" in r],
            "train_seconds": done[-1]["seconds"] if done else None,
            "epochs": settings["steps"] * settings["batch"] / settings["mix"] if settings["mix"] else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="NAME=FOLDER")
    ap.add_argument("--out", required=True)
    ap.add_argument("--stage2", action="append", default=[], help="NAME=LOG of a stage-2 run")
    ap.add_argument("--mix", action="append", default=[],
                    help="NAME=LOG of a train_span_varied run started from the base model")
    ap.add_argument("--add-mix", action="append", default=[], metavar="NAME=LOG",
                    help="add (or replace) one --mix run in the existing --out, keeping the rest")
    ap.add_argument("--previous", help="qa.json of an earlier shipped model (reference row)")
    ap.add_argument("--replaced", help="qa.json of the shipped model the new one replaced")
    args = ap.parse_args(argv)
    if args.add_mix:  # update mode: add runs (and, with --replaced, a new replaced row)
        out = json.loads(Path(args.out).read_text())
        for name, _, log in (x.partition("=") for x in args.add_mix):
            out["mix"][name] = varied_run(log)
        if args.replaced:
            rep = json.loads(Path(args.replaced).read_text())
            out["replaced"] = {"base_attention": rep["base"]["config"]["attention"],
                               "command": rep.get("command"), "scores": rep["scores"]["shipped"]}
        out.setdefault("added", []).append(" ".join(
            ["python scripts/span_strategies.py --out", args.out,
             *(f"--add-mix {x}" for x in args.add_mix),
             *([f"--replaced {args.replaced}"] if args.replaced else [])]).replace(
                 "/work/runs/qa/", "runs/qa/"))
        write_json(args.out, out, indent=None)
        print(json.dumps({n: r["settings"]["start"] for n, r in out["mix"].items()}))
        return
    if not args.runs:
        ap.error("give NAME=FOLDER runs (or --add-mix NAME=LOG)")
    t0 = time.process_time()
    runs = {}
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"error: {spec!r}: give NAME=FOLDER")
        runs[name] = summarise(folder)
    stage2 = {name: varied_run(log) for name, _, log in (x.partition("=") for x in args.stage2)}
    mix = {name: varied_run(log) for name, _, log in (x.partition("=") for x in args.mix)}
    previous = None
    if args.previous:
        prev = json.loads(Path(args.previous).read_text())
        previous = {"base_attention": prev["base"]["config"]["attention"], "scores": prev["scores"],
                    "command": prev.get("command"), "stage1": prev.get("stage1", {}).get("command")}
    replaced = None
    if args.replaced:
        rep = json.loads(Path(args.replaced).read_text())
        replaced = {"base_attention": rep["base"]["config"]["attention"], "command": rep.get("command"),
                    "scores": rep["scores"]["shipped"]}
    cmd = " ".join(["python scripts/span_strategies.py --out", args.out, *args.runs,
                    *(f"--stage2 {x}" for x in args.stage2), *(f"--mix {x}" for x in args.mix),
                    *([f"--previous {args.previous}"] if args.previous else []),
                    *([f"--replaced {args.replaced}"] if args.replaced else [])])
    out = {"command": cmd.replace("/work/runs/qa/", "runs/qa/"), "runs": runs, "stage2": stage2, "mix": mix,
           "previous": previous, "replaced": replaced, "eval_cpu_s": round(time.process_time() - t0, 1)}
    write_json(args.out, out, indent=None)
    print(json.dumps({k: (v["evals"][-1], v["paraphrase_val"]["exact_match"]) for k, v in runs.items()}))


if __name__ == "__main__":
    main()
