"""The generative QA prompt in two orders, and the targets of the fine-tuning loss.

Context first ("Context: c\\nQuestion: q\\nAnswer:") or question first ("Question: q\\nContext:
c\\nAnswer:"): in a causal model only the second lets every context token read the question.
The loss is the mean cross-entropy over the answer tokens plus, optionally, lambda times the
mean over the context tokens (the language-model loss on the context; Eq. 9.1 is lambda = 0).
Taught in: notebooks/09_finetuning_lora.ipynb
"""

import math
from pathlib import Path

import numpy as np

from spike_lib.core.config import check_choice, check_range
from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.data.qa import answer_span, answer_texts

PROMPTS = {"context": "Context: {context}\nQuestion: {question}\nAnswer:",
           "question": "Question: {question}\nContext: {context}\nAnswer:"}
ORDERS = tuple(PROMPTS)  # "context" (chapter 9's format, the default) or "question"
PROMPT = PROMPTS["context"]
STOP = "\n"  # the answer ends with a newline: the model learns to stop there
ANSWER_TOKENS = 16  # tokens reserved for the answer (and its newline) inside the block


# ---------------------------------------------------------------- options
def check_order(order, name="prompt_order") -> str:
    check_choice(name, order, ORDERS)
    return order


def check_context_loss(weight, name="context_loss") -> float:
    """lambda as a float; ValueError (naming `name`) unless it is a finite number >= 0."""
    ok = isinstance(weight, (int, float)) and not isinstance(weight, bool)
    if not ok or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"{name}={weight!r} is invalid: it must be a finite number >= 0, the "
                         "weight of the context's language-model loss (0: the answer only, "
                         "e.g. 0.5: half the context loss added)")
    return float(weight)


# ---------------------------------------------------------------- the prompt
def format_prompt(context, question, order="context") -> str:
    """The prompt in one order; the answer follows as ' <answer>\\n'."""
    return PROMPTS[check_order(order)].format(context=context, question=question)


def fit_context(tok, context, question, max_tokens, order="context"):
    """(kept context, prompt ids): the longest run of leading words of context that fits.

    The prompt's tokens must number at most max_tokens; the tail of the context is cut at a
    word boundary, in either order (the question is never cut). ValueError if even the
    question alone does not fit.
    """
    ids = tok.encode(format_prompt(context, question, order))
    if len(ids) <= max_tokens:
        return context, ids
    words = context.split(" ")
    lo, hi = 0, len(words) - 1  # binary search the number of words kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(tok.encode(format_prompt(" ".join(words[:mid]), question, order))) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    kept = " ".join(words[:lo])
    ids = tok.encode(format_prompt(kept, question, order))
    if len(ids) > max_tokens:
        raise ValueError(f"the question {question[:60]!r} alone needs {len(ids)} prompt tokens, "
                         f"more than the {max_tokens} the block leaves: shorten it or lower "
                         "answer_tokens")
    return kept, ids


def context_tokens(tok, ids, context, question, order="context"):
    """(first, end): prompt tokens first .. end - 1 hold the context's characters.

    A token counts when it holds at least one byte of the context (a token that joins the
    space before the context, or the newline after it, counts). None when the tokenizer's
    bytes do not spell the prompt (every spike_lib tokenizer's do).
    """
    prefix = PROMPTS[check_order(order)].split("{context}")[0].format(question=question)
    b0 = len(prefix.encode("utf-8"))
    b1 = b0 + len(context.encode("utf-8"))
    pieces = [tok.token_bytes[i] for i in ids]
    if b"".join(pieces) != format_prompt(context, question, order).encode("utf-8"):
        return None
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    ends = np.cumsum(lengths)
    hit = np.flatnonzero((ends > b0) & (ends - lengths < b1))
    return (int(hit[0]), int(hit[-1]) + 1) if b1 > b0 and hit.size else (0, 0)


def encode_example(tok, rec, block_size, answer_tokens=ANSWER_TOKENS, order="context") -> dict:
    """Prompt and answer ids of one record, the context cut so both fit in block_size + 1.

    Returns prompt (ids), answer (ids of ' <answer>\\n'), truncated (the context was cut),
    answer_kept (the gold answer span is still inside the kept context) and context (first,
    end) of the context's tokens in the prompt (context_tokens).
    """
    check_range("answer_tokens", answer_tokens, 2, block_size, kind=int)
    kept, prompt = fit_context(tok, rec["context"], rec["question"],
                               block_size + 1 - answer_tokens, order)
    _, end = answer_span(rec)
    return {"prompt": prompt, "answer": tok.encode(f" {answer_texts(rec)[0]}{STOP}"),
            "truncated": len(kept) < len(rec["context"]), "answer_kept": end <= len(kept),
            "context": context_tokens(tok, prompt, kept, rec["question"], order)}


