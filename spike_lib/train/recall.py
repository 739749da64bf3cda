"""Multi-query associative recall (MQAR, Zoology: Arora et al. 2023): can an attention look up a value?

A sequence holds K key-value pairs, then every key again (a random order), each followed by
its value; the loss and the accuracy count only the predictions of the values after the
queried keys. `python -m spike_lib recall --attention NAME --pairs K --json` trains a
probe-size MLX SpikeLLM with that attention for a fixed budget of steps and prints its
accuracy beside three chance levels. Issue 13; taught in the recall section (chapter 5).
"""

import dataclasses
import math
import time

import numpy as np

from spike_lib.core.config import Config, check_range
from spike_lib.data.batches import IGNORE_INDEX

# the probe: 2 blocks of width 64 (one head), T=2 as the book model; 32 keys, 32 values
PROBE = {"n_layer": 2, "n_embd": 64, "n_head": 1, "d_ff": 128, "num_steps": 2}
DEFAULTS = {"n_keys": 32, "n_values": 32, "steps": 600, "batch_size": 32, "lr": 1e-2,
            "warmup": 50, "eval_sequences": 512, "seed": 0}


def recall_batch(rng, batch_size, pairs, n_keys=32, n_values=32):
    """(x, y) of MQAR, each (B, 4K): token ids and targets (IGNORE_INDEX except at the answers).

    Keys are tokens 0 .. n_keys-1 and values n_keys .. n_keys+n_values-1; within a sequence the
    K keys are distinct and so are the K values. x = k_1 v_1 ... k_K v_K q_1 a_1 ... q_K a_K,
    q a permutation of the keys and a_i the value of q_i; y[2K + 2i] = a_i (predicted on
    reading q_i), every other target is IGNORE_INDEX.
    """
    check_range("pairs", pairs, 1, kind=int)
    if pairs > min(n_keys, n_values):
        raise ValueError(f"pairs={pairs} is invalid: it must be <= n_keys={n_keys} and "
                         f"n_values={n_values} (keys and values are distinct in a sequence)")
    x = np.empty((batch_size, 4 * pairs), np.int64)
    y = np.full((batch_size, 4 * pairs), IGNORE_INDEX, np.int64)
    for b in range(batch_size):
        keys = rng.choice(n_keys, pairs, replace=False)
        values = n_keys + rng.choice(n_values, pairs, replace=False)
        order = rng.permutation(pairs)
        x[b, 0 : 2 * pairs : 2], x[b, 1 : 2 * pairs : 2] = keys, values
        x[b, 2 * pairs :: 2], x[b, 2 * pairs + 1 :: 2] = keys[order], values[order]
        y[b, 2 * pairs :: 2] = values[order]
    return x, y


def chance_levels(pairs, n_values=32) -> dict:
    """Exact accuracies of three guessers that never look a key up.

    random_value: any of the n_values values, 1 / n_values.
    context_value: one of the K values seen in the context, 1 / K.
    unused_value: one of the context's values not yet answered in the query section: the i-th
    query (i = 0 .. K-1) has K - i left, so the mean is (1/K) sum_i 1 / (K - i) = H_K / K.
    """
    check_range("pairs", pairs, 1, kind=int)
    harmonic = sum(1.0 / n for n in range(1, pairs + 1))
    return {"random_value": 1.0 / n_values, "context_value": 1.0 / pairs,
            "unused_value": harmonic / pairs}


def probe_config(attention, pairs, spiking=True, seed=0, n_keys=32, n_values=32, **overrides):
    """The probe-size Config of the recall task (PROBE, block_size 4K, vocab keys + values)."""
    return Config(**{**PROBE, **overrides}, vocab_size=n_keys + n_values, block_size=4 * pairs,
                  attention=attention, spiking=spiking, seed=seed)


def accuracy(model, x, y, batch_size=128) -> float:
    """Fraction of answer positions (y != IGNORE_INDEX) where the argmax logit is the value."""
    import mlx.core as mx

    hits = total = 0
    for i in range(0, len(x), batch_size):
        logits = model(mx.array(x[i : i + batch_size]))
        pred = np.array(mx.argmax(logits, axis=-1))
        keep = y[i : i + batch_size] != IGNORE_INDEX
        hits += int((pred == y[i : i + batch_size])[keep].sum())
        total += int(keep.sum())
    return hits / total


