"""Fine-tuning and scoring the span head, and the QA model folder (head + adapter or weights).

A QA model folder (data/checkpoints/book-qa) holds qa.json (which head, which base model and
its fingerprint, the strategy, the command that made it), the head's weights (head.npz) and
either a LoRA adapter (adapter.npz + adapter.json) or the fine-tuned weights (weights.npz +
config.json + tokenizer.json, a checkpoint); `qa-eval --checkpoint FOLDER` reads it alone.
Taught in: notebooks/09b_span_qa.ipynb
"""

import json
import time
from pathlib import Path

import numpy as np

from spike_lib.core.config import check_choice, check_range
from spike_lib.numpy_impl import span as np_span

QA_CONFIG, HEAD_WEIGHTS = "qa.json", "head.npz"
QA_FORMAT = 1
HEADS = ("span", "generate")


def is_mlx(model) -> bool:
    return type(model).__module__.startswith("spike_lib.mlx_impl")


def span_module(model):
    """The span port (spike_lib.numpy_impl.span or spike_lib.mlx_impl.span) of a model."""
    if is_mlx(model):
        from spike_lib.mlx_impl import span

        return span
    return np_span


def build_span_model(base, window=3, question=False):
    """A SpanQA around base (either backend), its head at zero (question: the head also reads
    the question, SpanHead(question=True))."""
    return span_module(base).SpanQA(base, window, question=question)


# ---------------------------------------------------------------- examples and batches
def encode_span_examples(tok, records, block_size, windows=False) -> tuple:
    """(training examples, counts): records whose answer the cut removed are skipped; inexact
    counts the answers that start or end inside a token (their best span is a little longer).
    windows=True: a long context's answer is taken from the window that holds it
    (np_span.encode_span_example), so only answers no window holds are skipped."""
    out, counts = [], {"records": len(records), "kept": 0, "answer_cut": 0, "inexact": 0}
    for rec in records:
        ex = np_span.encode_span_example(tok, rec, block_size, windows)
        if ex["start"] is None:
            counts["answer_cut"] += 1
            continue
        counts["inexact"] += not ex["exact"]
        out.append(ex)
    counts["kept"] = len(out)
    return out, counts


def span_arrays(examples, block_size, pad_id) -> tuple:
    """(x, valid, mask, start, end) padded to block_size (a fixed shape: one compiled trace)."""
    padded = [{**ex, "ids": list(ex["ids"]) + [pad_id] * (block_size - len(ex["ids"]))}
              for ex in examples]
    x, mask, start, end = np_span.span_batch(padded, pad_id)
    lengths = np.array([len(ex["ids"]) for ex in examples])
    valid = np.arange(block_size)[None] < lengths[:, None]
    return x, valid, mask & valid, start, end


# ---------------------------------------------------------------- scoring
def evaluate_span(model, tok, records, max_len=np_span.MAX_ANSWER_TOKENS, batch_size=32) -> dict:
    """Exact match and F1 (in %) of the best spans, the span loss on the gold spans
    (answer_loss, nats, in the window that holds the answer; records whose answer no window
    holds are left out), answer_cut (how many those are), windows (windows read in all: a
    long context is read in overlapping windows, np_span.span_windows), the firing rate and
    the predictions."""
    from spike_lib.train.finetune import answer_texts
    from spike_lib.train.qa_eval import exact_match, f1_score

    preds = np_span.answer_spans(model, tok, [r["question"] for r in records],
                                 [r["context"] for r in records], max_len, batch_size)
    answers = [p["answer"] for p in preds]
    em = [exact_match(p, answer_texts(r)) for p, r in zip(answers, records)]
    f1 = [f1_score(p, answer_texts(r)) for p, r in zip(answers, records)]
    examples, counts = encode_span_examples(tok, records, model.cfg.block_size, windows=True)
    total, n = 0.0, 0
    for b in range(0, len(examples), batch_size):
        chunk = examples[b: b + batch_size]
        x, valid, mask, start, end = span_arrays(chunk, model.cfg.block_size, tok.eot_id)
        logits = np.asarray(model(x, valid, mask), dtype=np.float64)
        total += np_span.span_loss(logits, mask, start, end)[0] * len(chunk)
        n += len(chunk)
    return {"exact_match": 100.0 * float(np.mean(em)), "f1": 100.0 * float(np.mean(f1)),
            "n": len(records), "answer_loss": total / n if n else None,
            "answer_cut": counts["answer_cut"], "windows": sum(p["windows"] for p in preds),
            "firing_rate": _firing_rate(model),
            "predictions": answers}


def _firing_rate(model):
    rates = [v for k, v in model.base.firing_rates().items() if not k.endswith((".kv", ".out_in"))] \
        if is_mlx(model) else [v for k, v in model.modules["base"].firing_rates().items()
                               if not k.endswith((".kv", ".out_in"))]
    return float(np.mean(rates)) if rates else None


