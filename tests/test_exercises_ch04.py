"""Chapter 4's exercise checks: right answers pass, typical wrong answers fail."""

import itertools
from collections import Counter

import pytest

from spike_lib.exercises import ch04
from spike_lib.tokenizers.syllable import hyphenator


def cpt(text, tok):
    n = len(tok.encode(text))
    return len(text) / n if n else 0.0


def pairs(words):
    out = Counter()
    for w, n in words.items():
        for p in itertools.pairwise(w):
            out[p] += n
    return out


def bpe(tok, piece):
    parts = [bytes([b]) for b in piece.encode("utf-8")]
    while len(parts) > 1:
        ranks = [tok.ranks.get(a + b, 10**9) for a, b in itertools.pairwise(parts)]
        i = ranks.index(min(ranks))
        if ranks[i] == 10**9:
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return [tok.ranks[p] for p in parts]


def hyph(word):
    cuts = [0, *hyphenator().positions(word), len(word)]
    return [word[a:b] for a, b in itertools.pairwise(cuts)]


def test_right_answers_pass(capsys):
    assert ch04.check_chars_per_token(cpt)
    assert ch04.check_utf8_fallback(lambda c: list(c.encode("utf-8")))
    assert ch04.check_hyphenate(hyph)
    assert ch04.check_pair_counts(pairs)
    assert ch04.check_bpe_encode(bpe)
    assert "physicist -> physi-cist" in capsys.readouterr().out


def test_wrong_answers_fail():
    with pytest.raises(AssertionError, match="chars per token"):
        ch04.check_chars_per_token(lambda text, tok: len(tok.encode(text)) / max(len(text), 1))
    with pytest.raises(AssertionError, match="byte fallback of 'é'"):
        ch04.check_utf8_fallback(lambda c: [ord(c)])
    with pytest.raises(AssertionError, match="pieces of 'physicist'"):
        ch04.check_hyphenate(lambda w: [w[: len(w) // 2], w[len(w) // 2 :]])
    with pytest.raises(AssertionError, match="pair counts"):
        ch04.check_pair_counts(lambda words: Counter(p for w in words for p in itertools.pairwise(w)))
    with pytest.raises(AssertionError, match="BPE ids"):
        ch04.check_bpe_encode(lambda tok, piece: list(piece.encode("utf-8")))
