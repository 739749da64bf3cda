"""Tokenizers: hand-computed encodings, lossless round trips (hypothesis), files and errors."""

import hashlib
import json

import numpy as np
import pyphen
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spike_lib.tokenizers import (
    DATA_DIR,
    BPETokenizer,
    CharTokenizer,
    SyllableTokenizer,
    get_tokenizer,
    load_tokenizer,
)
from spike_lib.tokenizers.bpe import PATTERN
from spike_lib.tokenizers.gpt2 import RANK_BYTES, RANK_SHA256
from spike_lib.tokenizers.syllable import Hyphenator, split_syllables

NAMES = ("char", "syllable", "bpe", "gpt2")
HARD = ["", "Hello World", "  two  spaces\tand\ttabs\n\n", "UPPER lower MiXeD", "3.14159 2026",
        "emoji 😀👍🏽 flags 🇫🇷", "中文字符 日本語 한국어", "e\u0301 combining, n\u0303",
        "control \x00\x01\x1f\x7f\x85 chars", "<|endoftext|> is plain text here", "\r\n\u2028",
        "ﬁ ligature, Ǆ titlecase, ß", "'s 've 're 'll don't"]


@pytest.fixture(scope="module")
def shipped():
    return {name: get_tokenizer(name) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("text", HARD)
def test_hard_strings_round_trip(shipped, name, text):
    tok = shipped[name]
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size for i in ids)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=60))
def test_every_string_round_trips(shipped, text):
    for tok in shipped.values():
        assert tok.decode(tok.encode(text)) == text


def test_char_tokenizer_by_hand():
    tok = CharTokenizer.train("aéé é ü", max_chars=1, min_count=2)
    assert tok.table.chars == ["é"] and tok.vocab_size == 256 + 1 + 1
    assert tok.encode_stats("aé€") == ([97, 256, 0xE2, 0x82, 0xAC], 3)  # € -> its UTF-8 bytes
    assert tok.decode([97, 256]) == "aé" and tok.eot_id == 257
    assert tok.decode([0xE2, 0x82]) == "\ufffd"  # a cut character decodes to U+FFFD


def test_hyphenator_matches_pyphen():
    ours, ref = Hyphenator(), pyphen.Pyphen(lang="en_US")
    words = ["physicist", "conducted", "hyphenation", "understanding", "Kenya", "a",
             "Mississippi", "ÉCOLE", "spiking", "transformers", "beautiful", "x" * 30]
    for w in words:
        assert ours.positions(w) == list(ref.positions(w)), w
    assert ours.positions("physicist") == [5] and ours.positions("understanding") == [2, 5, 10]


def test_syllable_split_and_encoding_by_hand():
    dic = Hyphenator()
    assert split_syllables(" physicist", dic) == [" physi", "cist"]
    assert split_syllables("conducted", dic) == ["con", "duct", "ed"]
    text = " physicist physicist conducted"
    tok = SyllableTokenizer.train(text, num_syllables=2)
    # counts: " physi" 2, "cist" 2, " con" 1, "duct" 1, "ed" 1 -> keep the top two (ties: a-z)
    assert tok.syllables == [" physi", "cist"]
    ids, n_fallback = tok.encode_stats(" physicist conducted")
    c = ord
    assert ids == [256, 257, 32, c("c"), c("o"), c("n"), c("d"), c("u"), c("c"), c("t"),
                   c("e"), c("d")]
    assert n_fallback == 9  # "con", "duct", "ed" spelled letter by letter; the space is not
    assert tok.decode(ids) == " physicist conducted"


def test_bpe_merges_by_hand():
    # pieces: "ab" once, " ab" twice -> (a, b) occurs 3 times, then (" ", ab) twice
    tok = BPETokenizer.train("ab ab ab", vocab_size=300)
    assert tok.merges == [(97, 98), (32, 256)]  # then no pair occurs twice: training stops
    assert tok.vocab_size == 256 + 2 + 1
    assert tok.encode("ab ab") == [256, 257] and tok.token_bytes[257] == b" ab"
    assert tok.encode("ba") == [98, 97]


