"""One run of issue 13's LM sweep: train a short MLX run with an attention, then score it.

    OPENBLAS_NUM_THREADS=1 python scripts/context_sweep.py --attention spike_matrix_shift \
        --seed 0 --steps 300 --out /work/runs/context/lm/spike_matrix_shift-s0
Writes <out>/result.json: BPC on the mixed validation slice (every source, spike_lib.train.
heldout.mixed_slice) with the full context and with at most 8 previous tokens (the context
gain is their difference), process CPU seconds of training, firing rates and the load average.
data/checkpoints/CONTEXT.md describes the protocol; collect_context_sweep merges the results.
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

# the LM probe: the book preset made smaller, so a sweep fits on a shared 2-core CPU
PROBE = {"n_layer": 2, "n_embd": 128, "n_head": 2, "d_ff": 512, "block_size": 64}


def window_bpc(model, ids, n_chars, block_size, context_tokens=None, batch=256) -> float:
    """BPC of ids as `eval` scores it (windows of block_size) with at most context_tokens."""
    import mlx.core as mx

    ids = np.asarray(ids, np.int64)
    i = np.arange(1, len(ids))
    avail = i - ((i - 1) // block_size) * block_size
    if context_tokens is not None:
        avail = np.minimum(avail, context_tokens)
    total = 0.0
    for a in np.unique(avail):  # one batch shape per context length
        sel = i[avail == a]
        ctx = np.stack([ids[t - a : t] for t in sel])  # (M, a)
        for s in range(0, len(sel), batch):
            logits = model(mx.array(ctx[s : s + batch]))[:, -1, :]  # (m, V)
            logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
            tgt = mx.array(ids[sel[s : s + batch]])
            total -= float(mx.take_along_axis(logp, tgt[:, None], axis=-1).sum())
    return total / (math.log(2) * n_chars)


def energy_per_token(ckpt, n_windows=16) -> dict:
    """45 nm energy per token (pJ) of the NumPy port of a checkpoint on the mixed slice.

    The NumPy model's energy_report (spike_lib.core.energy): accumulates on spikes at the
    measured rates, MACs on real values; the twin pays MACs everywhere (T = 1).
    """
    from spike_lib.train.evaluation import load_for_use
    from spike_lib.train.heldout import mixed_slice

    model, tok, _ = load_for_use(ckpt)
    model.train(False)
    n_ctx = model.cfg.block_size
    ids = mixed_slice(tok, n_windows * n_ctx)
    rows = np.arange(n_windows)[:, None] * n_ctx + np.arange(n_ctx)
    model(ids[rows])
    rep = model.energy_report(n_windows, n_ctx)
    n = n_windows * n_ctx
    return {"energy_pj_per_token": rep.snn_pj / n, "ann_pj_per_token": rep.ann_pj / n,
            "energy_ratio": rep.ratio}


def loss_slope(log, last=100) -> tuple:
    """Slope of the training loss per step over the last `last` steps (least squares) and its SE.

    Every step draws a fresh batch, so the training loss estimates the held-out loss; one
    batch's loss is noisy (how hard its text is), hence a line over the last 100 steps.
    """
    loss = np.array([json.loads(line)["loss"] for line in Path(log).read_text().splitlines()
                     if line.startswith("{")])[-last:]
    step = np.arange(len(loss), dtype=float)
    slope, icpt = np.polyfit(step, loss, 1)
    resid = loss - (icpt + slope * step)
    se = math.sqrt(resid.var(ddof=2) / ((step - step.mean()) ** 2).sum())
    return float(slope), se


def bits_per_nat_token(ckpt, val_tokens=4096) -> float:
    """Factor from nats per token to bits per character on the mixed slice: tokens / (chars ln 2)."""
    from spike_lib.train.evaluation import load_for_use
    from spike_lib.train.heldout import mixed_slice

    _, tok, _ = load_for_use(ckpt)
    ids = mixed_slice(tok, val_tokens)
    return (len(ids) - 1) / (len(tok.decode(ids[1:].tolist())) * math.log(2))


def equal_cpu(lm, runs, factor) -> float:
    """Add r["bpc_equal_cpu"] (and its error) to every LM run: val BPC at the cheapest run's cost.

    The budget B is the smallest training cost (CPU s/step x steps) of all runs, so every run
    passed it; run i reached step s_i = B / (its CPU s/step). Its BPC there is its final val
    BPC plus (steps - s_i) times the slope of its training loss over the last 100 steps
    (loss_slope; nats per token x factor = bits per character); the error is the slope's
    standard error times the same. The lr schedule of every run still ends at its last step,
    so a slower attention is shown mid-schedule: a pessimistic estimate.
    """
    budget = math.floor(min(r["cpu_s_per_step"] * r["steps"] for r in lm))
    for r, run in zip(lm, runs):
        slope, se = loss_slope(run / "log.jsonl")
        step = min(r["steps"], int(budget / r["cpu_s_per_step"]))
        r["equal_cpu"] = {"cpu_s": budget, "step": step, "loss_slope_per_step": slope,
                          "loss_slope_se": se}
        r["bpc_equal_cpu"] = r["val_bpc_mixed"] - slope * (r["steps"] - step) * factor
        r["bpc_equal_cpu_se"] = se * (r["steps"] - step) * factor
    return budget


NOISE_SHOWN = ("val_bpc_mixed", "context_gain", "bpc_equal_cpu", "cpu_s_per_step")
LM_KEYS = ("val_bpc_mixed", "val_bpc_ctx8", "context_gain", "bpc_equal_cpu", "cpu_s_per_step",
           "firing_rate_mean", "energy_pj_per_token", "train_loss")


def summarise(lm_table) -> tuple:
    """Per attention: mean and range (max - min) over seeds of every LM number; the noise level.

    The noise level is the pooled run-to-run standard deviation of a metric over the
    attentions with two or more seeds: sqrt(mean of their sample variances).
    """
    summary, variances = {}, {}
    for name, runs in lm_table.items():
        row = {"seeds": [r["seed"] for r in runs]}
        for k in LM_KEYS:
            v = [r[k] for r in runs if r.get(k) is not None]
            if v:
                row[k] = {"mean": float(np.mean(v)), "range": float(np.ptp(v)), "values": v}
                if len(v) > 1:
                    variances.setdefault(k, []).append(float(np.var(v, ddof=1)))
        summary[name] = row
    noise = {k: {"pooled_sd": math.sqrt(np.mean(v)), "attentions": len(v)}
             for k, v in variances.items()}
    return summary, noise


def collect(runs, out):
    """Merge runs/recall_s*.jsonl and runs/lm/*/result.json into one JSON file (atomic)."""
    from spike_lib.core.atomic import write_json

    runs = Path(runs)
    recall = [json.loads(line) for f in sorted(runs.glob("recall_s*.jsonl"))
              for line in f.read_text().splitlines() if line.startswith("{")]
    recall.sort(key=lambda r: (r["attention"], not r["spiking"], r["pairs"], r["seed"]))
    lm, lm_dirs = [], []
    for f in sorted(runs.glob("lm/*/result.json")):
        r = json.loads(f.read_text())
        if "energy_pj_per_token" not in r:  # added after training, from the checkpoint
            r.update(energy_per_token(f.parent / "checkpoint"))
            write_json(f, r)
        lm.append(r)
        lm_dirs.append(f.parent)
    factor = bits_per_nat_token(lm_dirs[0] / "checkpoint")
    budget = equal_cpu(lm, lm_dirs, factor)
    table = {}
    for r in recall:  # one accuracy per seed, in seed order
        key = f"{r['attention']}{'' if r['spiking'] else ' (twin)'}"
        table.setdefault(key, {}).setdefault(str(r["pairs"]), []).append(r["accuracy"])
    lm_table = {}
    for r in sorted(lm, key=lambda r: r["seed"]):
        key = f"{r['attention']}{'' if r['spiking'] else ' (twin)'}"
        lm_table.setdefault(key, []).append(
            {k: r.get(k) for k in ("seed", *LM_KEYS, "bpc_equal_cpu_se")})
    summary, noise = summarise(lm_table)
    write_json(out, indent=None, obj={"recall": recall, "lm": lm, "recall_table": table, "lm_table": lm_table,
                     "lm_summary": summary, "noise": noise,
                     "equal_cpu": {"cpu_s": budget, "bits_per_nat_token": factor,
                                   "method": equal_cpu.__doc__.split("\n\n")[1].strip()},
                     "protocol": "data/checkpoints/CONTEXT.md"})
    return {"recall": table, "lm": lm_table,
            "markdown": markdown(table, lm_table, summary, noise, budget)}


