"""Fine-tuning on extractive QA: the prompt format, answer-only loss, and three strategies.

Strategies: "full" (every weight), "freeze" (the embeddings and the first k blocks frozen) and
"lora" (rank-r adapters on the attention, optionally MLP, projections; everything else frozen).
Taught in: notebooks/09_finetuning_lora.ipynb
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from spike_lib.core.config import check_choice, check_range
from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.data.qa import answer_span, answer_texts  # noqa: F401 - the QA record format

PROMPT = "Context: {context}\nQuestion: {question}\nAnswer:"
STOP = "\n"  # the answer ends with a newline: the model learns to stop there
METHODS = ("full", "freeze", "lora")
ANSWER_TOKENS = 16  # tokens reserved for the answer (and its newline) inside the block
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


# ---------------------------------------------------------------- prompt format
def format_prompt(context, question) -> str:
    """'Context: ...\\nQuestion: ...\\nAnswer:'; the answer follows as ' <answer>\\n'."""
    return PROMPT.format(context=context, question=question)


def fit_context(tok, context, question, max_tokens):
    """(kept context, prompt ids): the longest run of leading words of context that fits.

    The prompt's tokens must number at most max_tokens; the tail of the context is cut at a
    word boundary. ValueError if even the question alone does not fit.
    """
    ids = tok.encode(format_prompt(context, question))
    if len(ids) <= max_tokens:
        return context, ids
    words = context.split(" ")
    lo, hi = 0, len(words) - 1  # binary search the number of words kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(tok.encode(format_prompt(" ".join(words[:mid]), question))) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    kept = " ".join(words[:lo])
    ids = tok.encode(format_prompt(kept, question))
    if len(ids) > max_tokens:
        raise ValueError(f"the question {question[:60]!r} alone needs {len(ids)} prompt tokens, "
                         f"more than the {max_tokens} the block leaves: shorten it or lower "
                         "answer_tokens")
    return kept, ids


def encode_example(tok, rec, block_size, answer_tokens=ANSWER_TOKENS) -> dict:
    """Prompt and answer ids of one record, the context cut so both fit in block_size + 1.

    Returns prompt (ids), answer (ids of ' <answer>\\n'), truncated (the context was cut) and
    answer_kept (the gold answer span is still inside the kept context).
    """
    check_range("answer_tokens", answer_tokens, 2, block_size, kind=int)
    kept, prompt = fit_context(tok, rec["context"], rec["question"],
                               block_size + 1 - answer_tokens)
    _, end = answer_span(rec)
    return {"prompt": prompt, "answer": tok.encode(f" {answer_texts(rec)[0]}{STOP}"),
            "truncated": len(kept) < len(rec["context"]), "answer_kept": end <= len(kept)}


def encode_examples(tok, records, block_size, answer_tokens=ANSWER_TOKENS) -> tuple:
    """(training examples, counts): examples whose answer was cut away or is longer than
    answer_tokens are skipped and counted."""
    out, counts = [], {"records": len(records), "kept": 0, "truncated": 0, "answer_cut": 0,
                       "answer_too_long": 0}
    for rec in records:
        ex = encode_example(tok, rec, block_size, answer_tokens)
        counts["truncated"] += ex["truncated"]
        if not ex["answer_kept"]:
            counts["answer_cut"] += 1
        elif len(ex["answer"]) > answer_tokens:
            counts["answer_too_long"] += 1
        else:
            out.append(ex)
    counts["kept"] = len(out)
    return out, counts


def answer_batch(examples, block_size, pad_id) -> tuple:
    """(x, y) of shape (B, block_size): prompt + answer, with targets only on the answer.

    Row b holds seq = prompt + answer, x = seq[:-1] padded with pad_id, y[j] = seq[j + 1] where
    seq[j + 1] is an answer token and IGNORE_INDEX elsewhere, so the loss (the mean
    cross-entropy over non-ignored targets) is the mean over answer tokens only (Eq. 9.1).
    """
    x = np.full((len(examples), block_size), pad_id, dtype=np.int64)
    y = np.full((len(examples), block_size), IGNORE_INDEX, dtype=np.int64)
    for b, ex in enumerate(examples):
        seq = list(ex["prompt"]) + list(ex["answer"])
        if len(seq) > block_size + 1:
            raise ValueError(f"example {b} has {len(seq)} tokens, more than block_size + 1 = "
                             f"{block_size + 1}: encode it with encode_example")
        n_p = len(ex["prompt"])
        x[b, : len(seq) - 1] = seq[:-1]
        y[b, n_p - 1: len(seq) - 1] = seq[n_p:]
    return x, y


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
             weight_decay=0.0, clip=1.0, seed=0, callback=None, compile=True) -> dict:
    """Train the parameters named in `trainable` on answer-only loss; the rest never changes.

    examples: from encode_examples. Batches are drawn at random (seeded). Works on either
    backend (the MLX step is compiled unless compile=False: for a handful of steps compiling
    costs more than it saves). Returns a history: step, loss, lr, seconds.
    """
    from spike_lib.numpy_impl.optim import cosine_lr

    check_range("steps", steps, 1, kind=int)
    check_range("batch_size", batch_size, 1, kind=int)
    if not examples:
        raise ValueError("no training examples: every record was skipped (see encode_examples)")
    rng = np.random.default_rng(seed)
    block, pad = model.cfg.block_size, tok.eot_id
    if is_mlx(model):
        from spike_lib.mlx_impl.train import AdamW, make_step, train_step

        opt = AdamW(lr, weight_decay=weight_decay)
        model.train(True)
        step_fn = make_step(model, opt, clip, compile)

        def one_step(x, y, lr_t):
            return train_step(step_fn, opt, x, y, lr_t)["loss"]
    else:
        from spike_lib.numpy_impl.lora import Trainable
        from spike_lib.numpy_impl.optim import AdamW
        from spike_lib.numpy_impl.train import train_step

        view = Trainable(model, trainable)
        opt = AdamW(view, lr=lr, weight_decay=weight_decay)
        model.train(True)

        def one_step(x, y, lr_t):
            return train_step(view, opt, x, y, lr_t, clip)["loss"]

    hist = {"step": [], "loss": [], "lr": []}
    start = time.perf_counter()
    for step in range(steps):
        idx = rng.choice(len(examples), size=min(batch_size, len(examples)), replace=False)
        x, y = answer_batch([examples[i] for i in idx], block, pad)
        lr_t = cosine_lr(step, lr, min(warmup, steps - 1), steps, lr * 0.1)
        loss = one_step(x, y, lr_t)
        for key, value in (("step", step), ("loss", loss), ("lr", lr_t)):
            hist[key].append(value)
        if callback is not None:
            callback(step, loss)
    hist["seconds"] = time.perf_counter() - start
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


def run(args) -> dict:
    from spike_lib.numpy_impl.lora import expand_targets, fingerprint, save_adapter
    from spike_lib.numpy_impl.train import TrainingDiverged

    from spike_lib.train.runfolder import check_out

    check_range("steps", args.steps, 1, kind=int)
    if getattr(args, "head", "generate") == "span":
        from spike_lib.train.span_qa import run_finetune

        return run_finetune(args)
    check_range("batch_size", args.batch_size, 1, kind=int)
    if args.lr is not None and not 0 < args.lr < float("inf"):
        raise ValueError(f"--lr {args.lr} is invalid: it must be a finite number > 0")
    check_out(args.out, "adapter" if args.method == "lora" else "checkpoint")  # before training
    model, tok, folder = load_base(args.checkpoint, args.backend)
    records = load_qa_file(args.train_file)
    examples, counts = encode_examples(tok, records, model.cfg.block_size, args.answer_tokens)
    trainable = setup_strategy(model, args.method, args.freeze_layers, args.rank, args.alpha,
                               expand_targets(args.targets), np.random.default_rng(args.seed))
    lr = DEFAULT_LR[args.method] if args.lr is None else args.lr
    try:
        hist = finetune(model, tok, examples, trainable, args.steps, args.batch_size, lr,
                        args.warmup, seed=args.seed)
    except TrainingDiverged as err:
        print(f"error: {err}; nothing was saved: lower --lr", file=sys.stderr)
        return 1
    base = fingerprint(folder)
    info = {"method": args.method, "steps": args.steps, "lr": lr, "batch_size": args.batch_size,
            "final_loss": float(np.mean(hist["loss"][-10:])), "seconds": hist["seconds"],
            **count_params(model, trainable), **counts}
    if args.method == "lora":
        save_adapter(args.out, model, base, meta={"finetune": info})
    elif is_mlx(model):
        from spike_lib.mlx_impl.model import save_checkpoint

        save_checkpoint(args.out, model, tok, meta={"finetune": info, "base": base})
    else:
        from spike_lib.train.checkpoint import save_checkpoint

        save_checkpoint(args.out, model, tok, meta={"finetune": info, "base": base})
    return {**info, "out": str(args.out)}