# ---------------------------------------------------------------- training
def span_trainable(model, base_names) -> list:
    """Trainable names of a SpanQA: base_names (from setup_strategy on its base) + the head."""
    head = model.head if is_mlx(model) else model.modules["head"]
    names = [f"base.{n}" for n in base_names] + ["head.W"] + (
        ["head.U"] if getattr(head, "question", False) else [])
    if is_mlx(model):
        from spike_lib.mlx_impl.lora import freeze_except

        freeze_except(model, names)
    return names


def epoch_batches(n, batch_size, rng):
    """Index batches that visit every example once per epoch, in a fresh order each epoch."""
    while True:
        order = rng.permutation(n)
        for b in range(0, n - batch_size + 1, batch_size):
            yield order[b: b + batch_size]


def validation_record(model, score, step, epoch, train_seconds) -> dict:
    """One point of a validation curve: score() (evaluate_span or qa_eval.evaluate_qa on the
    validation records) run in eval mode, then back to training mode."""
    model.train(False)
    res = score()
    model.train(True)
    return {"step": step, "epoch": epoch,
            **{k: res[k] for k in ("exact_match", "f1", "answer_loss", "firing_rate")},
            "train_seconds": train_seconds}


def finetune_span(model, tok, examples, trainable, steps=100, batch_size=16, lr=1e-3, warmup=20,
                  clip=1.0, seed=0, val_records=None, eval_every=0, log=None, compile=True) -> dict:
    """Train the named parameters of a SpanQA on the span loss (Adam: no weight decay).

    Batches visit every example once per epoch (epoch_batches). Every eval_every steps (and at
    the end) val_records are scored with evaluate_span; each record goes to log(record) too.
    Returns the history: step, loss, lr, seconds and evals [{step, exact_match, f1, answer_loss}].
    """
    from spike_lib.numpy_impl.optim import cosine_lr
    from spike_lib.numpy_impl.train import TrainingDiverged

    check_range("steps", steps, 1, kind=int)
    check_range("batch_size", batch_size, 1, len(examples), kind=int)
    rng = np.random.default_rng(seed)
    block, pad = model.cfg.block_size, tok.eot_id
    if is_mlx(model):
        import mlx.core as mx

        from spike_lib.mlx_impl.span import make_span_step
        from spike_lib.mlx_impl.train import AdamW

        opt = AdamW(lr, weight_decay=0.0)
        model.train(True)
        step_fn = make_span_step(model, opt, clip, compile)

        def one_step(arrays, lr_t):
            opt.learning_rate = lr_t
            loss, norm = step_fn(*[mx.array(a) for a in arrays])
            mx.eval(loss, norm)
            return loss.item(), norm.item()
    else:
        from spike_lib.numpy_impl.lora import Trainable
        from spike_lib.numpy_impl.optim import AdamW, clip_grad_norm

        view = Trainable(model, trainable)
        opt = AdamW(view, lr=lr, weight_decay=0.0)
        model.train(True)

        def one_step(arrays, lr_t):
            x, valid, mask, start, end = arrays
            loss, dlogits = np_span.span_loss(model(x, valid, mask), mask, start, end)
            model.zero_grad()
            model.backward(dlogits)
            norm = clip_grad_norm(view, clip)
            if np.isfinite(loss) and np.isfinite(norm):
                opt.step(lr_t)
            return loss, norm

    hist = {"step": [], "loss": [], "lr": [], "evals": []}
    batches = epoch_batches(len(examples), batch_size, rng)
    start, train_s = time.perf_counter(), 0.0

    def evaluate(step):
        rec = validation_record(model, lambda: evaluate_span(model, tok, val_records), step,
                                step * batch_size / len(examples), train_s)
        hist["evals"].append(rec)
        if log:
            log(rec)

    for step in range(steps):
        t0 = time.perf_counter()
        idx = next(batches)
        arrays = span_arrays([examples[i] for i in idx], block, pad)
        lr_t = cosine_lr(step, lr, min(warmup, steps - 1), steps, lr * 0.1)
        loss, norm = one_step(arrays, lr_t)
        if not (np.isfinite(loss) and np.isfinite(norm)):
            raise TrainingDiverged(f"step {step}: the loss is {loss}, the gradient norm {norm}")
        train_s += time.perf_counter() - t0
        for key, value in (("step", step), ("loss", loss), ("lr", lr_t)):
            hist[key].append(value)
        if log and step % 25 == 0:
            log({"step": step, "loss": loss, "lr": lr_t, "train_seconds": train_s})
        if val_records and eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            evaluate(step + 1)
    if val_records:
        evaluate(steps)
    hist["seconds"], hist["wall_seconds"] = train_s, time.perf_counter() - start
    model.train(False)
    return hist