def test_bpe_matches_tiktoken_with_the_same_ranks(shipped):
    from spike_lib.data.corpus import corpus_text

    tok = shipped["bpe"]
    enc = tok.to_tiktoken()
    text = corpus_text("val")[:100_000]
    assert tok.encode(text) == enc.encode_ordinary(text)


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=127, exclude_categories=["Cc"]),
                    max_size=80))
def test_bpe_matches_tiktoken_on_ascii(shipped, text):
    tok = shipped["bpe"]
    assert tok.encode(text) == tok.to_tiktoken().encode_ordinary(text)


def test_gpt2_known_ids(shipped):
    tok = shipped["gpt2"]
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.vocab_size == 50257 and tok.eot_id == 50256
    assert 50256 not in tok.encode("<|endoftext|>")  # special text is ordinary text
    path = DATA_DIR / "gpt2.tiktoken"
    assert path.stat().st_size == RANK_BYTES
    assert hashlib.sha256(path.read_bytes()).hexdigest() == RANK_SHA256


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(shipped, tmp_path, name):
    tok = shipped[name]
    path = tmp_path / f"{name}.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))  # plain JSON, never pickle
    assert data["type"] == name and data["version"] == 1
    again = load_tokenizer(path)
    text = "Spiking transformers, 2026: 中文 😀"
    assert again.encode(text) == tok.encode(text) and again.vocab_size == tok.vocab_size


def test_shipped_files_are_small_json():
    for name in ("char", "syllable", "bpe"):
        path = DATA_DIR / f"{name}.json"
        assert path.stat().st_size < 100_000
        assert json.loads(path.read_text(encoding="utf-8"))["type"] == name
    assert get_tokenizer("syllable").vocab_size == 256 + len(get_tokenizer("char").table.chars) + \
        2000 + 1


def test_bad_input_errors(shipped, tmp_path):
    with pytest.raises(ValueError, match="tokenizer='nope' is invalid"):
        get_tokenizer("nope")
    with pytest.raises(ValueError, match="does not exist"):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid UTF-8 JSON"):
        load_tokenizer(bad)
    bad.write_text(json.dumps({"type": "bpe", "version": 99, "merges": []}))
    with pytest.raises(ValueError, match="version 99"):
        load_tokenizer(bad)
    bad.write_text(json.dumps({"type": "bpe", "version": 1, "merges": [[5, 900]]}))
    with pytest.raises(ValueError, match=r"merge 0 = \(5, 900\) uses an id not yet defined"):
        load_tokenizer(bad)
    with pytest.raises(ValueError, match="holds a 'bpe' tokenizer"):
        SyllableTokenizer.load(DATA_DIR / "bpe.json")
    with pytest.raises(ValueError, match=r"token id 99999 is out of range"):
        shipped["syllable"].decode([1, 99999])
    with pytest.raises(ValueError, match=r"token id -1 is out of range"):
        shipped["gpt2"].decode([15496, -1])
    with pytest.raises(ValueError, match=r"token id 1.5 is out of range"):
        shipped["char"].decode([1.5])
    assert shipped["gpt2"].decode(np.array([15496, 995])) == "Hello world"
    assert shipped["bpe"].decode(np.array(shipped["bpe"].encode("spikes"))) == "spikes"
    with pytest.raises(TypeError, match="encode needs a str"):
        shipped["char"].encode(b"bytes")
    with pytest.raises(ValueError, match=r"vocab_size=100 is invalid"):
        BPETokenizer.train("abc", vocab_size=100)
    with pytest.raises(ValueError, match="rank file .* is missing"):
        get_tokenizer("gpt2", rank_file=tmp_path / "none.tiktoken")


def test_pattern_covers_every_character():
    import re

    text = "a_b ½² \x1c\u00a0x  y\n\n🙂"
    assert "".join(re.findall(PATTERN, text)) == text
