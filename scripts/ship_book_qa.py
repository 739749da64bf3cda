"""Ship data/checkpoints/book-qa from a two-stage span fine-tune (chapter 9b).

Usage (from the repository root):

    python scripts/ship_book_qa.py DEST FOLDER            (one stage)
    python scripts/ship_book_qa.py DEST STAGE2_RUN STAGE1 (two stages)

FOLDER / STAGE1: what `python -m spike_lib finetune --head span ... --out FOLDER` wrote, or (one
stage on the template + varied mix) a run folder of scripts/train_span_varied.py started from the
base model; STAGE2_RUN: a run folder of scripts/train_span_varied.py (its best/ folder and
log.jsonl).
DEST (data/checkpoints/book-qa) receives the model (model/, head.npz), qa.json with the commands
and the scores on every question set (the template test split, chapter 9's sample of 200, a
validation sample of 200, the paraphrase validation and test sets; the paraphrase test set is
scored here, once), the training logs and a README. The folder is replaced only once the new
one is complete.
"""

import json
import shutil
import sys
from pathlib import Path

from spike_lib.core.atomic import atomic_folder
from spike_lib.data.qa import QA_DIR, load_qa
from spike_lib.train import span_qa
from spike_lib.train.qa_baselines import test_sample


def question_sets() -> dict:
    test = load_qa(QA_DIR / "test.jsonl")
    return {"test (all 513)": test, "test sample (200)": test_sample(test, 200),
            "val sample (200)": test_sample(load_qa(QA_DIR / "val.jsonl"), 200),
            "paraphrase val": load_qa(QA_DIR / "paraphrase_val.jsonl"),
            "paraphrase val2": load_qa(QA_DIR / "paraphrase_val2.jsonl"),
            "paraphrase test": load_qa(QA_DIR / "paraphrase.jsonl")}


def scores(folder, sets) -> dict:
    from spike_lib.train.qa_baselines import score

    model, tok, _ = span_qa.load_qa_model(folder, "mlx")
    model.train(False)
    out = {}
    for name, recs in sets.items():
        res = span_qa.evaluate_span(model, tok, recs)
        per = score(res["predictions"], recs)["per_type"]
        out[name] = {k: res[k] for k in ("exact_match", "f1", "answer_loss", "n", "answer_cut")}
        out[name]["per_type"] = {t: round(v["exact_match"], 1) for t, v in per.items()}
    return out


def clean(cmd) -> str:
    return cmd.replace("/work/runs/qa/", "runs/qa/").replace("/work/main/", "")  # no machine paths


def shipped_base(info) -> dict:
    """A run started from a copy of the shipped book model (a snapshot folder with the same
    config and weights) names data/checkpoints/book as its base, in the record and the command."""
    from spike_lib.numpy_impl.lora import fingerprint
    from spike_lib.train.bookmodel import shipped_path

    book = shipped_path("book")
    path = info["base"].get("path")
    same = {k: info["base"][k] for k in ("config", "weights_sha256")} == fingerprint(book)
    if path and Path(path) != book and same:
        info = {**info, "base": {**info["base"], "path": str(book)},
                "command": info["command"].replace(str(path), "data/checkpoints/book")}
    return info