# ---------------------------------------------------------------- the QA model folder
def save_qa_model(path, model, tok, base_folder, head="span", strategy="lora", meta=None,
                  extra_files=None) -> Path:
    """Write a QA model folder atomically (spike_lib.train.checkpoint.atomic_folder).

    model: a SpanQA (head "span") or a SpikeLLM (head "generate"). A LoRA strategy saves only
    the adapter (the base is named by its path and fingerprint); full and freeze save weights.
    extra_files: {file name: text} written into the folder too (a training log, a README).
    """
    from spike_lib.numpy_impl.lora import adapter_state_dict, fingerprint
    from spike_lib.train.checkpoint import atomic_folder, save_checkpoint

    check_choice("head", head, HEADS)
    base = model.base if head == "span" and is_mlx(model) else (
        model.modules["base"] if head == "span" else model)
    base_folder = Path(base_folder)
    info = {"format_version": QA_FORMAT, "head": head, "strategy": strategy,
            "base": {"path": str(base_folder), **fingerprint(base_folder)}, **(meta or {})}
    if head == "span":
        span_head = model.head if is_mlx(model) else model.modules["head"]
        info["window"] = int(span_head.window)
        info["question_head"] = bool(getattr(span_head, "question", False))
    with atomic_folder(path) as tmp:
        if strategy == "lora":
            with open(tmp / "adapter.npz", "wb") as f:
                np.savez(f, **adapter_state_dict(base))
            info["lora"] = dict(base.lora)
        else:
            save_checkpoint(tmp / "model", base, tok)
        if head == "span":
            state = model.state_dict()
            with open(tmp / HEAD_WEIGHTS, "wb") as f:
                np.savez(f, **{k: np.array(state[f"head.{k}"]) for k in ("W", "U")
                               if f"head.{k}" in state})
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        (tmp / QA_CONFIG).write_text(json.dumps(info, indent=1, sort_keys=True), encoding="utf-8")
    return Path(path)


def is_qa_folder(path) -> bool:
    return (Path(path) / QA_CONFIG).is_file()


def read_qa_config(path) -> dict:
    cfg = Path(path) / QA_CONFIG
    try:
        info = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{cfg} cannot be read ({err}): re-save the QA model") from None
    if info.get("format_version") != QA_FORMAT or info.get("head") not in HEADS:
        raise ValueError(f"{cfg} is not a QA model config (format {info.get('format_version')!r}"
                         f", head {info.get('head')!r}); this spike_lib reads format {QA_FORMAT}")
    return info


def resolve_base(path, info) -> Path:
    """The base checkpoint of a QA folder: its path as saved, else relative to the folder."""
    base = Path(info["base"]["path"])
    for cand in (base, Path(path) / base, Path(path).parent / base.name):
        if (cand / "weights.npz").is_file():
            return cand
    raise ValueError(f"the base model {base} of {path} is not found: pass --base FOLDER")


def load_qa_model(path, backend="mlx", base=None) -> tuple:
    """(model, tokenizer, info) of a QA model folder: a SpanQA or a SpikeLLM with its adapter.

    The adapter is checked against the base model's fingerprint (a clear ValueError if the
    base is another model); the head must fit the base's width.
    """
    from spike_lib.numpy_impl.lora import check_base, fingerprint
    from spike_lib.train.checkpoint import read_npz
    from spike_lib.train.finetune import load_base

    path = Path(path)
    info = read_qa_config(path)
    if info["strategy"] == "lora":
        base_folder = Path(base) if base else resolve_base(path, info)
        want = {k: info["base"].get(k) for k in ("config", "weights_sha256")}
        check_base({"base": want}, fingerprint(base_folder), path)
        model, tok, _ = load_base(base_folder, backend)
        if backend == "mlx":
            from spike_lib.mlx_impl.lora import apply_lora
        else:
            from spike_lib.numpy_impl.lora import apply_lora
        lo = info["lora"]
        apply_lora(model, lo["rank"], lo["alpha"], lo["targets"])
        tensors = read_npz(path / "adapter.npz")
        state = model.state_dict()
        missing = sorted(k for k in state if k.endswith((".A", ".B")) and k not in tensors)
        if missing or set(tensors) - set(state):
            raise ValueError(f"{path}: adapter tensors do not fit the base model: missing "
                             f"{missing[:3]}, unexpected {sorted(set(tensors) - set(state))[:3]}")
        model.load_state_dict({**state, **tensors})
    else:
        model, tok, _ = load_base(path / "model", backend)
    if info["head"] == "span":
        head = read_npz(path / HEAD_WEIGHTS)
        question, d = bool(info.get("question_head", False)), model.cfg.n_embd
        wants = {"W": (info.get("window", 3) * d, 2), **({"U": (2, d, d)} if question else {})}
        for name, want in wants.items():
            got = head[name].shape if name in head else None
            if got != want:
                raise ValueError(f"{path / HEAD_WEIGHTS} holds {name} of shape {got} but this "
                                 f"base model needs {want}: the head was trained for another "
                                 "base model, or qa.json and head.npz do not belong together")
        model = build_span_model(model, info.get("window", 3), question)
        state = model.state_dict()
        state.update({f"head.{k}": head[k] for k in wants})
        model.load_state_dict(state) if not is_mlx(model) else _load_mlx(model, state)
    return model, tok, info


