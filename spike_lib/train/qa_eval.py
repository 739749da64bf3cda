"""`python -m spike_lib qa-eval`: exact match and token F1 of greedy answers or best spans, SQuAD-style.

Taught in: notebooks/09_finetuning_lora.ipynb
"""

import re
import string
from collections import Counter

import numpy as np

from spike_lib.core.config import check_range
from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.train.finetune import answer_texts, load_qa_file
from spike_lib.train.prompt import (
    ANSWER_TOKENS,
    ORDERS,
    STOP,
    answer_batch,
    encode_example,
    encode_examples,
    resolve_prompt_order,
)

DERIVED_RATES = (".kv", ".out_in")  # products of spikes, not neurons (as in cmd_eval)


# ---------------------------------------------------------------- SQuAD metrics
def normalize_answer(text) -> str:
    """Lower case, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD v1.1)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction, golds) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def token_f1(prediction, gold) -> float:
    """F1 of the bags of normalised tokens: 2 P R / (P + R), P = common / |pred|, R = common / |gold|."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def f1_score(prediction, golds) -> float:
    """The best token F1 over the gold answers."""
    return max(token_f1(prediction, g) for g in golds)


# ---------------------------------------------------------------- greedy answers
def _logits(model, x):
    return np.asarray(model(x), dtype=np.float32)


def greedy_answers(model, tok, prompts, max_new_tokens=ANSWER_TOKENS, batch_size=32) -> list:
    """Greedy continuation of each prompt (a list of ids) until a newline, end of text or
    max_new_tokens; returns the answer strings (the newline not included).

    Prompts run in batches, right-padded: the model is causal, so the padding after a row's
    last token changes none of its logits. Finished rows leave the batch.
    """
    check_range("max_new_tokens", max_new_tokens, 1, kind=int)
    check_range("batch_size", batch_size, 1, kind=int)
    block, pad, eot = model.cfg.block_size, tok.eot_id, tok.eot_id
    too_long = [i for i, p in enumerate(prompts) if len(p) + max_new_tokens - 1 > block]
    if too_long:
        raise ValueError(f"prompt {too_long[0]} has {len(prompts[too_long[0]])} tokens: with "
                         f"{max_new_tokens} answer tokens it exceeds block_size={block}; "
                         "encode it with spike_lib.train.finetune.encode_example")
    model.train(False)
    out = [""] * len(prompts)
    order = np.argsort([len(p) for p in prompts], kind="stable")  # similar lengths together
    for b in range(0, len(order), batch_size):
        rows = {int(i): list(prompts[i]) for i in order[b: b + batch_size]}
        gen = {i: [] for i in rows}
        for _ in range(max_new_tokens):
            if not rows:
                break
            ids = list(rows)
            width = max(len(rows[i]) for i in ids)
            x = np.full((len(ids), width), pad, dtype=np.int64)
            for r, i in enumerate(ids):
                x[r, : len(rows[i])] = rows[i]
            logits = _logits(model, x)
            for r, i in enumerate(ids):
                nxt = int(np.argmax(logits[r, len(rows[i]) - 1]))
                if nxt == eot:
                    del rows[i]
                    continue
                gen[i].append(nxt)
                rows[i].append(nxt)
                if STOP in tok.decode(gen[i]):
                    del rows[i]
        for i, ids in gen.items():
            out[i] = tok.decode(ids).split(STOP)[0].strip()
    return out


def firing_rate(model, prompts, n=16):
    """Mean spikes per neuron per timestep over every LIF, on the first n prompts (no padding)."""
    if not prompts:
        return None
    width = min(len(p) for p in prompts[:n])
    model.train(False)
    model(np.array([p[:width] for p in prompts[:n]], dtype=np.int64))
    rates = [v for k, v in model.firing_rates().items() if not k.endswith(DERIVED_RATES)]
    return float(np.mean(rates)) if rates else None


def answer_loss(model, tok, records, answer_tokens=ANSWER_TOKENS, batch_size=32,
                order="context"):
    """Eq. 9.1 on records: mean nats per gold answer token given its prompt (None if none fit).

    Records whose answer was cut away or is longer than answer_tokens are left out, as in
    training; prompts in `order` (spike_lib.train.prompt). Finer than exact match: it moves
    before greedy answers become right.
    """
    from spike_lib.numpy_impl.layers import cross_entropy

    examples, _ = encode_examples(tok, records, model.cfg.block_size, answer_tokens, order)
    total, count = 0.0, 0
    model.train(False)
    for b in range(0, len(examples), batch_size):
        x, y = answer_batch(examples[b: b + batch_size], model.cfg.block_size, tok.eot_id)
        width = max(len(ex["prompt"]) + len(ex["answer"]) - 1 for ex in examples[b: b + batch_size])
        loss, _ = cross_entropy(_logits(model, x[:, :width]), y[:, :width], ignore_index=IGNORE_INDEX)
        n = int((y != IGNORE_INDEX).sum())
        total, count = total + loss * n, count + n
    return total / count if count else None


