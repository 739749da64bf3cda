"""The generative head for two epochs: full, freeze and LoRA, question first, stored for chapter 9b.

Reads the run folders that `python -m spike_lib finetune --head generate ... --epochs 2
--eval-every 250` wrote (the command is in each folder; train_log.jsonl holds exact match, F1
and answer loss on a fixed sample of 100 validation questions during training) and scores each
final model as `qa-eval` does: greedy answers, question first, on the 200 validation questions
of scripts/qa_prompt_order.py, on chapter 9's sample of 200 test questions and on the
paraphrase validation set. One JSON file, written atomically:

    .venv/bin/python scripts/gen_epochs.py --out data/qa/gen_epochs.json \
        full=runs/qa/gen-full-2ep freeze=runs/qa/gen-freeze-2ep lora=runs/qa/gen-lora-2ep

A result kept under data/ must be hashed into data/manifest.json: python -m spike_lib data manifest.
"""

import argparse
import json
import time
from pathlib import Path

from spike_lib.core.atomic import write_json
from spike_lib.data.qa import QA_DIR
from spike_lib.train.finetune import load_qa_file
from spike_lib.train.qa_baselines import score, test_sample
from spike_lib.train.qa_eval import evaluate_qa, load_model
from spike_lib.train.span_qa import cpu_name

BOOK = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "book"
KEEP = ("exact_match", "f1", "answer_loss", "n", "answer_cut", "firing_rate")


def run_info(folder) -> dict:
    """The finetune metadata of a run folder: adapter.json (LoRA) or meta.json (a checkpoint)."""
    folder = Path(folder)
    if (folder / "adapter.json").is_file():
        return json.loads((folder / "adapter.json").read_text())["finetune"]
    return json.loads((folder / "meta.json").read_text())["finetune"]


def summarise(folder, sets) -> dict:
    folder = Path(folder)
    info = run_info(folder)
    log = [json.loads(x) for x in (folder / "train_log.jsonl").read_text().splitlines() if x]
    lora = (folder / "adapter.json").is_file()
    model, tok = load_model(BOOK if lora else folder, folder if lora else None, "mlx")
    out = {"command": info["command"], "method": info["method"], "epochs": info["epochs"],
           "steps": info["steps"], "train_seconds": info["seconds"],
           "trainable": info["trainable_params"], "prompt_order": info["prompt_order"],
           "evals": [r for r in log if "exact_match" in r], "scores": {}}
    for name, recs in sets.items():
        res = evaluate_qa(model, tok, recs, order=info["prompt_order"])
        out["scores"][name] = {k: res[k] for k in KEEP}
        out["scores"][name]["per_type"] = {t: v["exact_match"] for t, v in
                                           score(res["predictions"], recs)["per_type"].items()}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="NAME=FOLDER of a finetune --head generate run")
    p.add_argument("--out", default="data/qa/gen_epochs.json", help="the JSON file to write")
    args = p.parse_args(argv)
    # the validation sample of prompt_order.json, chapter 9's test sample, the paraphrase val set
    sets = {"val (200)": test_sample(load_qa_file(QA_DIR / "val.jsonl"), 200),
            "test sample (200)": test_sample(load_qa_file(QA_DIR / "test.jsonl"), 200),
            "paraphrase val": load_qa_file(QA_DIR / "paraphrase_val.jsonl")}
    t0 = time.process_time()
    runs = {}
    for item in args.runs:
        name, _, folder = item.partition("=")
        if not folder:
            raise SystemExit(f"error: {item!r} is not NAME=FOLDER")
        runs[name] = summarise(folder, sets)
        print(name, {k: round(v["exact_match"], 1) for k, v in runs[name]["scores"].items()})
    write_json(args.out, {"command": "python scripts/gen_epochs.py " + " ".join(argv or []),
                          "cpu": cpu_name(), "eval_cpu_s": round(time.process_time() - t0, 1),
                          "runs": runs})


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
