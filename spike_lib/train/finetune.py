"""Fine-tuning on extractive QA: QA files, the loss on the answer (optionally plus the context's
language-model loss), and three strategies. The prompt format lives in spike_lib.train.prompt.

Strategies: "full" (every weight), "freeze" (the embeddings and the first k blocks frozen) and
"lora" (rank-r adapters on the attention, optionally MLP, projections; everything else frozen).
Taught in: notebooks/09_finetuning_lora.ipynb
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from spike_lib.core.atomic import write_text
from spike_lib.core.config import check_choice, check_range
from spike_lib.data.qa import answer_span, answer_texts  # noqa: F401 - the QA record format
from spike_lib.train.prompt import (  # noqa: F401 - the prompt format, kept importable here
    ANSWER_TOKENS,
    ORDERS,
    PROMPT,
    PROMPTS,
    STOP,
    answer_batch,
    check_context_loss,
    check_order,
    encode_example,
    encode_examples,
    fit_context,
    format_prompt,
    qa_batch,
)

METHODS = ("full", "freeze", "lora")
QA_FIELDS = ("context", "question", "answers")
TRAIN_FILE = Path(__file__).resolve().parents[2] / "data" / "qa" / "train.jsonl"


# ---------------------------------------------------------------- QA files
def answer_problem(rec) -> str:
    """'' if rec has a non-empty context, question and answers that are spans, else the problem."""
    if not isinstance(rec, dict):
        return f"a record must be a JSON object, got {type(rec).__name__}"
    for field in QA_FIELDS:
        if field not in rec:
            return (f"missing field '{field}': each line needs context, question and answers "
                    '(answers: [{"text": ..., "answer_start": ...}] or ["text", ...])')
    for field in ("context", "question"):
        if not isinstance(rec[field], str) or not rec[field].strip():
            return f"field '{field}' must be a non-empty string, got {rec[field]!r}"
    answers = rec["answers"]
    if not isinstance(answers, list) or not answers:
        return "field 'answers' must be a non-empty list"
    for k, ans in enumerate(answers):
        text = ans.get("text") if isinstance(ans, dict) else ans
        if not isinstance(text, str) or not text.strip():
            return f"answers[{k}] must be a non-empty string or have a non-empty 'text'"
        start = ans.get("answer_start") if isinstance(ans, dict) else None
        if start is not None and (isinstance(start, bool) or not isinstance(start, int)):
            return f"answers[{k}] needs an integer 'answer_start', got {start!r}"
        if start is not None and rec["context"][start: start + len(text)] != text:
            return (f"answers[{k}] {text!r} is not the span of the context at answer_start="
                    f"{start}: fix answer_start (or drop it)")
        if text not in rec["context"]:
            return (f"answers[{k}] {text!r} is not a span of the context: extractive QA "
                    "needs answers copied verbatim from the context")
    return ""


def load_qa_file(path, limit=None) -> list:
    """Records {context, question, answers} of a JSONL file; ValueError names line and fix."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"QA file {path} does not exist: give a JSONL file of "
                         "{context, question, answers}, e.g. data/qa/test.jsonl")
    records = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = list(f)
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not UTF-8: re-save it as UTF-8") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {lineno}: not valid JSON ({err.msg}): each line "
                             "must be one JSON object") from None
        problem = answer_problem(rec)
        if problem:
            raise ValueError(f"{path} line {lineno}: {problem}")
        records.append(rec)
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise ValueError(f"{path} holds no records")
    return records


# ---------------------------------------------------------------- strategies
def is_mlx(model) -> bool:
    return type(model).__module__.startswith("spike_lib.mlx_impl")


def param_names(model) -> list:
    if is_mlx(model):
        return [n for n, _ in model.named_parameters()]
    return [n for n, _, _ in model.named_parameters()]


def frozen_prefixes(n_layer, freeze_layers) -> tuple:
    """The embeddings and blocks 0 .. k-1: what the "freeze" strategy keeps fixed."""
    check_range("freeze_layers", freeze_layers, 0, n_layer, kind=int)
    return ("tok_emb.", "pos_emb.") + tuple(f"blocks.{i}." for i in range(freeze_layers))


