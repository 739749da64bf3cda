"""Chapter 8's test protocol for several checkpoints, with the context gain and paired gaps.

Usage (from the repository root):

    python scripts/eval_book_models.py --out data/benchmarks/book_models_step2000.json \
        --model book=/work/runs/context/snap/book-v3/step2000 \
        --model book-twin=/work/runs/context/snap/book-twin/step2000 \
        --model book-softmax=/work/runs/context/snap/book-softmax/step2000 \
        --gap spikes=book:book-twin --gap attention=book-twin:book-softmax \
        --equal book=book --equal book-twin=book-twin --equal book-softmax=book-softmax

For each model (NumPy port, a checkpoint folder): every source of the test split on its first
--tokens tokens (`heldout.source_slices`), scored with eval's windows of block_size tokens with
the full context and with at most --context-tokens previous tokens (`probes.evaluate_context`),
pooled by Eq. 8.4 (sum of nats over ln 2 x sum of characters); "literary" pools the Austen,
Milton and Shakespeare sources (the corpus's novels, verse and plays), "austen" alone is its
prose. Also the mixed validation slice of the training logs (--val-tokens). Gaps: BPC(a) -
BPC(b) on the pooled test text with the standard error of a paired bootstrap over the windows
(`probes.window_nats`, the noise of the evaluation text, not of training); --ratio: the context
gain of one model over another's, bootstrapped over the same windows. The count bigram and
trigram (interpolated Kneser-Ney, fitted on the whole training split) get the same rows.
--shipped / --equal record which stored model is each shipped folder's, and which are compared
at equal steps. Models already in --out are kept (--force recomputes); the file is written after
each model.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

LITERARY = ("austen", "milton", "shakespeare")
N_BOOT, BOOT_SEED = 2000, 0


def pool(per, sources, key):
    nats = sum(per[s][key] for s in sources)
    return nats / (math.log(2) * sum(per[s]["chars"] for s in sources))


def score_model(model, tok, slices, val_ids, context_tokens):
    from spike_lib.core.scoring import evaluate
    from spike_lib.train.probes import evaluate_context, window_nats

    model.train(False)
    per, windows = {}, {}
    for src, ids in slices.items():
        nats, starts, ends = window_nats(model, ids)
        chars = np.array([len(tok.decode(ids[s + 1: e + 1].tolist())) for s, e in zip(starts, ends)])
        short = evaluate_context(model, ids, context_tokens, per_window=True)
        per[src] = {"chars": int(chars.sum()), "nats_full": float(nats.sum()),
                    "nats_short": short["total_nats"], "tokens": int(len(ids) - 1)}
        windows[src] = {"nats": nats.tolist(), "chars": chars.tolist(),
                        "nats_short": short["window_nats"].tolist()}
    val = evaluate(model, val_ids, n_chars=len(tok.decode(val_ids[1:].tolist())))
    return per, windows, val["bpc"]


def score_ngram(lm, tok, slices, val_ids, context_tokens):
    from spike_lib.train.baselines import evaluate_ngram

    per = {}
    for src, ids in slices.items():
        chars = len(tok.decode(ids[1:].tolist()))
        per[src] = {"chars": chars, "tokens": int(len(ids) - 1),
                    "nats_full": evaluate_ngram(lm, ids)["total_nats"],
                    "nats_short": evaluate_ngram(lm, ids, context_tokens=context_tokens)["total_nats"]}
    return per, evaluate_ngram(lm, val_ids, len(tok.decode(val_ids[1:].tolist())))["bpc"]


def summarise(per, val_bpc):
    srcs = sorted(per)
    full, short = pool(per, srcs, "nats_full"), pool(per, srcs, "nats_short")
    lit = [s for s in LITERARY if s in per]
    return {"test_bpc": full, "test_bpc_ctx": short, "context_gain": short - full,
            "literary_bpc": pool(per, lit, "nats_full") if lit else None,
            "austen_bpc": pool(per, ["austen"], "nats_full") if "austen" in per else None,
            "val_bpc": val_bpc,
            "per_source": {s: {"bpc": pool(per, [s], "nats_full"),
                               "bpc_ctx": pool(per, [s], "nats_short"), "chars": per[s]["chars"]}
                           for s in srcs}}


def paired(wa, wb):
    """gap = BPC(a) - BPC(b) over the pooled windows, and the bootstrap standard error."""
    na = np.concatenate([wa[s]["nats"] for s in sorted(wa)])
    nb = np.concatenate([wb[s]["nats"] for s in sorted(wa)])
    chars = np.concatenate([wa[s]["chars"] for s in sorted(wa)])
    diff = na - nb
    pick = np.random.default_rng(BOOT_SEED).integers(0, diff.size, (N_BOOT, diff.size))
    boot = diff[pick].sum(axis=1) / (math.log(2) * chars[pick].sum(axis=1))
    gap = float(diff.sum() / (math.log(2) * chars.sum()))
    ref = float(nb.sum() / (math.log(2) * chars.sum()))
    return {"gap": gap, "se": float(boot.std(ddof=1)), "percent": 100 * gap / ref,
            "windows": int(diff.size)}


def gain_ratio(wa, wb):
    """Context gain of a over that of b (both: nats with the short context - nats with the full
    one, on the same windows; the characters cancel) and its paired-bootstrap standard error."""
    if any("nats_short" not in next(iter(w.values())) for w in (wa, wb)):
        raise SystemExit("error: a model of --ratio has no per-window short-context nats (scored "
                         "before they were stored); score it again with --force")
    srcs = sorted(wa)
    ga, gb = ([np.concatenate([w[s][k] for s in srcs]) for k in ("nats_short", "nats")]
              for w in (wa, wb))
    da, db = ga[0] - ga[1], gb[0] - gb[1]  # the gain of each window, in nats
    pick = np.random.default_rng(BOOT_SEED).integers(0, da.size, (N_BOOT, da.size))
    boot = da[pick].sum(axis=1) / db[pick].sum(axis=1)
    return {"ratio": float(da.sum() / db.sum()), "se": float(boot.std(ddof=1)),
            "windows": int(da.size)}


def energy_row(model, ids, batch_size=16) -> dict:
    """As eval (train.evaluation.evaluate_text): one batch of block-size windows of ids read
    once; the mean firing rate of the neuron layers and the energy ratio of Eq. 8.5 (SNN / ANN)."""
    from spike_lib.train.evaluation import DERIVED_RATES

    n_ctx = model.cfg.block_size
    rows = np.arange(0, len(ids) - n_ctx, n_ctx)[:batch_size, None] + np.arange(n_ctx)
    model.train(False)
    model(ids[rows])
    rates = [v for k, v in model.firing_rates().items() if not k.endswith(DERIVED_RATES)]
    return {"firing_rate": float(np.mean(rates)) if rates else None,
            "energy_ratio": float(model.energy_report(rows.shape[0], n_ctx).ratio),
            "energy_protocol": f"the first {batch_size} windows of the pooled test slices"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", default=[], metavar="NAME=FOLDER",
                    help="a checkpoint folder to score, under a name (repeat)")
    ap.add_argument("--gap", action="append", default=[], metavar="LABEL=A:B",
                    help="report BPC(A) - BPC(B) with its noise level (repeat)")
    ap.add_argument("--ratio", action="append", default=[], metavar="LABEL=A:B",
                    help="report the context gain of A over that of B with its noise (repeat)")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--tokens", type=int, default=2560, help="test tokens per source (2560)")
    ap.add_argument("--val-tokens", type=int, default=4096, help="mixed validation tokens (4096)")
    ap.add_argument("--context-tokens", type=int, default=8, help="N of the context gain (8)")
    ap.add_argument("--shipped", action="append", default=[], metavar="FOLDER=NAME",
                    help="record that the shipped folder (book, ...) is the model NAME (repeat)")
    ap.add_argument("--equal", action="append", default=[], metavar="FOLDER=NAME",
                    help="record NAME as the shipped folder's model at the equal-step comparison")
    ap.add_argument("--equal-full", action="append", default=[], metavar="FOLDER=NAME",
                    help="the same at the full budget (the models that reached the last step)")
    ap.add_argument("--energy", action="append", default=[], metavar="NAME=FOLDER",
                    help="add the firing rate and the energy ratio (SNN / ANN, eval's) of a "
                    "stored model, from one batch of test windows (repeat)")
    ap.add_argument("--force", action="store_true", help="recompute models already stored")
    args = ap.parse_args(argv)

    from spike_lib.core.atomic import write_json
    from spike_lib.train.baselines import NGramLM, training_ids
    from spike_lib.train.checkpoint import load_checkpoint, load_meta
    from spike_lib.train.heldout import heldout_ids, source_slices
    from spike_lib.train.runs import resolve_tokenizer

    out = Path(args.out)
    protocol = {"test": f"source_slices(tok, {args.tokens}, split='test'), pooled (Eq. 8.4)",
                "val": f"heldout_ids(tok, {args.val_tokens}) (the logs' mixed slice)",
                "context_tokens": args.context_tokens, "literary": list(LITERARY),
                "gap_noise": f"paired bootstrap over eval windows, {N_BOOT} draws, seed {BOOT_SEED}"}
    data = json.loads(out.read_text()) if out.is_file() else {}
    if data.get("protocol") != protocol:
        data = {}
    command = "python scripts/eval_book_models.py " + " ".join(
        [f"--model {m}" for m in args.model] + [f"--gap {g}" for g in args.gap]
        + [f"--ratio {r}" for r in args.ratio]
        + [f"--{k.replace('_', '-')} {v}" for k in ("energy", "shipped", "equal", "equal_full")
           for v in getattr(args, k)] + [f"--out {out}"])
    earlier = data.get("commands", [data["command"]] if "command" in data else [])
    data.pop("command", None)
    data.update(protocol=protocol, commands=earlier + [command])  # every run that filled the file
    models, wins = data.setdefault("models", {}), data.setdefault("windows", {})
    tok = resolve_tokenizer("bpe")
    slices = source_slices(tok, args.tokens, split="test")
    val_ids = heldout_ids(tok, args.val_tokens)
    if "ngrams" not in data:
        t0 = time.process_time()
        stream = training_ids(tok)
        data["ngrams"] = {}
        for n, label in ((2, "KN bigram (whole train)"), (3, "KN trigram (whole train)")):
            per, vbpc = score_ngram(NGramLM(n, tok.vocab_size, "kn").fit(stream), tok, slices,
                                    val_ids, args.context_tokens)
            data["ngrams"][label] = summarise(per, vbpc)
        data["ngrams_cpu_s"] = round(time.process_time() - t0, 1)
        write_json(out, data, indent=None)
    for spec in args.model:
        name, folder = spec.split("=", 1)
        if name in models and not args.force:
            continue
        t0 = time.process_time()
        model, mtok, _ = load_checkpoint(folder)
        if mtok.vocab_size != tok.vocab_size:
            raise SystemExit(f"error: {folder} has another tokenizer than the shipped BPE")
        per, windows, vbpc = score_model(model, mtok, slices, val_ids, args.context_tokens)
        models[name] = {"folder": str(folder), "step": int(load_meta(folder)["step"]),
                        "attention": model.cfg.attention, "spiking": model.cfg.spiking,
                        "n_params": int(model.num_params()), **summarise(per, vbpc),
                        "cpu_s": round(time.process_time() - t0, 1)}
        wins[name] = windows
        write_json(out, data, indent=None)
        print(f"{name}: test {models[name]['test_bpc']:.3f}, ctx{args.context_tokens} "
              f"{models[name]['test_bpc_ctx']:.3f}, val {vbpc:.3f} ({models[name]['cpu_s']} CPU s)",
              flush=True)
    for spec in args.energy:
        name, folder = spec.split("=", 1)
        if name not in models:
            raise SystemExit(f"error: score {name} first (--model {name}=FOLDER)")
        model, mtok, _ = load_checkpoint(folder)
        ids = np.concatenate(list(slices.values()))
        models[name].update(energy_row(model, ids))
        print(f"{name}: firing rate {models[name]['firing_rate']:.3f}, energy ratio "
              f"{models[name]['energy_ratio']:.3f} (SNN / ANN)", flush=True)
    gaps = {}
    for spec in args.gap:
        label, pair = spec.split("=", 1)
        a, b = pair.split(":")
        if a in wins and b in wins:
            gaps[label] = {"a": a, "b": b, **paired(wins[a], wins[b])}
            print(f"gap {label} ({a} - {b}): {gaps[label]['gap']:+.4f} +- {gaps[label]['se']:.4f} BPC")
    data["gaps"] = {**data.get("gaps", {}), **gaps}
    ratios = {}
    for spec in args.ratio:
        label, pair = spec.split("=", 1)
        a, b = pair.split(":")
        unknown = [n for n in (a, b) if n not in wins]
        if unknown:
            raise SystemExit(f"error: --ratio {spec}: no stored model named {unknown}; score it "
                             f"first with --model NAME=FOLDER (stored: {sorted(wins)})")
        ratios[label] = {"a": a, "b": b, **gain_ratio(wins[a], wins[b])}
        print(f"gain ratio {label} ({a} / {b}): {ratios[label]['ratio']:.3f} +- "
              f"{ratios[label]['se']:.3f}")
    data["gain_ratios"] = {**data.get("gain_ratios", {}), **ratios}
    for key, specs in (("shipped", args.shipped), ("equal_steps", args.equal),
                       ("equal_steps_full", args.equal_full)):
        data[key] = {**data.get(key, {}), **dict(s.split("=", 1) for s in specs)}
    write_json(out, data, indent=None)
    return data


if __name__ == "__main__":
    main()
