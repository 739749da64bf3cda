"""Count n-gram language models (orders 1-5) on token ids, scored with exactly `eval`'s protocol.

The reference point for every language model of the course, as makemore starts from a bigram.
An n-gram of order n predicts token y from the n - 1 tokens before it, from counts on the
training ids. Smoothings (each gives every token of the vocabulary a probability > 0):

  add1  Laplace: P(w | h) = (c(h w) + 1) / (c(h) + V), no interpolation.
  wb    Witten-Bell interpolation (Witten & Bell 1991), parameter free:
        P_k(w | h) = (c(h w) + N1+(h .) P_{k-1}(w | h')) / (c(h) + N1+(h .)).
  kn    interpolated Kneser-Ney (Kneser & Ney 1995; Chen & Goodman 1998), one discount per
        order D_k = n1 / (n1 + 2 n2) (n1, n2: k-grams seen once, twice), clipped to [0.05, 1]:
        P_k(w | h) = (max(c(h w) - D_k, 0) + D_k N1+(h .) P_{k-1}(w | h')) / c(h),
        where the lower orders count continuations, c(h' w) = N1+(. h' w).
h' is h without its first token; the chain ends in the uniform 1/V; a context never seen
(c(h) = 0) falls back to P_{k-1}. Taught in: notebooks/05b_spikellm_context.ipynb and notebooks/06_spikellm_training.ipynb
"""

import math

import numpy as np

SMOOTHINGS = ("kn", "wb", "add1")
MAX_ORDER = 5


def _rows(ids):
    """ids as a list of 1-D int64 arrays: one sequence, a (R, L) array of rows, or a list."""
    if isinstance(ids, np.ndarray) and ids.ndim == 2:
        return [np.asarray(r, dtype=np.int64) for r in ids]
    if isinstance(ids, (list, tuple)) and ids and not np.isscalar(ids[0]):
        return [np.asarray(r, dtype=np.int64).ravel() for r in ids]
    return [np.asarray(ids, dtype=np.int64).ravel()]


def _lookup(keys, values, query):
    """values[keys == query] for each query (0 where the key is absent); keys sorted."""
    if keys.size == 0:
        return np.zeros(query.shape, values.dtype)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return np.where(keys[pos] == query, values[pos], 0)


