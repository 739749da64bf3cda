"""Checks for chapter 4's exercises: each takes your function, tests it, prints what it found.

Taught in: notebooks/04_tokenizers.ipynb and notebooks/04b_comparing_tokenizers.ipynb
"""

from collections import Counter

TEXTS = ["", "Hello world", "naïve café 😀", "The physicist conducted 3 tests."]
WORDS = ["physicist", "conducted", "hyphenation", "understanding", "Kenya", "a", "spiking"]


def _fail(what, got, want):
    raise AssertionError(f"{what}: got {got!r}, expected {want!r}")


def check_chars_per_token(fn):
    """fn(text, tokenizer) -> characters per token (Eq. 4.1); 0.0 for an empty text."""
    from spike_lib.tokenizers import get_tokenizer

    for name in ("char", "gpt2"):
        tok = get_tokenizer(name)
        for text in TEXTS:
            n = len(tok.encode(text))
            want = len(text) / n if n else 0.0
            got = fn(text, tok)
            if not isinstance(got, float) or abs(got - want) > 1e-12:
                _fail(f"chars per token of {text!r} with {name}", got, want)
    print("correct: characters per token = len(text) / len(ids)")
    return True


def check_utf8_fallback(fn):
    """fn(char) -> the byte-fallback ids of one character: its UTF-8 bytes as ints."""
    cases = {"A": [65], "é": [0xC3, 0xA9], "€": [0xE2, 0x82, 0xAC], "😀": [0xF0, 0x9F, 0x98, 0x80]}
    for c, want in cases.items():
        got = fn(c)
        if list(got) != want:
            _fail(f"byte fallback of {c!r}", got, want)
    print("correct: 1 to 4 byte tokens per character, so every string can be encoded")
    return True


def check_hyphenate(fn):
    """fn(word) -> the word cut at pyphen's en_US hyphenation points (left=right=2)."""
    from spike_lib.tokenizers.syllable import hyphenator, split_syllables

    dic = hyphenator()
    for word in WORDS:
        want = split_syllables(word, dic)
        got = fn(word)
        if list(got) != want:
            _fail(f"pieces of {word!r}", got, want)
        if "".join(got) != word:
            _fail(f"pieces of {word!r} must join back to the word", "".join(got), word)
    print("correct: e.g. physicist ->", "-".join(fn("physicist")))
    return True


def check_pair_counts(fn):
    """fn({word_as_tuple_of_ids: count}) -> Counter of adjacent pairs weighted by count (Eq. 4.4)."""
    words = {(1, 2, 3): 2, (1, 2): 5, (2, 2, 2): 1, (7,): 9}
    want = Counter({(1, 2): 7, (2, 3): 2, (2, 2): 2})
    got = Counter(fn(words))
    if +got != want:
        _fail("pair counts", dict(got), dict(want))
    print("correct: the most frequent pair is", max(want, key=want.get))
    return True


def check_bpe_encode(fn):
    """fn(tokenizer, piece) -> ids of one piece by repeatedly merging the adjacent pair whose
    merged bytes have the lowest id (tokenizer.ranks maps bytes -> id)."""
    from spike_lib.tokenizers import get_tokenizer

    tok = get_tokenizer("bpe")
    for piece in [" physicist", " the", "Hello", " 2026", " naïve", "😀", "x"]:
        want = tok.encode(piece)
        got = fn(tok, piece)
        if list(got) != want:
            _fail(f"BPE ids of {piece!r}", got, want)
    print("correct: your encoder agrees with BPETokenizer.encode")
    return True



def check_bert_words(fn):
    """fn(text) -> BERT's basic-tokenizer words (cased): split on whitespace, then every
    punctuation character (ASCII 33-47, 58-64, 91-96, 123-126 or Unicode category P*) and every
    CJK ideograph (U+4E00-U+9FFF in these texts) is a word of its own."""
    from spike_lib.tokenizers.wordpiece import basic_tokenize

    texts = ["", "Hello, World!", "  spaces\tand\nnewlines  ", "don't stop--ever...",
             "$5^2 `x` 3.14 a_b", "naïve «café» ¿qué?", "脉冲神经网络用spikes传递信息。",
             "U.S.A. (1776)", "e-mail: a@b.c #tag ~home"]
    for text in texts:
        want = basic_tokenize(text)
        got = fn(text)
        if list(got) != want:
            _fail(f"words of {text!r}", got, want)
    print("correct: e.g.", fn("脉冲spikes, 3.14!"))
    return True
