"""Stage 2 of data/checkpoints/book-qa: a span model fine-tuned on template + varied records.

nice -n 10 .venv/bin/python scripts/train_span_varied.py NAME START LR STEPS [BATCH] [EVAL_EVERY]
    [VARIED_FRAC] [SEED] [N_CONTEXTS] [RICH] [WINDOWS] [HARD] [QHEAD] [EXTRA] [REPEAT]
The varied records (spike_lib.data.qa_varied, N_CONTEXTS contexts per training article, the
paraphrase test articles left out; RICH=1: varied_records(rich=True); WINDOWS=1: a long
context's example is the window that holds its answer, not skipped; HARD=1: hard=True, a
same-type decoy about another article for every asked fact and more question phrasings; QHEAD=1:
a fresh head that also reads the question, SpanHead(question=True); EXTRA: a QA file of
hand-written training questions, e.g. data/qa/paraphrase_train.jsonl, or several files joined by
commas, in order, added REPEAT times to the varied records ("-": none)) make
VARIED_FRAC of the mix, template training examples the rest; batches visit the mix by epochs
(spike_lib.train.span_qa.finetune_span, MLX, Adam).
START: a QA folder (continue its model and head) or a base checkpoint (fresh head, full).
Validation every EVAL_EVERY steps on template val (200, seed 0), data/qa/paraphrase_val.jsonl
and data/qa/paraphrase_val2.jsonl; the best step (EM over both paraphrase val files, 158
questions, template-val EM >= 80) is saved to runs/qa/NAME/best.
Shipped: START = the stage-1 folder (the finetune command in book-qa/qa.json), see its README.
"""
import json, sys, time
from pathlib import Path
import numpy as np
from spike_lib.train import finetune as ft, span_qa
from spike_lib.train.qa_baselines import test_sample, score
from spike_lib.data.qa import QA_DIR, load_qa
from spike_lib.data.qa_varied import varied_records

name, start, lr, steps = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
batch = int(sys.argv[5]) if len(sys.argv) > 5 else 16
eval_every = int(sys.argv[6]) if len(sys.argv) > 6 else 60
frac = float(sys.argv[7]) if len(sys.argv) > 7 else 0.5
seed = int(sys.argv[8]) if len(sys.argv) > 8 else 0
n_contexts = int(sys.argv[9]) if len(sys.argv) > 9 else 3
rich = bool(int(sys.argv[10])) if len(sys.argv) > 10 else False
windows = bool(int(sys.argv[11])) if len(sys.argv) > 11 else False
hard = bool(int(sys.argv[12])) if len(sys.argv) > 12 else False
qhead = bool(int(sys.argv[13])) if len(sys.argv) > 13 else False
extra = sys.argv[14] if len(sys.argv) > 14 and sys.argv[14] != "-" else None
repeat = int(sys.argv[15]) if len(sys.argv) > 15 else 1
out = Path("runs") / "qa" / name; out.mkdir(parents=True, exist_ok=True)
if span_qa.is_qa_folder(start):
    model, tok, info = span_qa.load_qa_model(start, "mlx")
    base_folder = info["base"]["path"]
    names = ft.setup_strategy(model.base, "full")
else:
    base, tok, base_folder = ft.load_base(start, "mlx")
    names = ft.setup_strategy(base, "full")
    model = span_qa.build_span_model(base, 3, qhead)
trainable = span_qa.span_trainable(model, names)
train = load_qa(QA_DIR / "train.jsonl")
test_articles = sorted({r["article"] for r in load_qa(QA_DIR / "paraphrase.jsonl")})
varied = varied_records(train, n_contexts=n_contexts, seed=0, exclude=test_articles, rich=rich,
                        hard=hard)
if extra:
    varied = varied + [r for f in extra.split(",") for r in load_qa(Path(f))] * repeat
vex, vcounts = span_qa.encode_span_examples(tok, varied, model.cfg.block_size, windows)
tex, tcounts = span_qa.encode_span_examples(tok, train, model.cfg.block_size, windows)
n_t = int(len(vex) * (1 - frac) / frac) if frac < 1 else 0
rng = np.random.default_rng(seed)
mix = vex + [tex[i] for i in rng.choice(len(tex), min(n_t, len(tex)), replace=False)]
val_t = test_sample(load_qa(QA_DIR / "val.jsonl"), 200)
val_p = load_qa(QA_DIR / "paraphrase_val.jsonl")
val_p2 = load_qa(QA_DIR / "paraphrase_val2.jsonl")
logf = open(out / "log.jsonl", "a")
def log(rec):
    logf.write(json.dumps(rec) + "\n"); logf.flush(); print(json.dumps(rec), flush=True)
log({"name": name, "start": str(start), "lr": lr, "steps": steps, "batch": batch, "frac": frac,
     "seed": seed, "n_contexts": n_contexts, "rich": rich, "windows": windows, "hard": hard, "qhead": qhead, "extra": extra, "repeat": repeat, "varied": vcounts, "template_in_mix": min(n_t, len(tex)), "mix": len(mix),
     "excluded_articles": test_articles, "argv": sys.argv})
best = {"key": None}
def both(step, train_rec=None):
    model.train(False)
    rt = span_qa.evaluate_span(model, tok, val_t)
    rp = span_qa.evaluate_span(model, tok, val_p)
    rp2 = span_qa.evaluate_span(model, tok, val_p2)
    model.train(True)
    both_em = (rp["exact_match"] * len(val_p) + rp2["exact_match"] * len(val_p2)) / (
        len(val_p) + len(val_p2))
    pt = score(rp["predictions"], val_p)["per_type"]
    rec = {"step": step, "val_em": rt["exact_match"], "val_f1": rt["f1"], "val_loss": rt["answer_loss"],
           "pval_em": rp["exact_match"], "pval_f1": rp["f1"], "pval_loss": rp["answer_loss"],
           "pval2_em": rp2["exact_match"], "pval2_f1": rp2["f1"], "pvals_em": both_em,
           "firing_rate": rt["firing_rate"], "pval_per_type": {k: v["exact_match"] for k, v in pt.items()}}
    log(rec)
    key = (rt["exact_match"] >= 80, both_em, rt["exact_match"])
    if best["key"] is None or key > best["key"]:
        best["key"] = key
        span_qa.save_qa_model(out / "best", model, tok, base_folder, "span", "full",
                              meta={"command": "python scripts/train_span_varied.py " + " ".join(sys.argv[1:]),
                                    "best_step": step, "val": rec, "lr": lr, "batch_size": batch,
                                    "steps": steps, "varied_frac": frac, "start": str(start)})
        log({"saved_best": step})
def cb(rec):
    if "exact_match" in rec:
        both(rec["step"])
    else:
        log(rec)
both(0)
hist = span_qa.finetune_span(model, tok, mix, trainable, steps, batch, lr, warmup=min(20, steps // 10),
                             seed=seed, val_records=val_p[:1], eval_every=eval_every, log=cb)
log({"done": True, "seconds": hist["seconds"], "wall_seconds": hist["wall_seconds"]})
np.save(out / "loss.npy", np.array(hist["loss"]))
