"""The held-out slice drawn from every source (the default of eval and of the training logs)."""

import numpy as np
import pytest

from spike_lib.data.corpus import load_corpus
from spike_lib.tokenizers import get_tokenizer
from spike_lib.train.heldout import (
    encode_prefix,
    mixed_slice,
    shares,
    slice_sources,
    source_slices,
)


def doc(source, text):
    return {"source": source, "text": text}


def test_shares_by_hand():
    assert shares(10, [100, 100, 100]) == [4, 3, 3]  # equal, the first sources one more
    assert shares(10, [1, 100, 100]) == [1, 5, 4]  # a short source gives all it has
    assert shares(10, [100, 1, 2]) == [7, 1, 2]
    assert shares(10, [2, 2]) == [2, 2]  # not enough text anywhere: everything
    assert sum(shares(8193, [5000] * 7)) == 8193


def test_mixed_slice_by_hand():
    tok = get_tokenizer("char")
    docs = [doc("b", "xyxyxyxy"), doc("a", "abcdefgh"), doc("a", "ijkl"), doc("c", "pq")]
    ids = mixed_slice(tok, 9, docs)  # 10 ids: c has 2, then a and b share 8 -> 4 + 4
    assert tok.decode(ids.tolist()) == "abcdxyxypq"
    assert slice_sources(tok, 9, docs) == {"a": 4, "b": 4, "c": 2}
    assert tok.decode(source_slices(tok, 9, docs)["a"].tolist()) == "abcdefgh\n\n"
    one = mixed_slice(tok, 5, [doc("a", "abcdefgh"), doc("a", "ijkl")])
    assert tok.decode(one.tolist()) == "abcdef"  # one source: the first n + 1 tokens, as before


def test_prefix_encoding_matches_the_whole_text():
    tok = get_tokenizer("bpe")
    text = "\n\n".join(d["text"] for d in load_corpus("val") if d["source"] == "shakespeare")
    whole = tok.encode(text[:200_000])
    assert encode_prefix(tok, text, 3000).tolist() == whole[:3000]


def test_validation_slice_has_every_source_in_equal_shares():
    tok = get_tokenizer("bpe")
    got = slice_sources(tok, 8192, split="val")
    assert sorted(got) == ["austen", "elements", "factbook", "foldoc", "milton",
                           "shakespeare", "wikipedia"]
    assert sum(got.values()) == 8193 and max(got.values()) - min(got.values()) <= 1
    a, b = mixed_slice(tok, 8192), mixed_slice(tok, 8192)
    assert len(a) == 8193 and np.array_equal(a, b)  # fixed: the same tokens every time


def test_bad_sizes_are_named():
    tok = get_tokenizer("char")
    with pytest.raises(ValueError, match="n_tokens"):
        mixed_slice(tok, 0, [doc("a", "abc")])
    with pytest.raises(ValueError, match="no documents"):
        mixed_slice(tok, 5, [])