def ship(dest, folder, stage1=None) -> Path:
    """folder: a finetune --out folder (one stage) or a train_span_varied run folder (its best/
    model and log.jsonl; stage1: the finetune folder it continued)."""
    dest, folder = Path(dest), Path(folder)
    two = stage1 is not None
    mixed = (folder / "log.jsonl").is_file()  # a train_span_varied run: its best/ step
    best = folder / "best" if mixed else folder
    info = span_qa.read_qa_config(best)
    info["command"] = clean(info["command"])
    info = shipped_base(info)
    sets = question_sets()
    qa = {**info, "scores": {"shipped": scores(best, sets)}, "stages": 2 if two else 1}
    log2 = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines() if x] if mixed else []
    if mixed:
        first = log2[0]
        qa.update(varied=first.get("varied"), varied_frac=first.get("frac"),
                  rich=first.get("rich", False), n_contexts=first.get("n_contexts"),
                  windows=first.get("windows", False), mix=first.get("mix"),
                  excluded_articles=first.get("excluded_articles"), extra=first.get("extra"),
                  extra_repeat=first.get("repeat"),
                  selected_on="paraphrase_val + paraphrase_val2" if any(
                      "pval2_em" in r for r in log2) else "paraphrase_val")
        qa["epochs"] = qa["steps"] * qa["batch_size"] / first["mix"]
        qa["best_epochs"] = qa["best_step"] * qa["batch_size"] / first["mix"]
    if two:
        info1 = span_qa.read_qa_config(stage1)
        if info1["base"] != info["base"]:
            raise SystemExit(f"error: {stage1} and {best} start from different base models")
        info1["command"] = clean(info1["command"])
        qa["stage1"] = {k: info1[k] for k in ("command", "steps", "lr", "batch_size", "epochs",
                                              "train_seconds", "cpu", "val") if k in info1}
        qa["scores"]["stage1"] = scores(stage1, sets)
    with atomic_folder(dest) as tmp:
        shutil.copytree(best / "model", tmp / "model")
        shutil.copy2(best / "head.npz", tmp / "head.npz")
        if two or not mixed:
            shutil.copy2((stage1 or best) / "train_log.jsonl", tmp / "train_log.jsonl")
        if mixed and not two:
            (tmp / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log2))
        if two:
            (tmp / "train_log_stage2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log2))
        (tmp / "qa.json").write_text(json.dumps(qa, indent=1, sort_keys=True))
        (tmp / "README.md").write_text(readme(dest.name, qa))
    return dest


def readme(name, qa) -> str:
    sc = qa["scores"]["shipped"]
    test, para = sc["test (all 513)"], sc["paraphrase test"]
    lines = [f"# {name}: the book model with a span head (chapter 9b)\n",
             f"The book model (attention {qa['base']['config']['attention']}, fingerprint in "
             f"qa.json \"base\") fine-tuned ({qa['strategy']}) with the span head of chapter 9b"
             + (" that also matches each token against the question (Eq. 9.9)"
                if qa.get("question_head") else "") + ", "
             "with Adam (no weight decay) and a cosine schedule, on the template records "
             "(data/qa/train.jsonl)"]
    if qa["stages"] == 1 and qa.get("mix"):
        lines[-1] = lines[-1].replace(
            "on the template records (data/qa/train.jsonl)",
            f"on a mix of {qa['mix']:,} records: varied retellings of the template facts "
            f"(spike_lib.data.qa_varied, {100 * qa['varied_frac']:.0f} %"
            + (f", with the hand-written questions of {qa['extra']} {qa['extra_repeat']} times"
               if qa.get("extra") else "") + ") and template records (data/qa/train.jsonl)")
        lines[-1] += (f", {qa['steps']} steps of {qa['batch_size']} ({qa['epochs']:.2f} epochs), "
                      f"shipped at its step {qa['best_step']} ({qa['best_epochs']:.2f} epochs), "
                      + ("the best exact match over both paraphrase validation sets (158 questions)"
                         if qa.get("selected_on", "").endswith("val2") else
                         "the best paraphrase-validation exact match")
                      + " with template validation >= 80 %:"
                      f"\n\n    {qa['command']}\n")
    elif qa["stages"] == 2:
        lines[-1] += (f" in stage 1, then on template + varied records (spike_lib.data.qa_varied)"
                      f" in stage 2, shipped at its step {qa['best_step']}:\n\n    "
                      f"{qa['stage1']['command']}\n    {qa['command']}\n")
    else:
        lines[-1] += f", {qa['steps']} steps of {qa['batch_size']} ({qa['epochs']:.2f} epochs):\n\n    {qa['command']}\n"
    lines += [f"Test: template {test['exact_match']:.1f} % EM / {test['f1']:.1f} F1 (all 513), "
              f"paraphrase {para['exact_match']:.1f} % / {para['f1']:.1f} (48, scored once, when "
              "shipped). Every set: qa.json \"scores\", written by\n\n    "
              f"python scripts/ship_book_qa.py data/checkpoints/{name} FOLDER [STAGE1]\n",
              "Evaluate it with\n\n    python -m spike_lib qa-eval --checkpoint "
              f"data/checkpoints/{name} --qa-file data/qa/test.jsonl --json\n",
              "Files: qa.json, head.npz (W, 3 x 256 x 2"
              + (", and U, 2 x 256 x 256" if qa.get("question_head") else "") + "), model/ (the fine-tuned weights as a "
              "standalone checkpoint, with its tokenizer), train_log.jsonl"
              + (" (stage 1), train_log_stage2.jsonl (stage 2)." if qa["stages"] == 2 else
                 " (the run's log: training loss, template and paraphrase validation)."
                 if qa.get("mix") else ".")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    print(ship(*sys.argv[1:]))
