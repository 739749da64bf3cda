"""The shipped book models (data/checkpoints/book, book-twin): loading, their training logs, the gap.

A shipped model folder is a checkpoint (weights.npz, config.json, meta.json, tokenizer.json)
plus the run.json and log.jsonl of the run that trained it. Taught in:
notebooks/08_training_the_book_model.ipynb
"""

import math
from pathlib import Path

import numpy as np

BOOK, TWIN = "book", "book-twin"
SHIPPED = ("weights.npz", "config.json", "meta.json", "tokenizer.json", "run.json", "log.jsonl")
# SpikeGPT (Zhu et al. 2023, table 2): enwik8 test BPC of the 46 M spiking model and of a
# transformer of the same size
SPIKEGPT = {"params": 46_000_000, "bpc": 1.283, "twin_bpc": 1.137, "data": "enwik8"}


def shipped_path(name=BOOK, root=None) -> Path:
    """The folder of a shipped model: a name under data/checkpoints/ (book, book-twin) or a path.

    A str without a slash is a name; a Path, or a str with a slash, is a folder.
    """
    if root is None:
        from spike_lib.data.corpus import data_dir

        root = data_dir() / "checkpoints"
    is_name = isinstance(name, str) and "/" not in name and "\\" not in name
    path = Path(root) / name if is_name else Path(name)
    if not path.is_dir():
        raise ValueError(f"no shipped model {name!r} at {path}: the names are {BOOK!r} and "
                         f"{TWIN!r} (restore data/checkpoints/ from the repository), or give "
                         "the path of a folder made by scripts/ship_model.py")
    missing = [f for f in SHIPPED if not (path / f).is_file()]
    if missing:
        raise ValueError(f"{path} is not a complete shipped model: {missing} missing; re-ship "
                         "it with scripts/ship_model.py RUN FOLDER")
    return path


def load_book(name=BOOK, backend="numpy", root=None):
    """(model, tokenizer, meta) of a shipped model, as a NumPy or an MLX SpikeLLM."""
    from spike_lib.core.config import check_choice

    check_choice("backend", backend, ["numpy", "mlx"])
    path = shipped_path(name, root)
    if backend == "mlx":
        from spike_lib.mlx_impl.model import load_checkpoint
    else:
        from spike_lib.train.checkpoint import load_checkpoint
    return load_checkpoint(path)


def train_command(options, out) -> str:
    """The `python -m spike_lib train` command line that reproduces a run from its options."""
    o = options
    parts = ["python -m spike_lib train", f"--config {o['config']}", f"--backend {o['backend']}",
             f"--tokenizer {o['tokenizer']}", f"--batch-size {o['batch_size']}",
             f"--lr {o['lr']:g}", f"--warmup {o['warmup']}", f"--steps {o['steps']}",
             f"--eval-every {o['eval_every']}", f"--val-tokens {o['val_tokens']}",
             f"--seed {o['seed']}"]
    if not o["spiking"]:
        parts.append("--no-spiking")
    if o.get("attention", "sdsa") != "sdsa":
        parts.append(f"--attention {o['attention']}")
    parts += [f"--set {k}={v}" for k, v in sorted(o.get("set", {}).items())]
    if o.get("time_budget"):
        parts.append(f"--time-budget {o['time_budget']:g}")
    return " ".join(parts + [f"--out {out}"])


def run_summary(folder) -> dict:
    """What a run folder (or a shipped model) says about its training, from run.json and the log.

    step: the updates in its checkpoint; tokens_seen = step x batch_size x block_size;
    train_seconds: the run's clock when that checkpoint was saved; tokens_per_s: the median of
    the logged step speeds; last_val_step / last_val_bpc: its last evaluation (None before one).
    """
    from spike_lib.train.checkpoint import load_meta
    from spike_lib.train.runs import CKPT, read_log, read_run_config

    folder = Path(folder)
    run = read_run_config(folder)
    ckpt = folder / CKPT if (folder / CKPT).is_dir() else folder
    meta = load_meta(ckpt)
    log = [r for r in read_log(folder) if r.get("step", 0) <= meta["step"]]
    evals = [r for r in log if "val_bpc" in r]
    per_step = run["options"]["batch_size"] * run["model"]["block_size"]
    planned = run.get("plan", {}).get("steps", run["options"]["steps"])
    return {"step": int(meta["step"]), "steps": int(planned),
            "tokens_per_step": per_step, "tokens_seen": int(meta["step"]) * per_step,
            "train_seconds": float(meta.get("train_seconds", math.nan)),
            "tokens_per_s": float(np.median([r["tokens_per_s"] for r in log])) if log else None,
            "n_params": int(meta["n_params"]),
            "last_val_step": evals[-1]["step"] if evals else None,
            "last_val_bpc": evals[-1]["val_bpc"] if evals else None,
            "command": train_command(run["options"], f"runs/{folder.name}")}