def encode_examples(tok, records, block_size, answer_tokens=ANSWER_TOKENS,
                    order="context") -> tuple:
    """(training examples, counts): examples whose answer was cut away or is longer than
    answer_tokens are skipped and counted."""
    out, counts = [], {"records": len(records), "kept": 0, "truncated": 0, "answer_cut": 0,
                       "answer_too_long": 0}
    for rec in records:
        ex = encode_example(tok, rec, block_size, answer_tokens, order)
        counts["truncated"] += ex["truncated"]
        if not ex["answer_kept"]:
            counts["answer_cut"] += 1
        elif len(ex["answer"]) > answer_tokens:
            counts["answer_too_long"] += 1
        else:
            out.append(ex)
    counts["kept"] = len(out)
    return out, counts


# ---------------------------------------------------------------- batches and the loss
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


def context_targets(examples, block_size) -> np.ndarray:
    """(B, block_size): y[j] = prompt[j + 1] where prompt[j + 1] is a context token, else
    IGNORE_INDEX: next-token prediction of the context text (never of padding)."""
    y = np.full((len(examples), block_size), IGNORE_INDEX, dtype=np.int64)
    for b, ex in enumerate(examples):
        span = ex.get("context")
        if span is None:
            raise ValueError(f"example {b} does not say where its context is: encode it with "
                             "encode_example (and a tokenizer whose bytes spell its text)")
        first, end = max(span[0], 1), span[1]  # the block's first token is never a target
        if end > first:
            y[b, first - 1: end - 1] = ex["prompt"][first:end]
    return y


def qa_batch(examples, block_size, pad_id, context_loss=0.0) -> tuple:
    """(x, y, w): answer_batch's x, targets y on the answer and (lambda > 0) the context, and
    per-position loss weights w (B, block_size), so that the loss sum(w * CE) is

        L = (1 / N_a) sum_answer CE + lambda (1 / N_c) sum_context CE
    N_a, N_c: answer and context targets in the whole batch; w = 0 on every other position.
    """
    lam = check_context_loss(context_loss)
    x, y = answer_batch(examples, block_size, pad_id)
    w = np.zeros(y.shape, dtype=np.float64)
    answer = y != IGNORE_INDEX
    w[answer] = 1.0 / max(int(answer.sum()), 1)
    if lam > 0:
        yc = context_targets(examples, block_size)
        ctx = yc != IGNORE_INDEX
        if (ctx & answer).any():
            raise ValueError("a context target falls on an answer position: the examples' "
                             "context spans are wrong; encode them with encode_example")
        y[ctx] = yc[ctx]
        w[ctx] = lam / max(int(ctx.sum()), 1)
    return x, y, w


# ---------------------------------------------------------------- the order a folder records
def saved_prompt_order(path, adapter=False):
    """The prompt order a fine-tuned folder was trained with, or None for a base model.

    An adapter folder (adapter.json; adapter=True: path must be one), a QA model folder
    (qa.json) or a checkpoint whose meta.json holds a "finetune" record is fine-tuned: its
    order is its finetune record's prompt_order, "context" when the record has none (saved
    before the option existed).
    """
    from spike_lib.core.checkpoint_format import load_meta, read_json_file
    from spike_lib.core.lora import read_adapter
    from spike_lib.train.evaluation import resolve_checkpoint

    path = Path(path)
    if adapter or (path / "adapter.json").is_file():
        record = read_adapter(path)[0].get("finetune") or {}  # errors name a killed save
    elif (path / "qa.json").is_file():
        info = read_json_file(path / "qa.json", what="QA model")
        record = {**(info.get("finetune") or {}), **info}
    else:
        record = load_meta(resolve_checkpoint(path)).get("finetune")
        if record is None:
            return None
    order = record.get("prompt_order", "context")
    if order not in ORDERS:
        raise ValueError(f"{path} records prompt_order={order!r}, which this spike_lib does not "
                         f"know (it knows {list(ORDERS)}): re-save it with a known order")
    return order


def resolve_prompt_order(flag, folder, adapter=False) -> str:
    """The order to use for folder: the one it records; --prompt-order may only repeat it.

    A base model (no fine-tuning recorded) takes any order, "context" by default.
    """
    saved = saved_prompt_order(folder, adapter)
    if flag is None:
        return saved or "context"
    check_order(flag, "--prompt-order")
    if saved is not None and flag != saved:
        raise ValueError(f"{folder} was fine-tuned with --prompt-order {saved}, so its prompts "
                         f"must be {saved}-first: drop --prompt-order {flag} (the folder says "
                         f"which) or pass --prompt-order {saved}")
    return flag
