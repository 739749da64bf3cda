"""Extractive QA with a span head in NumPy: start and end logits per context token, by hand.

The question comes first, then the context ("Question: ...\\nContext: ..."), so every context
token has read the question before its hidden state is formed; a linear head reads the final
hidden states and scores each context token as the answer's first and last token (Devlin et
al. 2019, BERT on SQuAD). Token-to-character offsets come from the tokenizer's own bytes.
Taught in: notebooks/09b_span_qa.ipynb
"""

import numpy as np

from spike_lib.core.config import check_choice, check_range
from spike_lib.core.constants import NEG_INF, SPAN_WINDOWS
from spike_lib.numpy_impl.layers import _check_rng
from spike_lib.numpy_impl.module import Module

SPAN_PROMPT = "Question: {question}\nContext:"  # the context follows as " <context>"
MAX_ANSWER_TOKENS = 16  # the longest span best_span considers
WINDOWS = SPAN_WINDOWS  # hidden states per logit: h_i alone, or h_(i-1), h_i, h_(i+1)
NEG = NEG_INF  # the logit of a position that cannot hold the answer (question, padding)


# ---------------------------------------------------------------- tokens and characters
def token_offsets(tok, text) -> tuple:
    """(ids, offsets): offsets[k] = (start, end) in characters of text that token k covers.

    Computed from the tokenizer's bytes (decode is lossless), so they are exact for any
    tokenizer of spike_lib. A token that holds part of a multi-byte character covers the
    whole character; leading whitespace is left out of a token's span (" Algiers" covers
    "Algiers"), so text[start:end] of a run of tokens never starts with a space.
    """
    ids = tok.encode(text)
    pieces = [tok.token_bytes[i] for i in ids]
    if b"".join(pieces) != text.encode("utf-8"):
        raise ValueError("the tokenizer's bytes do not spell the text: offsets need a "
                         "lossless tokenizer (every spike_lib tokenizer is one)")
    char_of_byte = np.repeat(np.arange(len(text)), [len(c.encode("utf-8")) for c in text])
    char_of_byte = np.append(char_of_byte, len(text))  # the end of the text
    ends = np.cumsum([len(p) for p in pieces], dtype=np.int64)
    starts = ends - [len(p) for p in pieces]
    offsets = np.zeros((len(ids), 2), dtype=np.int64)
    for k, (b0, b1) in enumerate(zip(starts, ends)):
        c0 = char_of_byte[b0]
        c1 = char_of_byte[b1 - 1] + 1 if b1 > b0 else c0
        while c0 < c1 - 1 and text[c0].isspace():
            c0 += 1
        offsets[k] = (c0, c1)
    return ids, offsets


def encode_span_input(tok, question, context, block_size, first=0) -> dict:
    """Token ids of "Question: q\\nContext: c" cut to block_size tokens, and where the context is.

    The context part holds context tokens first, first + 1, ... as many as fit (a window of a
    long context: see span_windows). Returns ids, ctx_start (index of the first context token
    in ids), offsets (characters of the context covered by each kept context token), first,
    n_context (context tokens in all) and kept_chars (where the kept tokens end, in characters).
    ValueError if the question leaves no room for the context or the context is empty.
    """
    if not context.strip():
        raise ValueError("the context is empty: there is no span to answer from; give the "
                         "text that holds the answer")
    prefix = tok.encode(SPAN_PROMPT.format(question=question))
    room = block_size - len(prefix)
    if room < 1:
        raise ValueError(f"the question needs {len(prefix)} tokens with its prompt, but the "
                         f"model reads block_size={block_size}: no room is left for the "
                         "context; shorten the question")
    ids, offsets = token_offsets(tok, " " + context)
    if not 0 <= first < len(ids):
        raise ValueError(f"first={first} is not a context token (the context has {len(ids)})")
    offsets = np.maximum(offsets - 1, 0)[first: first + room]  # characters of context
    return {"ids": prefix + ids[first: first + room], "ctx_start": len(prefix),
            "offsets": offsets, "first": first, "n_context": len(ids), "room": room,
            "kept_chars": int(offsets[-1, 1])}