def spiking_gap(bpc_spiking, bpc_twin) -> dict:
    """The price of spiking: bpc = BPC_spiking - BPC_twin, percent = 100 bpc / BPC_twin."""
    for name, v in (("bpc_spiking", bpc_spiking), ("bpc_twin", bpc_twin)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name}={v!r} is invalid: give a positive, finite bits per character")
    diff = float(bpc_spiking) - float(bpc_twin)
    return {"bpc": diff, "percent": 100.0 * diff / float(bpc_twin)}


def loss_difference(records_a, records_b) -> dict:
    """Compare two runs' training losses at the steps both logged (e.g. resumed vs uninterrupted).

    Returns steps (how many were compared), max_abs_diff and same_steps (both logged the same
    steps, each once). A run that logged a step twice (an untruncated resume) is not same_steps.
    """
    a, b = ([r["step"] for r in recs if "loss" in r] for recs in (records_a, records_b))
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two runs logged no step in common: compare runs of the same "
                         "options, each with at least one step")
    la = {r["step"]: r["loss"] for r in records_a if "loss" in r}
    lb = {r["step"]: r["loss"] for r in records_b if "loss" in r}
    diff = max(abs(la[s] - lb[s]) for s in common)
    same = a == b and len(set(a)) == len(a)
    return {"steps": len(common), "max_abs_diff": float(diff), "same_steps": same}


def source_texts(split="test") -> dict:
    """{source: its documents of the split joined by blank lines}: one text per kind of writing.

    The split files are sorted by source, so the first N tokens of a split (what `eval
    --split` reads) are all from one source; evaluating each source gives every kind its say.
    """
    from spike_lib.data.corpus import load_corpus

    texts = {}
    for doc in load_corpus(split):
        texts.setdefault(doc["source"], []).append(doc["text"])
    return {source: "\n\n".join(parts) for source, parts in sorted(texts.items())}


def evaluate_book(model, tok, text, max_tokens=20_000, batch_size=16) -> dict:
    """The `eval` command's numbers plus what they come from: characters, rates, the energy table.

    chars: the characters of the predicted tokens; total_nats = loss x tokens; rates: {neuron
    layer: spikes per neuron per timestep} on the first batch_size windows of text ({} for the
    twin); energy: the EnergyReport of that forward pass.
    """
    from spike_lib.train.evaluation import DERIVED_RATES, evaluate_text

    out = evaluate_text(model, tok, text, max_tokens, batch_size)
    ids = tok.encode(text)[: out["tokens"] + 1]
    n_ctx = min(model.cfg.block_size, out["tokens"])  # the windows evaluate_text measured on
    n_rows = len(np.arange(0, out["tokens"] + 1 - n_ctx, n_ctx)[:batch_size])
    rates = {k: v for k, v in model.firing_rates().items() if not k.endswith(DERIVED_RATES)}
    return {**out, "chars": len(tok.decode(ids[1:])), "total_nats": out["loss"] * out["tokens"],
            "rates": rates, "energy": model.energy_report(n_rows, n_ctx)}


def pool_results(results) -> dict:
    """Several evaluate_book results as one: BPC = sum of nats / (ln 2 x sum of characters).

    loss and perplexity are per token over all tokens; energy sums each layer's MACs and pJ over
    the measured forward passes (its rate: the MAC-weighted mean); firing_rate is the mean of the
    layers' pooled rates (None for the twin).
    """
    from spike_lib.core.energy import E_AC_PJ, EnergyReport

    results = list(results)
    if not results:
        raise ValueError("nothing to pool: pass at least one evaluate_book result")
    nats = sum(r["total_nats"] for r in results)
    tokens, chars = sum(r["tokens"] for r in results), sum(r["chars"] for r in results)
    first = results[0]["energy"]
    energy = EnergyReport(num_steps=first.num_steps, spike_levels=first.spike_levels)
    rows = {}
    for r in results:
        for row in r["energy"].rows:
            acc = rows.setdefault(row["layer"], {**row, "flops": 0, "ann_pj": 0.0, "snn_pj": 0.0})
            for key in ("flops", "ann_pj", "snn_pj"):
                acc[key] += row[key]
    for row in rows.values():
        if row["firing_rate"] is not None:
            # the pooled mean spike value: snn_pj counts D^spikes events per unit of value
            events = energy.spike_levels ** row.get("spikes", 1)
            row["firing_rate"] = row["snn_pj"] / (row["flops"] * energy.num_steps * E_AC_PJ
                                                  * events)
    energy.rows = list(rows.values())
    names = sorted({k for r in results for k in r["rates"]})
    rates = {k: float(np.mean([r["rates"][k] for r in results if k in r["rates"]]))
             for k in names}
    loss = nats / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "bpc": nats / (math.log(2) * chars), "tokens": tokens, "chars": chars,
            "total_nats": nats, "rates": rates,
            "firing_rate": float(np.mean(list(rates.values()))) if rates else None,
            "energy": energy, "energy_ratio": energy.ratio}
