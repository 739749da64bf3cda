"""Random (x, y) batches for next-token prediction, optionally prefixed with document metadata.

Taught in: notebooks/03_corpus.ipynb
"""

import numpy as np

from spike_lib.core.scoring import as_ids

IGNORE_INDEX = -1  # target id that a loss must skip (the metadata prefix is context, not text)


def metadata_prefix(doc: dict) -> str:
    """'<cat:geography> ': the text put before a chunk when metadata conditioning is on."""
    return f"<cat:{doc['category']}> "


def encode_documents(docs, encode, sep: str = "\n\n"):
    """One token stream of all documents (joined by `sep`) and each document's start offset."""
    sep_ids = list(encode(sep)) if sep else []
    pieces, starts, n = [], [], 0
    for i, doc in enumerate(docs):
        ids = list(encode(doc["text"])) + (sep_ids if i < len(docs) - 1 else [])
        starts.append(n)
        pieces.append(np.asarray(ids, dtype=np.int64))
        n += len(ids)
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    return stream, np.asarray(starts, dtype=np.int64)


def batch_iterator(
    token_ids_or_docs,
    block_size: int,
    batch_size: int,
    rng: np.random.Generator,
    metadata=False,
    encode=None,
    prefix=metadata_prefix,
    num_batches=None,
    ignore_index: int = IGNORE_INDEX,
):
    """Yield (x, y) int64 arrays of shape (batch_size, block_size) with y[b, t] = x[b, t + 1].

    Chunks start at uniformly random token positions (so every token is equally likely),
    drawn from `rng`: the same generator state gives the same batches. With `metadata`
    (True, or a probability p: the share of chunks that get it) the input takes the form
    [prefix tokens of the chunk's document] + [text], as in Gao et al. 2025, "Metadata
    Conditioning Accelerates Language Model Pre-training" (arXiv 2501.01956); the targets inside
    the prefix are `ignore_index`, so a loss learns the text, conditioned on the metadata.

    token_ids_or_docs: a 1-D array of token ids, or documents {'text', 'category', ...} that
    `encode` (any tokenizer's str -> list[int]) turns into ids. Metadata needs documents.
    """
    if block_size < 1 or batch_size < 1:
        raise ValueError(f"block_size={block_size} and batch_size={batch_size} must be >= 1")
    p_meta = float(metadata)
    if not 0.0 <= p_meta <= 1.0:
        raise ValueError(f"metadata={metadata!r} must be False/True or a probability in [0, 1]")
    if (
        isinstance(token_ids_or_docs, (list, tuple))
        and token_ids_or_docs
        and isinstance(token_ids_or_docs[0], dict)
    ):
        if encode is None:
            raise ValueError("documents need `encode`: pass the tokenizer's encode function")
        docs = list(token_ids_or_docs)
        stream, starts = encode_documents(docs, encode)
        cache = {}
        prefixes = [
            cache.setdefault(prefix(d), np.asarray(encode(prefix(d)), np.int64)) for d in docs
        ]
    else:
        if p_meta > 0:
            raise ValueError(
                "metadata conditioning needs documents (dicts with 'text' and "
                "'category'), not a bare array of token ids"
            )
        stream = np.asarray(token_ids_or_docs, dtype=np.int64).ravel()
        starts, prefixes = None, None
    n_start = len(stream) - block_size
    if n_start < 1:
        raise ValueError(
            f"{len(stream)} tokens cannot fill a block of {block_size} + 1; use a "
            f"smaller block_size or more text"
        )
    done = 0
    while num_batches is None or done < num_batches:
        offsets = rng.integers(0, n_start, size=batch_size)  # chunk starts
        x = np.stack([stream[o : o + block_size] for o in offsets])  # (B, L)
        y = np.stack([stream[o + 1 : o + block_size + 1] for o in offsets])  # (B, L)
        if p_meta > 0:
            use = rng.random(batch_size) < p_meta
            doc_of = np.searchsorted(starts, offsets, side="right") - 1
            for b in np.flatnonzero(use):
                pre = prefixes[doc_of[b]]
                k = len(pre)
                if k >= block_size:
                    raise ValueError(
                        f"the metadata prefix has {k} tokens, block_size is "
                        f"{block_size}: use a longer block or a shorter prefix"
                    )
                o = offsets[b]
                seq = np.concatenate([pre, stream[o : o + block_size - k + 1]])  # (L + 1,)
                x[b], y[b] = seq[:-1], seq[1:]
                y[b, : k - 1] = ignore_index  # predicting the prefix itself is not the task
        yield x, y
        done += 1


def as_batches(train_data, cfg, batch_size, rng):
    """An iterator of (x, y) batches: train_data itself, or random windows of a 1-D id array."""
    if not isinstance(train_data, (np.ndarray, list, tuple)):
        return train_data
    if not isinstance(rng, np.random.Generator):
        raise TypeError("pass rng=np.random.default_rng(seed): batches are drawn from it")
    ids = as_ids(train_data, cfg.vocab_size)
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens to train on, got {len(ids)}")
    return batch_iterator(ids, min(cfg.block_size, len(ids) - 1), batch_size, rng)