def evaluate_qa(model, tok, records, answer_tokens=ANSWER_TOKENS, batch_size=32,
                order="context") -> dict:
    """Exact match and F1 (in %, SQuAD-style) of the greedy answers to records.

    Prompts are in `order` ("context" or "question" first, as the model was fine-tuned). Each
    context is cut (at a word) so that prompt + answer_tokens fit in the block, as in
    training; questions whose gold answer was cut away still count (they are hard to get
    right): answer_cut says how many there were. Also returns answer_loss (Eq. 9.1 on the
    gold answers), the firing rate and the answers.
    """
    block = model.cfg.block_size
    encoded = [encode_example(tok, rec, block, answer_tokens, order) for rec in records]
    prompts = [ex["prompt"] for ex in encoded]
    preds = greedy_answers(model, tok, prompts, answer_tokens, batch_size)
    em = [exact_match(p, answer_texts(r)) for p, r in zip(preds, records)]
    f1 = [f1_score(p, answer_texts(r)) for p, r in zip(preds, records)]
    return {"exact_match": 100.0 * float(np.mean(em)), "f1": 100.0 * float(np.mean(f1)),
            "n": len(records), "answer_cut": sum(not ex["answer_kept"] for ex in encoded),
            "answer_loss": answer_loss(model, tok, records, answer_tokens, batch_size, order),
            "firing_rate": firing_rate(model, prompts), "predictions": preds}


# ---------------------------------------------------------------- the command
def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="a QA model folder (data/checkpoints/book-qa: it names its head and "
                             "adapter), or a checkpoint or run folder (the base with --adapter)")
    parser.add_argument("--adapter", help="a LoRA adapter folder fine-tuned on --checkpoint")
    parser.add_argument("--head", choices=("span", "generate"),
                        help="span (best span of the context) or generate (greedy answer); "
                             "default: the head a QA model folder holds, else generate")
    parser.add_argument("--qa-file", required=True, help="JSONL of {context, question, answers}")
    parser.add_argument("--limit", type=int, help="evaluate the first N questions only")
    parser.add_argument("--backend", choices=("numpy", "mlx"), default="mlx", help="mlx (default)")
    parser.add_argument("--answer-tokens", type=int, default=ANSWER_TOKENS,
                        help=f"most tokens per answer, generated or in a span ({ANSWER_TOKENS})")
    parser.add_argument("--batch-size", type=int, default=32, help="questions per forward pass")
    parser.add_argument("--prompt-order", choices=ORDERS,
                        help="generate: context or question first; default: the order the "
                             "fine-tuned folder records (context for a base model)")


def load_model(checkpoint, adapter=None, backend="mlx"):
    """(model, tokenizer) of a checkpoint, with a LoRA adapter put on it when one is given."""
    from spike_lib.train.finetune import load_base

    model, tok, folder = load_base(checkpoint, backend)
    if adapter is not None:
        from spike_lib.numpy_impl.lora import fingerprint, load_adapter

        apply = None
        if backend == "mlx":
            from spike_lib.mlx_impl.lora import apply_lora as apply
        load_adapter(adapter, model, fingerprint(folder), apply=apply)
    return model, tok


def run(args) -> dict:
    if args.limit is not None:
        check_range("limit", args.limit, 1, kind=int)
    from spike_lib.train import span_qa
    from spike_lib.train.qa_baselines import score

    records = load_qa_file(args.qa_file, args.limit)
    qa_folder = span_qa.is_qa_folder(args.checkpoint)
    if qa_folder:
        if args.adapter:
            raise ValueError(f"{args.checkpoint} is a QA model folder that holds its own "
                             "adapter: drop --adapter")
        head = span_qa.read_qa_config(args.checkpoint)["head"]
        if args.head not in (None, head):
            raise ValueError(f"{args.checkpoint} holds a {head} head, not a {args.head} head: "
                             f"drop --head or pass --head {head}")
    else:
        head = args.head or "generate"
        if head == "span":
            raise ValueError(f"--head span needs a QA model folder with a trained span head "
                             f"(qa.json + head.npz, e.g. data/checkpoints/book-qa); "
                             f"{args.checkpoint} is a plain checkpoint: use --head generate")
    flag = getattr(args, "prompt_order", None)
    if head == "span" and flag is not None:
        raise ValueError("--prompt-order is an option of the generate head: the span head "
                         "always reads the question first; drop --prompt-order")
    # the order the fine-tuned folder records, checked before the model is loaded
    order = None if head == "span" else resolve_prompt_order(
        flag, args.adapter or args.checkpoint, adapter=bool(args.adapter))
    if qa_folder:
        model, tok, _ = span_qa.load_qa_model(args.checkpoint, args.backend)
        res = (span_qa.evaluate_span(model, tok, records, args.answer_tokens, args.batch_size)
               if head == "span" else
               evaluate_qa(model, tok, records, args.answer_tokens, args.batch_size, order))
    else:
        model, tok = load_model(args.checkpoint, args.adapter, args.backend)
        res = evaluate_qa(model, tok, records, args.answer_tokens, args.batch_size, order)
    per_type = score(res["predictions"], records)["per_type"]
    return {**{k: res[k] for k in ("exact_match", "f1", "n")}, "head": head,
            **({} if order is None else {"prompt_order": order}),
            "exact_match_by_type": {t: round(v["exact_match"], 1) for t, v in per_type.items()}}
