"""Tests for spike_lib.data.batches: next-token batches and metadata conditioning."""

import numpy as np
import pytest

from spike_lib.data.batches import IGNORE_INDEX, batch_iterator, encode_documents, metadata_prefix


def char_encode(s):
    return [ord(c) for c in s]


DOCS = [
    {"text": "abcdefghijklmnopqrstuvwxyz" * 3, "category": "geography"},
    {"text": "0123456789" * 8, "category": "chemistry"},
]


def test_token_batches_shift_by_one_and_follow_the_rng():
    ids = np.arange(100)
    x, y = next(batch_iterator(ids, block_size=8, batch_size=4, rng=np.random.default_rng(3)))
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    starts = np.random.default_rng(3).integers(0, 92, size=4)  # same draws, by hand
    np.testing.assert_array_equal(x[:, 0], starts)
    np.testing.assert_array_equal(x, starts[:, None] + np.arange(8))
    np.testing.assert_array_equal(y, x + 1)


def test_same_seed_same_batches_and_num_batches():
    a = list(batch_iterator(np.arange(50), 5, 3, np.random.default_rng(0), num_batches=4))
    b = list(batch_iterator(np.arange(50), 5, 3, np.random.default_rng(0), num_batches=4))
    assert len(a) == 4
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_encode_documents_joins_with_separator():
    stream, starts = encode_documents(DOCS, char_encode, sep="|")
    assert starts.tolist() == [0, 79]  # 78 letters + "|"
    assert len(stream) == 79 + 80 and stream[78] == ord("|")


def test_metadata_prefix_is_context_not_target():
    prefix = char_encode(metadata_prefix(DOCS[0]))  # "<cat:geography> "
    k = len(prefix)
    assert k == 16
    it = batch_iterator(DOCS, 24, 6, np.random.default_rng(1), metadata=True, encode=char_encode)
    x, y = next(it)
    offsets = np.random.default_rng(1).integers(0, 160 - 24, size=6)  # 78 + len("\n\n") + 80 tokens
    stream, starts = encode_documents(DOCS, char_encode)
    for b, o in enumerate(offsets):
        doc = DOCS[int(np.searchsorted(starts, o, side="right") - 1)]
        pre = char_encode(metadata_prefix(doc))
        k = len(pre)
        assert x[b, :k].tolist() == pre
        assert x[b, k:].tolist() == stream[o : o + 24 - k].tolist()
        assert (y[b, : k - 1] == IGNORE_INDEX).all()
        assert y[b, k - 1 :].tolist() == stream[o : o + 24 - k + 1].tolist()


def test_metadata_probability_mixes_plain_and_prefixed_chunks():
    rng = np.random.default_rng(5)
    x, y = next(batch_iterator(DOCS, 20, 200, rng, metadata=0.25, encode=char_encode))
    prefixed = (x[:, 0] == ord("<")).mean()  # no document text contains "<"
    assert 0.15 < prefixed < 0.35
    assert ((y == IGNORE_INDEX).any(axis=1) == (x[:, 0] == ord("<"))).all()


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="metadata conditioning needs documents"):
        next(batch_iterator(np.arange(50), 8, 2, np.random.default_rng(0), metadata=True))
    with pytest.raises(ValueError, match="documents need `encode`"):
        next(batch_iterator(DOCS, 8, 2, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="prefix has 16 tokens, block_size is 10"):
        next(batch_iterator(DOCS, 10, 2, np.random.default_rng(0), True, char_encode))
    with pytest.raises(ValueError, match="cannot fill a block"):
        next(batch_iterator(np.arange(5), 8, 2, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="probability in"):
        next(batch_iterator(DOCS, 20, 2, np.random.default_rng(0), 1.5, char_encode))