def setup_strategy(model, method, freeze_layers=None, rank=8, alpha=16.0, targets=("attn",),
                   rng=None) -> list:
    """Prepare model for one strategy (LoRA: swap in adapters) and return the trainable names."""
    check_choice("method", method, METHODS)
    if method == "lora":
        if is_mlx(model):
            from spike_lib.mlx_impl.lora import apply_lora
        else:
            from spike_lib.numpy_impl.lora import apply_lora
        return apply_lora(model, rank, alpha, targets, rng)
    names = param_names(model)
    if method == "freeze":
        n_layer = model.cfg.n_layer
        k = n_layer // 2 if freeze_layers is None else freeze_layers
        names = [n for n in names if not n.startswith(frozen_prefixes(n_layer, k))]
    if is_mlx(model):
        from spike_lib.mlx_impl.lora import freeze_except

        freeze_except(model, names)
    return names


def finetune(model, tok, examples, trainable, steps=100, batch_size=16, lr=1e-3, warmup=10,
             weight_decay=0.0, clip=1.0, seed=0, callback=None, compile=True,
             context_loss=0.0, by_epoch=False, val_records=None, eval_every=0, log=None,
             order="context", answer_tokens=ANSWER_TOKENS) -> dict:
    """Train the parameters named in `trainable` on the answer's loss; the rest never changes.

    examples: from encode_examples (either prompt order). context_loss = lambda > 0 adds
    lambda times the mean cross-entropy over the prompt's context tokens (qa_batch); 0 is the
    answer-only loss of Eq. 9.1, computed exactly as before. Batches are drawn at random
    (seeded). Works on either backend (the MLX step is compiled unless compile=False: for a
    handful of steps compiling costs more than it saves). by_epoch=True draws batches that visit
    every example once per epoch instead (span_qa.epoch_batches). With val_records and
    eval_every > 0, every eval_every steps and at the end the greedy answers to val_records (in
    prompt `order`) are scored by qa_eval.evaluate_qa; each score and every 25th step also go to
    log(record). Returns a history: step, loss (the whole objective), lr, seconds and evals
    [{step, epoch, exact_match, f1, answer_loss, firing_rate, train_seconds}].
    """
    from spike_lib.numpy_impl.optim import cosine_lr
    from spike_lib.train.span_qa import epoch_batches, validation_record

    check_range("steps", steps, 1, kind=int)
    check_range("batch_size", batch_size, 1, kind=int)
    lam = check_context_loss(context_loss)
    if not examples:
        raise ValueError("no training examples: every record was skipped (see encode_examples)")
    rng = np.random.default_rng(seed)
    block, pad = model.cfg.block_size, tok.eot_id
    if is_mlx(model):
        from spike_lib.mlx_impl.train import AdamW, make_step, train_step, weighted_loss_fn

        opt = AdamW(lr, weight_decay=weight_decay)
        model.train(True)
        step_fn = make_step(model, opt, clip, compile, objective=weighted_loss_fn if lam else None)

        def one_step(x, y, w, lr_t):
            w = None if w is None else w.astype(np.float32)
            return train_step(step_fn, opt, x, y, lr_t, weights=w)["loss"]
    else:
        from spike_lib.numpy_impl.lora import Trainable
        from spike_lib.numpy_impl.optim import AdamW
        from spike_lib.numpy_impl.train import train_step

        view = Trainable(model, trainable)
        opt = AdamW(view, lr=lr, weight_decay=weight_decay)
        model.train(True)

        def one_step(x, y, w, lr_t):
            return train_step(view, opt, x, y, lr_t, clip, weights=w)["loss"]

    hist = {"step": [], "loss": [], "lr": [], "evals": []}
    start, train_s = time.perf_counter(), 0.0
    batches = None
    if by_epoch:
        batches = epoch_batches(len(examples), min(batch_size, len(examples)), rng)

    def evaluate(step):
        from spike_lib.train.qa_eval import evaluate_qa

        rec = validation_record(
            model, lambda: evaluate_qa(model, tok, val_records, answer_tokens, order=order),
            step, step * batch_size / len(examples), train_s)
        hist["evals"].append(rec)
        if log:
            log(rec)

    for step in range(steps):
        t0 = time.perf_counter()
        if by_epoch:
            idx = next(batches)
        else:
            idx = rng.choice(len(examples), size=min(batch_size, len(examples)), replace=False)
        batch = [examples[i] for i in idx]
        if lam:
            x, y, w = qa_batch(batch, block, pad, lam)
        else:  # Eq. 9.1 exactly: the mean over answer tokens
            (x, y), w = answer_batch(batch, block, pad), None
        lr_t = cosine_lr(step, lr, min(warmup, steps - 1), steps, lr * 0.1)
        loss = one_step(x, y, w, lr_t)
        train_s += time.perf_counter() - t0
        for key, value in (("step", step), ("loss", loss), ("lr", lr_t)):
            hist[key].append(value)
        if callback is not None:
            callback(step, loss)
        if log and step % 25 == 0:
            log({"step": step, "loss": float(loss), "lr": lr_t, "train_seconds": train_s})
        if val_records and eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            evaluate(step + 1)
    if val_records and eval_every:
        evaluate(steps)
    hist["seconds"], hist["wall_seconds"] = train_s, time.perf_counter() - start
    model.train(False)
    return hist