def _load_mlx(model, state):
    import mlx.core as mx

    model.load_weights([(k, mx.array(v)) for k, v in state.items()])
    mx.eval(model.parameters())
    return model


# ---------------------------------------------------------------- `finetune --head span`
def cpu_name() -> str:
    """The CPU model and core count (from /proc/cpuinfo on Linux), recorded beside timings."""
    import os
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def add_span_arguments(parser) -> None:
    """The options `python -m spike_lib finetune` adds for the span head."""
    parser.add_argument("--head", choices=HEADS, default="generate",
                        help="generate (write the answer, chapter 9) or span (point at it, 9b)")
    parser.add_argument("--epochs", type=float,
                        help="passes over the training set (sets --steps; batches then visit "
                        "every example once per epoch)")
    parser.add_argument("--window", type=int, default=3, choices=(1, 3),
                        help="span: hidden states per logit, h_i or h_(i-1), h_i, h_(i+1) (3)")
    parser.add_argument("--question-head", action="store_true",
                        help="span: the head also scores each token against the question "
                        "(h_i^T U q, q the mean hidden state of the prompt; DrQA's bilinear "
                        "match)")
    parser.add_argument("--val-file", help="JSONL scored every --eval-every steps "
                        "(data/qa/val.jsonl)")
    parser.add_argument("--val-questions", type=int, default=200,
                        help="a fixed sample of this many validation questions (200)")
    parser.add_argument("--eval-every", type=int,
                        help="steps between validation scores (span: 75 by default, 0: only at "
                        "the end; generate: none unless given, then also at the end)")
    parser.add_argument("--long-contexts", choices=("cut", "windows"), default="cut",
                        help="span: a training context longer than the window: cut it and skip "
                        "the example if its answer falls off (cut), or train on the window that "
                        "holds the answer (windows). Scoring always reads all windows.")


def run_finetune(args) -> dict:
    """`finetune --head span`: fine-tune a SpanQA on --train-file and write a QA model folder."""
    import sys

    from spike_lib.data.qa import QA_DIR
    from spike_lib.numpy_impl.lora import expand_targets
    from spike_lib.train.finetune import (
        DEFAULT_LR,
        command_line,
        epochs_to_steps,
        load_base,
        load_qa_file,
        setup_strategy,
    )
    from spike_lib.train.qa_baselines import test_sample

    model, tok, folder = load_base(args.checkpoint, args.backend)
    names = setup_strategy(model, args.method, args.freeze_layers, args.rank, args.alpha,
                           expand_targets(args.targets), np.random.default_rng(args.seed))
    qa = build_span_model(model, args.window, getattr(args, "question_head", False))
    trainable = span_trainable(qa, names)
    examples, counts = encode_span_examples(tok, load_qa_file(args.train_file),
                                            model.cfg.block_size, args.long_contexts == "windows")
    steps = args.steps if args.epochs is None else epochs_to_steps(args.epochs, len(examples),
                                                                   args.batch_size)
    val = test_sample(load_qa_file(args.val_file or QA_DIR / "val.jsonl"), args.val_questions)
    log_lines = []

    def log(rec):
        log_lines.append(json.dumps(rec))
        print(json.dumps(rec), file=sys.stderr, flush=True)

    lr = DEFAULT_LR[args.method] if args.lr is None else args.lr
    hist = finetune_span(qa, tok, examples, trainable, steps, args.batch_size, lr, args.warmup,
                         seed=args.seed, val_records=val, eval_every=75 if args.eval_every is None
                         else args.eval_every, log=log)
    meta = {"command": command_line(args), "steps": steps,
            "lr": lr, "batch_size": args.batch_size,
            "epochs": steps * args.batch_size / len(examples),
            "train_seconds": hist["seconds"], "cpu": cpu_name(),
            "val": hist["evals"][-1], **counts}
    save_qa_model(args.out, qa, tok, folder, "span", args.method, meta=meta,
                  extra_files={"train_log.jsonl": "\n".join(log_lines) + "\n"})
    return {**{k: hist["evals"][-1][k] for k in ("exact_match", "f1", "answer_loss")},
            "steps": steps, "seconds": hist["seconds"], "out": str(args.out)}