class NGramLM:
    """A count n-gram model of `order` (1-5) over `vocab_size` token ids; fit, then score.

    fit(ids) counts the k-grams (k = 1..order) inside each sequence of ids (n-grams never span
    two rows). prob(contexts, targets) is P(target | context); distribution(context) the whole
    vector. contexts are (M, order - 1) ids, -1 where a context is shorter (left padding).
    """

    def __init__(self, order=3, vocab_size=None, smoothing="kn"):
        from spike_lib.core.config import check_choice, check_range

        check_range("order", order, 1, MAX_ORDER, kind=int)
        check_range("vocab_size", vocab_size, 1, kind=int)
        check_choice("smoothing", smoothing, SMOOTHINGS)
        if vocab_size ** order >= 2**63:
            raise ValueError(f"order={order} with vocab_size={vocab_size} overflows the int64 "
                             "n-gram keys: use a lower order")
        self.order, self.vocab_size, self.smoothing = order, vocab_size, smoothing
        self.tables = None
        self.n_train = 0

    def __repr__(self):
        return (f"NGramLM(order={self.order}, vocab_size={self.vocab_size}, "
                f"smoothing={self.smoothing!r}, n_train={self.n_train:,})")

    # -- counting ------------------------------------------------------------------------------
    def fit(self, ids):
        """Count every k-gram, k <= order, of ids (1-D, (R, L) rows or a list); returns self."""
        rows = _rows(ids)
        v = self.vocab_size
        for r in rows:
            if r.size and (r.min() < 0 or r.max() >= v):
                raise ValueError(f"token ids range over {r.min()}..{r.max()} but vocab_size={v}:"
                                 " fit on ids of the tokenizer the model was built for")
        self.n_train = int(sum(r.size for r in rows))
        if self.n_train == 0:
            raise ValueError("nothing to count: fit needs at least one token")
        raw = []  # raw[k - 1]: (sorted unique k-gram keys, counts)
        keys = [r.copy() for r in rows]
        for k in range(1, self.order + 1):
            if k > 1:
                keys = [kk[:-1] * v + r[k - 1:] for kk, r in zip(keys, rows)]
            flat = np.concatenate(keys) if keys else np.zeros(0, np.int64)
            raw.append(np.unique(flat, return_counts=True))
        self.tables = []
        for k in range(1, self.order + 1):
            ukeys, counts = raw[k - 1]
            if self.smoothing == "kn" and k < self.order:  # continuation counts N1+(. h w)
                ukeys, counts = np.unique(raw[k][0] % v**k, return_counts=True)
            self.tables.append(self._table(k, ukeys, counts))
        return self

    def _table(self, k, keys, counts):
        """Counts of order k and, per context h (the first k - 1 tokens), c(h) and N1+(h .)."""
        counts = counts.astype(np.int64)
        ctx = keys // self.vocab_size  # sorted, because keys are
        ctx_keys, starts = np.unique(ctx, return_index=True)
        totals = np.add.reduceat(counts, starts) if counts.size else counts
        types = np.diff(np.append(starts, counts.size))
        n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
        discount = min(max(n1 / (n1 + 2 * n2), 0.05), 1.0) if n1 + n2 else 0.5
        return {"keys": keys, "counts": counts, "ctx_keys": ctx_keys, "ctx_totals": totals,
                "ctx_types": types, "discount": discount}

    # -- probabilities -------------------------------------------------------------------------
    def prob(self, contexts, targets):
        """P(targets[m] | contexts[m]) for contexts (M, order - 1) left-padded with -1."""
        if self.tables is None:
            raise ValueError("the model is not fitted: call fit(train_ids) first")
        v, n = self.vocab_size, self.order
        targets = np.asarray(targets, dtype=np.int64).ravel()
        contexts = np.asarray(contexts, dtype=np.int64).reshape(targets.size, n - 1)
        n_ctx = (contexts >= 0).sum(axis=1)  # usable context length of each row
        answer_order = np.minimum(n_ctx + 1, n)  # the highest order each row can use
        p = np.full(targets.size, 1.0 / v)
        h = np.zeros(targets.size, np.int64)  # key of the k - 1 tokens before the target
        for k in range(1, n + 1):
            if k > 1:
                h = h + np.maximum(contexts[:, n - k], 0) * v ** (k - 2)
            t = self.tables[k - 1]
            c = _lookup(t["keys"], t["counts"], h * v + targets).astype(np.float64)
            tot = _lookup(t["ctx_keys"], t["ctx_totals"], h).astype(np.float64)
            typ = _lookup(t["ctx_keys"], t["ctx_types"], h).astype(np.float64)
            if self.smoothing == "add1":  # not interpolated: the answer is its own order's
                p = np.where(answer_order == k, (c + 1.0) / (tot + v), p)
                continue
            if self.smoothing == "wb":
                pk = (c + typ * p) / np.maximum(tot + typ, 1.0)
            else:
                d = t["discount"]
                pk = (np.maximum(c - d, 0.0) + d * typ * p) / np.maximum(tot, 1.0)
            p = np.where((answer_order >= k) & (tot > 0), pk, p)
        return p

    def distribution(self, context):
        """The vector P(. | context) over the vocabulary; context: up to order - 1 ids."""
        context = [int(c) for c in context][-(self.order - 1):] if self.order > 1 else []
        padded = [-1] * (self.order - 1 - len(context)) + context
        ctx = np.tile(np.asarray(padded, np.int64), (self.vocab_size, 1))
        return self.prob(ctx, np.arange(self.vocab_size))

    def logits(self, idx):
        """log P (B, L, V) of the next token at every position of idx (B, L), reading only the
        same row: what a language model's forward pass returns (for tests and probes)."""
        idx = np.atleast_2d(np.asarray(idx, dtype=np.int64))
        b, n_tok = idx.shape
        ctx = np.full((b, n_tok, self.order - 1), -1, np.int64)
        for j in range(1, self.order):  # ctx[..., -j] is the token j - 1 before the position
            ctx[:, j - 1:, self.order - 1 - j] = idx[:, : n_tok - j + 1]
        rows = np.repeat(ctx.reshape(-1, self.order - 1), self.vocab_size, axis=0)
        tgt = np.tile(np.arange(self.vocab_size), b * n_tok)
        return np.log(self.prob(rows, tgt)).reshape(b, n_tok, self.vocab_size)