def markdown(recall, lm, summary, noise, budget) -> str:
    """The tables of CONTEXT.md: recall accuracy per seed, the LM runs, their means and noise."""
    rows = ["| attention | 2 pairs | 4 pairs | 8 pairs |", "|---|---|---|---|"]
    for name, by_k in sorted(recall.items()):
        cells = [" / ".join(f"{a:.3f}" for a in by_k.get(k, [])) or "-" for k in ("2", "4", "8")]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    head = ("| attention | seed | val BPC (full) | val BPC (8 tokens) | context gain | "
            f"BPC at {budget} CPU s | CPU s/step | firing rate | energy (nJ/token) |")
    rows += ["", head, "|---|---|---|---|---|---|---|---|---|"]
    for name, runs in sorted(lm.items()):
        for r in runs:
            fr = "-" if r["firing_rate_mean"] is None else f"{r['firing_rate_mean']:.3f}"
            rows.append(f"| {name} | {r['seed']} | {r['val_bpc_mixed']:.3f} | "
                        f"{r['val_bpc_ctx8']:.3f} | {r['context_gain']:.4f} | "
                        f"{r['bpc_equal_cpu']:.3f} +- {r['bpc_equal_cpu_se']:.3f} | "
                        f"{r['cpu_s_per_step']:.3f} | {fr} | "
                        f"{r['energy_pj_per_token'] / 1000:.1f} |")

    def cell(row, k, fmt, scale=1.0):
        if k not in row:
            return "-"
        m, rg = row[k]["mean"] * scale, row[k]["range"] * scale
        return f"{m:{fmt}}" + (f" ({rg:{fmt}})" if len(row[k]["values"]) > 1 else "")

    head = ("| attention | seeds | val BPC (full) | context gain | BPC at equal CPU | "
            "CPU s/step | firing rate | energy (nJ/token) |")
    rows += ["", head, "|---|---|---|---|---|---|---|---|"]
    for name, row in sorted(summary.items()):
        rows.append(f"| {name} | {len(row['seeds'])} | {cell(row, 'val_bpc_mixed', '.3f')} | "
                    f"{cell(row, 'context_gain', '.4f')} | {cell(row, 'bpc_equal_cpu', '.3f')} | "
                    f"{cell(row, 'cpu_s_per_step', '.3f')} | "
                    f"{cell(row, 'firing_rate_mean', '.3f')} | "
                    f"{cell(row, 'energy_pj_per_token', '.1f', 1e-3)} |")
    rows.append("")
    rows.append("Noise (pooled run-to-run SD over attentions with 2 seeds): " + ", ".join(
        f"{k} {noise[k]['pooled_sd']:.4f} (n={noise[k]['attentions']})" for k in NOISE_SHOWN
        if k in noise))
    return "\n".join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collect", metavar="RUNS", help="merge the results under RUNS into --out "
                   "(a JSON file) instead of training")
    p.add_argument("--attention")
    p.add_argument("--no-spiking", dest="spiking", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--val-tokens", type=int, default=4096)
    p.add_argument("--context-tokens", type=int, default=8)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.collect:
        print(collect(args.collect, args.out)["markdown"])
        return

    from spike_lib.core.atomic import write_json
    from spike_lib.core.overrides import parse_overrides
    from spike_lib.mlx_impl.model import load_checkpoint
    from spike_lib.train.heldout import mixed_slice
    from spike_lib.train.runs import train_run

    sets = {**PROBE, **(parse_overrides(args.set) or {})}
    out = Path(args.out)
    load0 = os.getloadavg()
    cpu0, wall0 = time.process_time(), time.time()
    summary = train_run(out, config="book", backend="mlx", attention=args.attention,
                        spiking=args.spiking, seed=args.seed, steps=args.steps,
                        batch_size=args.batch_size, lr=args.lr, eval_every=args.steps,
                        val_tokens=512, set=sets)
    cpu_s, wall_s = time.process_time() - cpu0, time.time() - wall0
    model, tok, _ = load_checkpoint(out / "checkpoint")
    model.train(False)
    ids = mixed_slice(tok, args.val_tokens)
    n_chars = len(tok.decode(ids[1:].tolist()))
    bs = model.cfg.block_size
    full = window_bpc(model, ids, n_chars, bs)
    short = window_bpc(model, ids, n_chars, bs, args.context_tokens)
    import mlx.core as mx

    model(mx.array(ids[None, :bs]))
    rates = model.firing_rates()
    result = {"attention": args.attention, "spiking": args.spiking, "seed": args.seed,
              "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "set": sets,
              "val_bpc_mixed": full, f"val_bpc_ctx{args.context_tokens}": short,
              "context_gain": short - full, "train_loss": summary["loss"],
              "train_cpu_s": round(cpu_s, 1), "train_wall_s": round(wall_s, 1),
              "cpu_s_per_step": round(cpu_s / args.steps, 3), "params": model.num_params(),
              "firing_rate_mean": float(np.mean(list(rates.values()))) if rates else None,
              "firing_rates": rates, "loadavg_start": load0, "loadavg_end": os.getloadavg(),
              "val_tokens": args.val_tokens}
    write_json(out / "result.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "firing_rates"}))


if __name__ == "__main__":
    main()