def count_params(model, trainable) -> dict:
    """Trainable and total parameters (LoRA: the base plus the adapters)."""
    sizes = dict(zip(param_names(model), _sizes(model)))
    n_train = sum(sizes[n] for n in trainable)
    total = sum(sizes.values())
    return {"trainable_params": n_train, "total_params": total,
            "trainable_pct": 100.0 * n_train / total}


def _sizes(model):
    if is_mlx(model):
        return [int(p.size) for _, p in model.named_parameters()]
    return [int(p.size) for _, p, _ in model.named_parameters()]


# ---------------------------------------------------------------- `python -m spike_lib finetune`
DEFAULT_LR = {"full": 1e-3, "freeze": 1e-3, "lora": 1e-2}  # defaults; no sweep was recorded


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="base model: checkpoint or run folder")
    parser.add_argument("--method", required=True, choices=METHODS, help="full, freeze or lora")
    parser.add_argument("--out", required=True,
                        help="output folder: a checkpoint (full, freeze) or an adapter (lora)")
    parser.add_argument("--train-file", default=str(TRAIN_FILE),
                        help="JSONL of {context, question, answers} (data/qa/train.jsonl)")
    parser.add_argument("--backend", choices=("numpy", "mlx"), default="mlx", help="mlx (default)")
    parser.add_argument("--steps", type=int, default=150, help="updates (150)")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per step (16)")
    parser.add_argument("--lr", type=float, help="peak learning rate (full and freeze 1e-3, "
                        "lora 1e-2)")
    parser.add_argument("--warmup", type=int, default=10, help="warmup steps (10)")
    parser.add_argument("--freeze-layers", type=int, help="freeze: blocks frozen (n_layer // 2)")
    parser.add_argument("--rank", type=int, default=8, help="lora: rank r (8)")
    parser.add_argument("--alpha", type=float, default=16.0, help="lora: scale alpha (16)")
    parser.add_argument("--targets", default="attn",
                        help="lora: attn (q, k, v, out projections), attn,mlp, or layer names")
    parser.add_argument("--answer-tokens", type=int, default=ANSWER_TOKENS,
                        help=f"tokens reserved for the answer ({ANSWER_TOKENS})")
    parser.add_argument("--seed", type=int, default=0, help="adapters and batches (0)")
    parser.add_argument("--prompt-order", choices=ORDERS, default="context",
                        help="generate: context first (context, chapter 9's format) or question "
                             "first (question: every context token reads the question)")
    parser.add_argument("--context-loss", type=float, default=0.0, metavar="LAMBDA",
                        help="generate: add LAMBDA x the language-model loss on the context "
                             "tokens (0: the answer only)")
    from spike_lib.train.span_qa import add_span_arguments

    add_span_arguments(parser)  # --head span|generate and the span head's options


def load_base(path, backend):
    """(model, tokenizer, checkpoint folder) of a base model on the chosen backend."""
    from spike_lib.train.evaluation import load_for_use, load_from, resolve_checkpoint

    if backend == "mlx":
        from spike_lib.mlx_impl.model import load_checkpoint

        model, tok, _ = load_from(path, load_checkpoint)
        if tok is None:
            raise ValueError(f"{path} holds no tokenizer.json: re-save it with its tokenizer")
    else:
        model, tok, _ = load_for_use(path)
    return model, tok, resolve_checkpoint(path)


