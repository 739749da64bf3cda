"""Held-out token slices that give every source of a split its share (eval's and the logs' default).

The split files are sorted by source, so the first N tokens of a split are all one source
(Austen in val and test). `mixed_slice` takes instead the first tokens of every source's text,
an equal share each, in source order: fixed and deterministic (no random draw), so every run,
sweep and `eval` scores the same tokens. `source_slices` gives each source's own first tokens,
chapter 8's per-source protocol. Taught in: notebooks/05b_spikellm_context.ipynb
"""

import numpy as np

SEP = "\n\n"  # how a source's documents are joined (as corpus_text and source_texts do)
MARGIN = 32  # tokens encoded past the ones kept, so the cut of the text changes none of them


def _source_texts(docs) -> dict:
    texts = {}
    for doc in docs:
        texts.setdefault(doc.get("source", ""), []).append(doc["text"])  # no source: one share
    return {source: SEP.join(parts) for source, parts in sorted(texts.items())}


def _docs(docs, split):
    if docs is None:
        from spike_lib.data.corpus import load_corpus

        docs = load_corpus(split)
    docs = list(docs)
    if not docs:
        raise ValueError("no documents to take a held-out slice from: pass a non-empty split")
    return docs


def encode_prefix(tok, text, n_tokens) -> np.ndarray:
    """tok.encode(text)[:n_tokens], encoding only as much of the text as that needs."""
    chars = 8 * n_tokens + 256
    while True:
        ids = tok.encode(text[:chars])
        if chars >= len(text) or len(ids) >= n_tokens + MARGIN:
            return np.asarray(ids[:n_tokens], dtype=np.int64)
        chars *= 2


def source_slices(tok, n_tokens, docs=None, split="val") -> dict:
    """{source: the first n_tokens + 1 token ids of its documents joined by blank lines}.

    n_tokens + 1 ids give n_tokens predictions; a source with less text gives all it has.
    """
    from spike_lib.core.config import check_range

    check_range("n_tokens", n_tokens, 1, kind=int)
    return {src: encode_prefix(tok, text, n_tokens + 1)
            for src, text in _source_texts(_docs(docs, split)).items()}


def shares(n_total, available) -> list:
    """Split n_total tokens over sources as equally as their lengths allow (water filling):
    a source shorter than its equal share gives all it has and the rest is shared again."""
    take = [0] * len(available)
    left, open_ = n_total, sorted(range(len(available)), key=lambda i: (available[i], i))
    while open_ and left > 0:
        each, extra = divmod(left, len(open_))
        i = open_[0]
        if available[i] <= each:  # the shortest cannot fill an equal share
            take[i] = available[i]
            left -= available[i]
            open_.pop(0)
            continue
        for rank, j in enumerate(sorted(open_)):  # equal shares, the first sources one more
            take[j] = min(available[j], each + (rank < extra))
        left = 0
    return take


def mixed_slice(tok, n_tokens, docs=None, split="val") -> np.ndarray:
    """n_tokens + 1 held-out ids (n_tokens predictions): an equal share from each source.

    Sources in alphabetical order; each gives the first tokens of its documents joined by blank
    lines (`source_slices`); shares differ by at most one token unless a source is too short.
    With one source this is the first n_tokens + 1 tokens of the split, as before.
    """
    pieces = source_slices(tok, n_tokens, docs, split)
    take = shares(n_tokens + 1, [len(p) for p in pieces.values()])
    ids = np.concatenate([p[:k] for p, k in zip(pieces.values(), take)])
    if len(ids) < 2:
        raise ValueError("the held-out text has fewer than 2 tokens: nothing to predict")
    return ids


def slice_sources(tok, n_tokens, docs=None, split="val") -> dict:
    """{source: tokens it gives to mixed_slice(tok, n_tokens, ...)}: to document a slice."""
    pieces = source_slices(tok, n_tokens, docs, split)
    return dict(zip(pieces, shares(n_tokens + 1, [len(p) for p in pieces.values()])))


SLICES = ("mixed", "first")


def heldout_ids(tok, max_tokens, split="val", how="mixed", docs=None) -> np.ndarray:
    """The max_tokens + 1 ids that `eval` and the training logs score on a split.

    how="mixed" (the default): `mixed_slice`, an equal share of every source; how="first": the
    first tokens of the split's text (documents joined by blank lines), all from its first source.
    """
    from spike_lib.core.config import check_choice, check_range

    check_choice("slice", how, SLICES)
    check_range("max_tokens", max_tokens, 1, kind=int)
    if how == "mixed":
        return mixed_slice(tok, max_tokens, docs, split)
    text = SEP.join(d["text"] for d in _docs(docs, split))
    return encode_prefix(tok, text, max_tokens + 1)