def span_windows(tok, question, context, block_size, stride=None) -> list:
    """encode_span_input of every window a long context needs (BERT's "doc stride").

    A context that fits gives one window. A longer one is read in windows of `room` context
    tokens that start `stride` tokens apart (default room // 2), the last one ending at the
    context's end: every token is then seen in some window after at least half a window of
    its context (a causal model's state there has read what comes before it).
    """
    ex = encode_span_input(tok, question, context, block_size)
    room, n = ex["room"], ex["n_context"]
    stride = max(1, room // 2) if stride is None else stride
    check_range("stride", stride, 1, kind=int)
    out, first = [ex], 0
    while first + room < n:
        first = min(first + stride, n - room)
        out.append(encode_span_input(tok, question, context, block_size, first))
    return out


def char_to_tokens(offsets, start, end) -> tuple:
    """(first, last) token whose spans overlap characters [start, end), or None if cut away."""
    hit = np.flatnonzero((offsets[:, 1] > start) & (offsets[:, 0] < end))
    if end > offsets[-1, 1] or not hit.size:
        return None
    return int(hit[0]), int(hit[-1])


def encode_span_example(tok, rec, block_size, windows=False) -> dict:
    """encode_span_input of a QA record plus the gold tokens (start, end: indices among the
    kept context tokens, None when the cut removed the answer) and exact (the tokens spell the
    gold answer exactly; False when the answer starts or ends inside a token).

    windows=True: when the first window cuts the answer away, the first window of
    span_windows that holds it is used instead (start is None only if none does)."""
    from spike_lib.data.qa import answer_span

    c0, c1 = answer_span(rec)
    ex = encode_span_input(tok, rec["question"], rec["context"], block_size)
    span = char_to_tokens(ex["offsets"], c0, c1)
    if span is None and windows:
        for cand in span_windows(tok, rec["question"], rec["context"], block_size)[1:]:
            span = char_to_tokens(cand["offsets"], c0, c1)
            if span is not None:
                ex = cand
                break
    ex["start"], ex["end"] = span if span else (None, None)
    ex["exact"] = bool(span) and (ex["offsets"][span[0], 0], ex["offsets"][span[1], 1]) == (c0, c1)
    return ex


def span_text(context, offsets, start, end) -> str:
    """The context characters of context tokens start..end (inclusive)."""
    return context[int(offsets[start, 0]): int(offsets[end, 1])]


# ---------------------------------------------------------------- batches
def span_batch(examples, pad_id) -> tuple:
    """(x, ctx_mask, start, end): ids (B, L) right-padded to the longest row, a mask of the
    context tokens (B, L) and the gold positions (B,) in the sequence (-1 when unknown)."""
    width = max(len(ex["ids"]) for ex in examples)
    x = np.full((len(examples), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(examples), width), dtype=bool)
    start = np.full(len(examples), -1, dtype=np.int64)
    end = np.full(len(examples), -1, dtype=np.int64)
    for b, ex in enumerate(examples):
        n, c = len(ex["ids"]), ex["ctx_start"]
        x[b, :n] = ex["ids"]
        mask[b, c:n] = True
        if ex.get("start") is not None:
            start[b], end[b] = c + ex["start"], c + ex["end"]
    return x, mask, start, end


# ---------------------------------------------------------------- the head
def shift_window(h, window):
    """(B, L, window D): h_i alone (window 1) or [h_(i-1), h_i, h_(i+1)] with zeros at the ends."""
    if window == 1:
        return h
    prev, nxt = np.zeros_like(h), np.zeros_like(h)
    prev[:, 1:], nxt[:, :-1] = h[:, :-1], h[:, 1:]
    return np.concatenate([prev, h, nxt], axis=-1)


def unshift_window(dX, window):
    """The backward of shift_window: dh (B, L, D) from dX (B, L, window D)."""
    if window == 1:
        return dX
    d = dX.shape[-1] // 3
    dh = dX[..., d: 2 * d].copy()
    dh[:, :-1] += dX[:, 1:, :d]  # h_(i-1) fed position i
    dh[:, 1:] += dX[:, :-1, 2 * d:]  # h_(i+1) fed position i
    return dh


def prompt_mean(h, context):
    """(q, prompt, n): q (B, D) the mean of h over the positions before each row's first
    context position (the prompt "Question: ...\nContext:"), prompt (B, L) their mask and n
    (B, 1) their count. ValueError if a row has no prompt or no context position."""
    context = np.asarray(context, dtype=bool)
    if context.shape != h.shape[:2]:
        raise ValueError(f"the context mask has shape {context.shape}, the hidden states "
                         f"{h.shape[:2]}: pass the (B, L) mask of context tokens")
    prompt = np.cumsum(context, axis=1) == 0  # before the first context token
    n = prompt.sum(axis=1, keepdims=True)
    if not (context.any(axis=1) & (n[:, 0] > 0)).all():
        raise ValueError("a row has no question before its context or no context: a span "
                         "input is the question's prompt, then the context")
    q = (prompt[..., None] * h).sum(axis=1) / n
    return q, prompt, n


class SpanHead(Module):
    """Start and end logits per token from the final hidden states (B, L, D) -> (B, L, 2):

        X_i = [h_(i-1), h_i, h_(i+1)]  (window 3; X_i = h_i for window 1; h_0 = h_(L+1) = 0)
        logits_i = X_i W,  W (window D, 2):  logits[..., 0] start, logits[..., 1] end
    A causal model's h_i has not read token i + 1, so the neighbours tell the head what comes
    before and after a candidate (as an LM's h_(i-1) predicts token i). W starts at zero
    (uniform spans). No bias: the softmax over positions cancels any shift common to all
    of them, so a bias would get a zero gradient. valid (B, L) zeroes padding first.

    question=True adds a score that reads the question directly (the bilinear match of
    DrQA, Chen et al. 2017):
        q = mean of h over the prompt (the positions before the context),
        logits_i[k] += h_i^T U_k q,  U (2, D, D), zero at start,
    so a context token's score depends on what is asked even where its own hidden state kept
    little of the question. forward then needs context, the (B, L) mask of context tokens.
    """

    def __init__(self, n_embd, window=3, rng=None, question=False):
        super().__init__()
        check_range("n_embd", n_embd, 1, kind=int)
        check_choice("window", window, WINDOWS)
        if rng is not None:
            _check_rng(rng)
        self.n_embd, self.window, self.question = n_embd, window, bool(question)
        self.add_param("W", np.zeros((window * n_embd, 2), dtype=np.float32))
        if self.question:
            self.add_param("U", np.zeros((2, n_embd, n_embd), dtype=np.float32))

    def forward(self, h, valid=None, context=None):
        if h.ndim != 3 or h.shape[-1] != self.n_embd:
            raise ValueError(f"the span head reads hidden states (B, L, {self.n_embd}), got "
                             f"shape {h.shape}: is the head for another base model?")
        self.valid = None if valid is None else np.asarray(valid, dtype=h.dtype)[..., None]
        if self.valid is not None:
            h = h * self.valid
        self.X = shift_window(h, self.window)  # (B, L, window D)
        logits = self.X @ self.params["W"]  # (B, L, 2)
        if not self.question:
            return logits
        if context is None:
            raise ValueError("this span head reads the question (question=True): pass "
                             "context, the (B, L) mask of context tokens")
        q, prompt, n = prompt_mean(h, context)
        uq = np.einsum("kde,be->bkd", self.params["U"], q)  # U_k q, (B, 2, D)
        self.q_cache = (h, q, uq, prompt, n)
        return logits + np.einsum("bld,bkd->blk", h, uq)

    def backward(self, dlogits):
        X = self.X
        self.grads["W"] += X.reshape(-1, X.shape[-1]).T @ dlogits.reshape(-1, 2)
        dh = unshift_window(dlogits @ self.params["W"].T, self.window)
        if self.question:
            h, q, uq, prompt, n = self.q_cache
            duq = np.einsum("blk,bld->bkd", dlogits, h)  # (B, 2, D)
            self.grads["U"] += np.einsum("bkd,be->kde", duq, q)
            dq = np.einsum("bkd,kde->be", duq, self.params["U"])  # (B, D)
            dh = dh + np.einsum("blk,bkd->bld", dlogits, uq) + prompt[..., None] * (dq / n)[:, None]
        return dh if self.valid is None else dh * self.valid


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def span_loss(logits, mask, start, end) -> tuple:
    """(loss, dlogits): the mean over rows of (CE(start) + CE(end)) / 2, softmax over the
    context positions only (mask); rows with start < 0 (answer cut away) are left out."""
    rows = np.flatnonzero(np.asarray(start) >= 0)
    dlogits = np.zeros_like(logits)
    if not rows.size:
        raise ValueError("no row of the batch has its answer inside the window")
    loss = 0.0
    for k, gold in ((0, start), (1, end)):
        z = np.where(mask[rows], logits[rows, :, k], NEG)  # (R, L)
        logp = _log_softmax(z)
        loss -= logp[np.arange(rows.size), gold[rows]].mean() / 2
        dz = np.exp(logp)
        dz[np.arange(rows.size), gold[rows]] -= 1.0
        dlogits[rows, :, k] = dz * mask[rows] / (2 * rows.size)
    return float(loss), dlogits


def best_span(logits, mask, max_len=MAX_ANSWER_TOKENS) -> tuple:
    """(start, end, score) per row: the i <= j < i + max_len, both in mask, that maximise
    start_logit[i] + end_logit[j]. Arrays of shape (B,); positions are in the sequence."""
    check_range("max_len", max_len, 1, kind=int)
    logits, mask = np.asarray(logits, dtype=np.float64), np.asarray(mask, dtype=bool)
    if not mask.any(axis=1).all():
        raise ValueError("a row has no context token: there is no possible span")
    s = np.where(mask, logits[..., 0], -np.inf)
    e = np.where(mask, logits[..., 1], -np.inf)
    n = s.shape[1]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    band = (j >= i) & (j < i + max_len)  # (L, L)
    score = np.where(band, s[:, :, None] + e[:, None, :], -np.inf)  # (B, L, L)
    flat = score.reshape(len(s), -1).argmax(axis=1)
    return flat // n, flat % n, score.reshape(len(s), -1)[np.arange(len(s)), flat]


# ---------------------------------------------------------------- the whole model
def hidden_backward(model, dh):
    """Backpropagate dL/dh (B, L, D) of SpikeLLM.hidden through ln_f, the blocks and the
    embeddings (the lines of SpikeLLM.backward below the readout); accumulates grads."""
    m = model.modules
    dxm = m["ln_f"].backward(dh) / model.num_steps  # (B, L, D), the mean over T
    dx = np.broadcast_to(dxm, (model.num_steps,) + dxm.shape)  # (T, B, L, D)
    for block in reversed(model.blocks):
        dx = block.backward(dx)
    dx0 = dx.sum(axis=0)  # direct encoding: the same x0 at every step
    m["tok_emb"].backward(dx0)
    m["pos_emb"].backward(dx0.sum(axis=0))


class SpanQA(Module):
    """A SpikeLLM ("base") and a SpanHead ("head"): logits = head(base.hidden(idx)), (B, L, 2).

    Parameter names are "base.<SpikeLLM name>", "head.W" (and "head.U" with question=True).
    context: the (B, L) mask of context tokens (needed by a question-reading head; a plain
    head ignores it).
    """

    def __init__(self, base, window=3, rng=None, question=False):
        super().__init__()
        self.cfg = base.cfg
        self.add_module("base", base)
        self.add_module("head", SpanHead(base.cfg.n_embd, window, rng, question))

    def train(self, mode=True):
        self.modules["base"].train(mode)
        return self

    def forward(self, idx, valid=None, context=None):
        return self.modules["head"](self.modules["base"].hidden(idx), valid, context)

    def backward(self, dlogits):
        hidden_backward(self.modules["base"], self.modules["head"].backward(dlogits))


def answer_spans(model, tok, questions, contexts, max_len=MAX_ANSWER_TOKENS, batch_size=32,
                 stride=None):
    """The answer text of each (question, context) pair and its character span in the context.

    A context longer than the model's window is read in overlapping windows (span_windows,
    `stride`); the answer is the best-scoring span over all of them. Returns a list of dicts
    {answer, start, end, score, windows}; works with either backend's SpanQA.
    """
    block = model.cfg.block_size
    encoded, owner, n_windows = [], [], []
    for k, (q, c) in enumerate(zip(questions, contexts)):
        wins = span_windows(tok, q, c, block, stride)
        encoded += wins
        owner += [k] * len(wins)
        n_windows.append(len(wins))
    best = [None] * len(questions)
    model.train(False)
    for b in range(0, len(encoded), batch_size):
        chunk = encoded[b: b + batch_size]
        x, mask, _, _ = span_batch(chunk, tok.eot_id)
        valid = np.arange(x.shape[1])[None] < np.array([len(ex["ids"]) for ex in chunk])[:, None]
        logits = np.asarray(model(x, valid, mask), dtype=np.float32)
        starts, ends, scores = best_span(logits, mask, max_len)
        for ex, s, e, sc, k in zip(chunk, starts, ends, scores, owner[b: b + batch_size]):
            if best[k] is None or sc > best[k]["score"]:
                s, e = s - ex["ctx_start"], e - ex["ctx_start"]
                c0, c1 = int(ex["offsets"][s, 0]), int(ex["offsets"][e, 1])
                best[k] = {"answer": contexts[k][c0:c1], "start": c0, "end": c1,
                           "score": float(sc), "windows": n_windows[k]}
    return best