def command_line(args) -> str:
    """The command that made `args`, to store beside what it wrote (quoted for a shell).

    The cli keeps the arguments it parsed in args._argv, also when main() is called from Python.
    """
    import shlex

    return "python -m spike_lib " + shlex.join(getattr(args, "_argv", sys.argv[1:]))


def run(args) -> dict:
    from spike_lib.numpy_impl.lora import expand_targets, fingerprint, save_adapter
    from spike_lib.numpy_impl.train import TrainingDiverged
    from spike_lib.train.runfolder import check_out

    check_range("steps", args.steps, 1, kind=int)
    order = check_order(getattr(args, "prompt_order", "context"), "--prompt-order")
    lam = check_context_loss(getattr(args, "context_loss", 0.0), "--context-loss")
    if getattr(args, "head", "generate") == "span":
        if order != "context" or lam:
            raise ValueError("--prompt-order and --context-loss are options of --head generate: "
                             "the span head always reads the question first and has no "
                             "language-model loss; drop them or use --head generate")
        from spike_lib.train.span_qa import run_finetune

        return run_finetune(args)
    check_range("batch_size", args.batch_size, 1, kind=int)
    if args.lr is not None and not 0 < args.lr < float("inf"):
        raise ValueError(f"--lr {args.lr} is invalid: it must be a finite number > 0")
    check_out(args.out, "adapter" if args.method == "lora" else "checkpoint")  # before training
    model, tok, folder = load_base(args.checkpoint, args.backend)
    records = load_qa_file(args.train_file)
    examples, counts = encode_examples(tok, records, model.cfg.block_size, args.answer_tokens,
                                       order)
    trainable = setup_strategy(model, args.method, args.freeze_layers, args.rank, args.alpha,
                               expand_targets(args.targets), np.random.default_rng(args.seed))
    lr = DEFAULT_LR[args.method] if args.lr is None else args.lr
    epochs = getattr(args, "epochs", None)
    steps = (args.steps if epochs is None
             else epochs_to_steps(epochs, len(examples), args.batch_size))
    eval_every = getattr(args, "eval_every", None) or 0  # generate: validation only when asked
    val, log_lines = None, []
    if eval_every:
        from spike_lib.data.qa import QA_DIR
        from spike_lib.train.qa_baselines import test_sample

        val = test_sample(load_qa_file(args.val_file or QA_DIR / "val.jsonl"), args.val_questions)

    def log(rec):
        log_lines.append(json.dumps(rec))
        print(json.dumps(rec), file=sys.stderr, flush=True)

    try:
        hist = finetune(model, tok, examples, trainable, steps, args.batch_size, lr,
                        args.warmup, seed=args.seed, context_loss=lam, by_epoch=epochs is not None,
                        val_records=val, eval_every=eval_every, log=log if eval_every else None,
                        order=order, answer_tokens=args.answer_tokens)
    except TrainingDiverged as err:
        print(f"error: {err}; nothing was saved: lower --lr", file=sys.stderr)
        return 1
    base = fingerprint(folder)
    info = {"method": args.method, "steps": steps, "lr": lr, "batch_size": args.batch_size,
            "prompt_order": order, "context_loss": lam,
            "epochs": steps * args.batch_size / len(examples),
            "final_loss": float(np.mean(hist["loss"][-10:])), "seconds": hist["seconds"],
            "command": command_line(args),
            **count_params(model, trainable), **counts}
    if hist["evals"]:
        info["val"] = hist["evals"][-1]
    if args.method == "lora":
        save_adapter(args.out, model, base, meta={"finetune": info})
    elif is_mlx(model):
        from spike_lib.mlx_impl.model import save_checkpoint

        save_checkpoint(args.out, model, tok, meta={"finetune": info, "base": base})
    else:
        from spike_lib.train.checkpoint import save_checkpoint

        save_checkpoint(args.out, model, tok, meta={"finetune": info, "base": base})
    if log_lines:  # the validation curve beside the weights, as the span head keeps it
        write_text(Path(args.out) / "train_log.jsonl", "\n".join(log_lines) + "\n")
    return {**info, "out": str(args.out)}


def epochs_to_steps(epochs, n_examples, batch_size) -> int:
    """Updates of batch_size examples for `epochs` passes over n_examples (at least one)."""
    check_range("--epochs", epochs, 0.0, 1e4, low_open=True)
    return max(1, int(epochs * n_examples / batch_size))
