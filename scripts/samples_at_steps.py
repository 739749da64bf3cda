"""Samples of the book model at several training steps, beside a count trigram's (chapter 8).

Usage (from the repository root; the snapshots are checkpoint folders named step<N>):

    python scripts/samples_at_steps.py --snapshots /work/runs/context/snap/book-v3 \
        --out data/benchmarks/samples_at_steps.json

For every snapshot folder step<N> (weights.npz, config.json, meta.json, tokenizer.json) it loads
the NumPy model, scores the validation BPC on the training logs' slice (`heldout_ids`: the mixed
validation slice, --val-tokens tokens) and continues each prompt of PROMPTS twice: sampled
(temperature TEMPERATURE among the TOP_K likeliest, rng = default_rng(SEED) per prompt) and
greedy. The count trigram (interpolated Kneser-Ney fitted on the whole training split, scored
on the same slice) is sampled with the same sampler, seed and settings. Steps already in --out
are kept and skipped, so the script can run again as new snapshots appear (--force redoes them).
The output is written atomically after every snapshot.
"""

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

PROMPTS = ("The capital of France is", '"My dear Emma," said', "A programming language",
           "Calcium (symbol Ca) is the chemical element")
TEMPERATURE, TOP_K, SEED, NEW_TOKENS = 0.8, 40, 0, 40


def sample_ngram(lm, tok, prompt, n_new, rng, temperature, top_k=None):
    """Continue prompt with a count n-gram through the models' sampler (core.sampling)."""
    from spike_lib.core.sampling import sample_logits

    ids = list(tok.encode(prompt))
    out = []
    for _ in range(n_new):
        p = lm.distribution(ids[len(ids) - (lm.order - 1):] if lm.order > 1 else [])
        nxt = sample_logits(np.log(p), rng, temperature, top_k)
        ids.append(nxt)
        out.append(nxt)
    return tok.decode(out)


def continuations(model, tok, n_new):
    from spike_lib.core.sampling import generate_text

    out = {}
    for prompt in PROMPTS:
        out[prompt] = {
            "sampled": generate_text(model, tok, prompt, n_new, np.random.default_rng(SEED),
                                     temperature=TEMPERATURE, top_k=TOP_K),
            "greedy": generate_text(model, tok, prompt, n_new, np.random.default_rng(SEED),
                                    temperature=0.0)}
    return out


def snapshot_steps(root) -> dict:
    """{step: folder} of the complete step<N> folders under root."""
    found = {}
    for p in Path(root).iterdir():
        m = re.fullmatch(r"step(\d+)", p.name)
        if m and p.is_dir() and (p / "weights.npz").is_file() and (p / "meta.json").is_file():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snapshots", required=True, help="folder holding step<N>/ checkpoints")
    ap.add_argument("--out", required=True, help="JSON file to write (kept steps are skipped)")
    ap.add_argument("--val-tokens", type=int, default=4096, help="mixed validation tokens (4096)")
    ap.add_argument("--new-tokens", type=int, default=NEW_TOKENS, help="tokens per continuation")
    ap.add_argument("--force", action="store_true", help="recompute steps already stored")
    args = ap.parse_args(argv)

    from spike_lib.core.atomic import write_json
    from spike_lib.core.scoring import evaluate
    from spike_lib.train.checkpoint import load_checkpoint
    from spike_lib.train.heldout import heldout_ids

    out_path = Path(args.out)
    settings = {"prompts": list(PROMPTS), "temperature": TEMPERATURE, "top_k": TOP_K,
                "seed": SEED, "new_tokens": args.new_tokens, "val_tokens": args.val_tokens,
                "val_slice": "heldout_ids(tok, val_tokens): the mixed validation slice of the logs"}
    data = json.loads(out_path.read_text()) if out_path.is_file() else {}
    if data.get("settings") != settings:
        data = {}  # other prompts or settings: start again
    data.update(settings=settings, snapshots=str(args.snapshots),
                command="python scripts/samples_at_steps.py --snapshots DIR --out FILE")
    steps = data.setdefault("steps", {})
    tok = None
    for step, folder in snapshot_steps(args.snapshots).items():
        if str(step) in steps and not args.force:
            continue
        t0 = time.process_time()
        model, tok, meta = load_checkpoint(folder)
        if int(meta["step"]) != step:
            raise SystemExit(f"error: {folder} holds step {meta['step']}, not {step}")
        ids = heldout_ids(tok, args.val_tokens)
        model.train(False)
        ev = evaluate(model, ids, n_chars=len(tok.decode(ids[1:].tolist())))
        steps[str(step)] = {"val_bpc": ev["bpc"], "attention": model.cfg.attention,
                            "spiking": model.cfg.spiking,
                            "samples": continuations(model, tok, args.new_tokens),
                            "cpu_s": round(time.process_time() - t0, 1)}
        data["steps"] = dict(sorted(steps.items(), key=lambda kv: int(kv[0])))
        write_json(out_path, data)
        print(f"step {step}: val BPC {ev['bpc']:.3f} ({steps[str(step)]['cpu_s']} CPU s)", flush=True)
    if "trigram" not in data:
        from spike_lib.train.baselines import NGramLM, evaluate_ngram, training_ids
        from spike_lib.train.runs import resolve_tokenizer

        t0 = time.process_time()
        tok = tok or resolve_tokenizer("bpe")
        stream = training_ids(tok)
        lm = NGramLM(3, tok.vocab_size, "kn").fit(stream)
        ids = heldout_ids(tok, args.val_tokens)
        bpc = evaluate_ngram(lm, ids, len(tok.decode(ids[1:].tolist())))["bpc"]
        samples = {p: {"sampled": sample_ngram(lm, tok, p, args.new_tokens,
                                               np.random.default_rng(SEED), TEMPERATURE, TOP_K),
                       "greedy": sample_ngram(lm, tok, p, args.new_tokens,
                                              np.random.default_rng(SEED), 0.0)}
                   for p in PROMPTS}
        data["trigram"] = {"val_bpc": bpc, "fit_tokens": int(lm.n_train), "smoothing": "kn",
                           "samples": samples, "cpu_s": round(time.process_time() - t0, 1)}
        write_json(out_path, data)
        print(f"trigram: val BPC {bpc:.3f} ({data['trigram']['cpu_s']} CPU s)")
    return data


if __name__ == "__main__":
    main()