def run_recall(attention, pairs, spiking=True, seed=0, steps=None, batch_size=None, lr=None,
               warmup=None, n_keys=None, n_values=None, eval_sequences=None, cpu_budget=None,
               config=None, log_every=0) -> dict:
    """Train a probe model on fresh MQAR batches for `steps` updates; report its accuracy.

    The budget is `steps` updates of `batch_size` sequences (AdamW, warmup + cosine lr,
    clip 1.0); cpu_budget (process CPU seconds) stops earlier if it runs out. The accuracy is
    measured on eval_sequences held-out sequences drawn from seed + 1000. config: Config
    overrides of the probe (e.g. {"n_embd": 128}).
    """
    import mlx.core as mx

    from spike_lib.mlx_impl.model import SpikeLLM
    from spike_lib.mlx_impl.train import AdamW, make_step, train_step
    from spike_lib.numpy_impl.optim import cosine_lr

    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "warmup": warmup,
             "n_keys": n_keys, "n_values": n_values, "eval_sequences": eval_sequences,
             "seed": seed}
    o = {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    cfg = probe_config(attention, pairs, spiking, o["seed"], o["n_keys"], o["n_values"],
                       **(config or {}))
    mx.random.seed(o["seed"])
    rng = np.random.default_rng(o["seed"])
    model = SpikeLLM(cfg, np.random.default_rng(o["seed"]))
    optimizer = AdamW(o["lr"])
    model.train(True)
    step_fn = make_step(model, optimizer)
    cpu0, wall0 = time.process_time(), time.time()
    losses, done = [], 0
    for step in range(o["steps"]):
        x, y = recall_batch(rng, o["batch_size"], pairs, o["n_keys"], o["n_values"])
        lr_t = cosine_lr(step, o["lr"], o["warmup"], o["steps"], o["lr"] * 0.1)
        losses.append(train_step(step_fn, optimizer, mx.array(x), mx.array(y), lr_t)["loss"])
        done = step + 1
        if log_every and done % log_every == 0:
            print(f"step {done} loss {np.mean(losses[-log_every:]):.4f} "
                  f"cpu {time.process_time() - cpu0:.1f}s", flush=True)
        if cpu_budget is not None and time.process_time() - cpu0 >= cpu_budget:
            break
    cpu_s, wall_s = time.process_time() - cpu0, time.time() - wall0
    model.train(False)
    ex, ey = recall_batch(np.random.default_rng(o["seed"] + 1000), o["eval_sequences"], pairs,
                          o["n_keys"], o["n_values"])
    acc = accuracy(model, ex, ey)
    model(mx.array(ex[:64]))  # one eager pass for the firing rates
    rates = model.firing_rates()
    return {"accuracy": acc, "attention": attention, "pairs": pairs, "spiking": spiking,
            "seed": o["seed"], "chance": chance_levels(pairs, o["n_values"]),
            "budget": {"steps": o["steps"], "batch_size": o["batch_size"], "lr": o["lr"],
                       "warmup": o["warmup"], "cpu_budget_s": cpu_budget},
            "steps": done, "cpu_s": round(cpu_s, 2), "wall_s": round(wall_s, 2),
            "final_loss": float(np.mean(losses[-20:])), "params": model.num_params(),
            "firing_rate": float(np.mean(list(rates.values()))) if rates else None,
            "config": {k: v for k, v in dataclasses.asdict(cfg).items()
                       if k in ("n_layer", "n_embd", "n_head", "d_ff", "num_steps",
                                "vocab_size", "block_size")}}


# -- `python -m spike_lib recall` ----------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--attention", default="softmax",
                        help="sdsa, softmax or a context attention (spike_lib.mlx_impl."
                        "context_attention.NAMES)")
    parser.add_argument("--pairs", type=int, default=2, help="key-value pairs K (2)")
    parser.add_argument("--spiking", action="store_true", default=True)
    parser.add_argument("--no-spiking", dest="spiking", action="store_false",
                        help="the non-spiking twin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help=f"updates ({DEFAULTS['steps']})")
    parser.add_argument("--batch-size", type=int, help=f"sequences per step "
                        f"({DEFAULTS['batch_size']})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate ({DEFAULTS['lr']})")
    parser.add_argument("--cpu-budget", type=float, metavar="SECONDS",
                        help="also stop when the process has used this much CPU time")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a field of the probe's Config, e.g. --set n_embd=128")


def run(args) -> dict:
    from spike_lib.core.overrides import parse_overrides

    result = run_recall(args.attention, args.pairs, args.spiking, args.seed, args.steps,
                        args.batch_size, args.lr, cpu_budget=args.cpu_budget,
                        config=parse_overrides(args.set))
    if not math.isfinite(result["accuracy"]):
        raise ValueError("the accuracy is not finite: the run diverged; lower --lr")
    return result