class NGramModel:
    """An NGramLM that quacks like a SpikeLLM: model(idx) -> (B, L, V) log-probabilities, and a
    cfg with vocab_size and block_size, so `evaluate` and the probes take it unchanged."""

    def __init__(self, lm, block_size=128):
        from types import SimpleNamespace

        self.lm = lm
        self.cfg = SimpleNamespace(vocab_size=lm.vocab_size, block_size=block_size)

    def __call__(self, idx):
        return self.lm.logits(idx)

    def named_modules(self):
        return []

    def train(self, mode=True):
        return self


# -- eval's protocol ---------------------------------------------------------------------------
def eval_contexts(ids, order, block_size=128, context_tokens=None):
    """(contexts (M, order - 1), targets (M,)) of `evaluate`'s windows over ids.

    Target ids[i], i = 1 .. len(ids) - 1, sits in the window starting at s = L floor((i - 1) / L)
    and may read ids[s .. i - 1]: i - s tokens, at most context_tokens (the sliding-window probe);
    the n-gram reads the last order - 1 of them.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    i = np.arange(1, len(ids))
    avail = i - ((i - 1) // block_size) * block_size
    if context_tokens is not None:
        avail = np.minimum(avail, context_tokens)
    ctx = np.full((i.size, order - 1), -1, np.int64)
    for j in range(1, order):  # column order - 1 - j holds the token j before the target
        ok = avail >= j
        ctx[ok, order - 1 - j] = ids[i[ok] - j]
    return ctx, ids[1:]


def evaluate_ngram(lm, ids, n_chars=None, block_size=128, context_tokens=None) -> dict:
    """`numpy_impl.train.evaluate`'s numbers for an n-gram: loss (nats per token), perplexity,
    bits_per_token, total_nats, n_tokens and, given n_chars, bpc = total_nats / (ln 2 n_chars)."""
    from spike_lib.core.scoring import bits_per_char

    ids = np.asarray(ids, dtype=np.int64).ravel()
    if len(ids) < 2:
        raise ValueError("evaluate_ngram needs at least 2 tokens: one to read, one to predict")
    ctx, tgt = eval_contexts(ids, lm.order, block_size, context_tokens)
    total = float(-np.log(lm.prob(ctx, tgt)).sum())
    loss = total / tgt.size
    out = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
           "bits_per_token": loss / math.log(2), "total_nats": total, "n_tokens": int(tgt.size)}
    if n_chars is not None:
        out["bpc"] = bits_per_char(total, n_chars)
    return out


def score_text_ids(lm, tok, ids, block_size=128, context_tokens=None) -> dict:
    """evaluate_ngram on held-out ids, with the characters of the predicted tokens."""
    n_chars = max(1, len(tok.decode(np.asarray(ids[1:]).tolist())))
    return {**evaluate_ngram(lm, ids, n_chars, block_size, context_tokens), "chars": n_chars}


ORDER_NAMES = {1: "unigram", 2: "bigram", 3: "trigram", 4: "4-gram", 5: "5-gram"}


def log_references(tok, val_tokens, block_size=128, orders=(2, 3), train_ids=None,
                   val_docs=None) -> dict:
    """Kneser-Ney n-grams on the slice the training logs score (heldout_ids(tok, val_tokens)):
    {"KN bigram": bpc, "KN trigram": bpc}, the reference lines of a validation BPC plot
    (Dashboard(references=...), draw_runs). train_ids: the ids to count (default: the training
    split); val_docs: the documents a run validated on (train_run's val_docs; default: val split)."""
    from spike_lib.train.heldout import heldout_ids

    ids = heldout_ids(tok, val_tokens, docs=val_docs)
    stream = training_ids(tok) if train_ids is None else train_ids
    n_chars = max(1, len(tok.decode(ids[1:].tolist())))
    return {f"KN {ORDER_NAMES[o]}": evaluate_ngram(NGramLM(o, tok.vocab_size, "kn").fit(stream), ids,
                                                   n_chars, block_size)["bpc"] for o in orders}


def pooled(results) -> dict:
    """Results of several texts as one (chapter 8, Eq. 8.4): sum of nats / (ln 2 sum of chars)."""
    results = list(results)
    nats = sum(r["total_nats"] for r in results)
    tokens, chars = sum(r["n_tokens"] for r in results), sum(r["chars"] for r in results)
    return {"loss": nats / tokens, "bpc": nats / (math.log(2) * chars), "n_tokens": tokens,
            "chars": chars, "total_nats": nats}


# -- what to count -----------------------------------------------------------------------------
def training_ids(tok, docs=None) -> np.ndarray:
    """The training split as one stream, encoded as training encodes it (encode_documents)."""
    from spike_lib.data.batches import encode_documents

    if docs is None:
        from spike_lib.data.corpus import load_corpus

        docs = load_corpus("train")
    return encode_documents(docs, tok.encode)[0]


def run_windows(run, stream, steps=None) -> np.ndarray:
    """The (steps x batch, block_size + 1) token windows a run trained on, replayed from its
    run.json (seed, batch size, block size) and its checkpoint's step: what the model saw.

    stream: the training ids (`training_ids(tok)`); the draw is `runs.Batches`' (seeded per step).
    """
    from pathlib import Path

    from spike_lib.data.batches import batch_iterator
    from spike_lib.train.checkpoint import load_meta
    from spike_lib.train.runs import CKPT, StepRNG, read_run_config

    run = Path(run)
    cfg = read_run_config(run)
    opts, block = cfg["options"], cfg["model"]["block_size"]
    if opts.get("metadata"):
        raise ValueError(f"{run} trained with metadata prefixes: its windows are not plain text")
    if steps is None:
        steps = int(load_meta(run / CKPT if (run / CKPT).is_dir() else run)["step"])
    rng = StepRNG(opts["seed"])
    it = batch_iterator(np.asarray(stream), block, opts["batch_size"], rng)
    rows = []
    for step in range(steps):
        rng.at(step)
        x, y = next(it)
        rows.append(np.concatenate([x, y[:, -1:]], axis=1))
    return np.concatenate(rows)


# -- python -m spike_lib baseline ---------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--tokenizer", default="bpe", help="tokenizer name or JSON file (bpe)")
    parser.add_argument("--order", type=int, default=3, help="n-gram order, 1-5 (3)")
    parser.add_argument("--smoothing", choices=SMOOTHINGS, default="kn",
                        help="kn: interpolated Kneser-Ney (default); wb: Witten-Bell "
                             "interpolation; add1: Laplace, not interpolated")
    parser.add_argument("--split", choices=["val", "test"], default="val",
                        help="held-out split to score (val)")
    parser.add_argument("--slice", choices=["mixed", "first", "sources"], default="mixed",
                        help="mixed: eval's default, an equal share of every source; first: the "
                             "split's first tokens; sources: each source's first --max-tokens "
                             "tokens, pooled (chapter 8's protocol)")
    parser.add_argument("--max-tokens", type=int, default=20_000,
                        help="tokens to predict (per source with --slice sources) (20000)")
    parser.add_argument("--block-size", type=int, default=128,
                        help="eval's window length: context restarts every N tokens (128)")
    parser.add_argument("--context-tokens", type=int,
                        help="each prediction reads at most N previous tokens (as eval's)")
    parser.add_argument("--fit-run", help="count only the windows this run folder trained on "
                                          "(e.g. data/checkpoints/book); default: the whole "
                                          "training split")
    parser.add_argument("--fit-tokens", type=int,
                        help="count only the first N training tokens (quick checks)")
    parser.add_argument("--table", metavar="OUT",
                        help="write the reference table (orders 1-5, every smoothing, both fits, "
                             "the book model's protocols) to OUT as JSON; other options ignored")


def heldout_results(lm, tok, split, how, max_tokens, block_size=128, context_tokens=None):
    """{source or "all": evaluate_ngram result with chars} on the held-out slice; "all" pools."""
    from spike_lib.train.heldout import heldout_ids, source_slices

    if how == "sources":
        per = {src: score_text_ids(lm, tok, ids, block_size, context_tokens)
               for src, ids in source_slices(tok, max_tokens, split=split).items()}
        return {**per, "all": pooled(per.values())}
    ids = heldout_ids(tok, max_tokens, split, how)
    return {"all": score_text_ids(lm, tok, ids, block_size, context_tokens)}


def run(args) -> dict:
    from spike_lib.core.config import check_range
    from spike_lib.train.runs import resolve_tokenizer

    if args.table:
        from spike_lib.core.atomic import write_json

        table = reference_table()
        write_json(args.table, table)
        return {key: res["test_chapter8"]["all"] for key, res in table["results"].items()}

    check_range("max_tokens", args.max_tokens, 1, kind=int)
    check_range("block_size", args.block_size, 1, kind=int)
    if args.context_tokens is not None:
        check_range("context_tokens", args.context_tokens, 1, kind=int)
    tok = resolve_tokenizer(args.tokenizer)
    stream = training_ids(tok)
    if args.fit_tokens is not None:
        check_range("fit_tokens", args.fit_tokens, 1, kind=int)
        stream = stream[: args.fit_tokens]
    data = stream if args.fit_run is None else run_windows(args.fit_run, stream)
    lm = NGramLM(args.order, tok.vocab_size, args.smoothing).fit(data)
    res = heldout_results(lm, tok, args.split, args.slice, args.max_tokens, args.block_size,
                          args.context_tokens)["all"]
    return {"bpc": res["bpc"], "loss": res["loss"], "perplexity": math.exp(res["loss"]),
            "tokens": res["n_tokens"], "chars": res["chars"], "order": args.order,
            "smoothing": args.smoothing, "fit_tokens": lm.n_train}


# -- the stored reference table: data/checkpoints/baselines.json --------------------------------
def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform.machine()."""
    import platform
    from pathlib import Path

    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


TABLE_COMMAND = "python -m spike_lib baseline --table data/checkpoints/baselines.json"


def reference_table(tokenizer="bpe", book_run=None, orders=(1, 2, 3, 4, 5)) -> dict:
    """BPC of the count n-grams on the book model's held-out protocols, fitted two ways.

    fits: "whole" (the 7.3 M-token training split) and "book_run" (the 2.46 M tokens, 19,200
    windows of 129, that data/checkpoints/book trained on). protocols: "test_chapter8" (each
    test source's first 2,560 tokens, pooled, per source too), "val_mixed_8192" (the training
    logs' slice), "val_first_8192" (the old, all-Austen one), "test_mixed_20000" (eval's default).
    """
    from spike_lib.train.bookmodel import shipped_path
    from spike_lib.train.runs import resolve_tokenizer

    tok = resolve_tokenizer(tokenizer)
    stream = training_ids(tok)
    run = shipped_path("book") if book_run is None else book_run
    fits = {"whole": stream, "book_run": run_windows(run, stream)}
    protocols = {"test_chapter8": ("test", "sources", 2560), "val_mixed_8192": ("val", "mixed", 8192),
                 "val_first_8192": ("val", "first", 8192),
                 "test_mixed_20000": ("test", "mixed", 20_000)}
    table = {"command": TABLE_COMMAND, "tokenizer": tokenizer, "block_size": 128,
             "cpu": cpu_name(), "fits": {}, "results": {}}
    for fit, data in fits.items():
        table["fits"][fit] = int(sum(len(r) for r in _rows(data)))
        for order in orders:
            for smoothing in SMOOTHINGS:
                if smoothing == "add1" and order > 2:
                    continue  # add-one beyond bigrams only gets worse (every unseen n-gram pays)
                lm = NGramLM(order, tok.vocab_size, smoothing).fit(data)
                key = f"{fit}/{order}/{smoothing}"
                table["results"][key] = {}
                for proto, (split, how, n) in protocols.items():
                    res = heldout_results(lm, tok, split, how, n)
                    table["results"][key][proto] = {src: round(r["bpc"], 4) for src, r in res.items()}
    return table
