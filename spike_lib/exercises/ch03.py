"""Checks for chapter 3's exercises: each raises AssertionError with a hint, or prints "correct".

Taught in: notebooks/03_corpus.ipynb and notebooks/03b_batches_and_scraping.ipynb
"""

import numpy as np

from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.data.clean import near_key
from spike_lib.data.corpus import split_of
from spike_lib.data.wikidump import strip_nested

TEMPLATE_CASES = (
    ("no templates here", "no templates here"),
    ("a {{b}} c", "a  c"),
    ("x {{outer|{{inner|1}}|y}} z", "x  z"),
    ("{{a}}{{b}}end", "end"),
    ("deep {{1 {{2 {{3}} 2}} 1}} done", "deep  done"),
    ("unclosed {{cite web|url=x", "unclosed "),
)
# pairs that must (True) or must not (False) get the same near-duplicate key
SQUASH_CASES = (
    ("Hello,  World!", "hello world", True),
    ("The Cat sat.", "the cat sat", True),
    ("e.g. 1,000 km", "eg 1000 km", False),  # "e.g." -> "e g", "1,000" -> "1 000"
    ("one two", "one  two  ", True),
    ("abc", "abd", False),
)


def _correct(name):
    print(f"{name}: correct")


def check_strip_templates(fn):
    """Exercise 1: fn(text) removes every {{...}} template, nested at any depth."""
    for text, want in TEMPLATE_CASES:
        got = fn(text)
        assert got == want, (
            f"fn({text!r}) = {got!r}, expected {want!r}. Count the depth: +1 at '{{{{', -1 at "
            "'}}', and keep characters only at depth 0 (an unclosed template runs to the end)."
        )
    assert fn("a {{b {{c}} d}} e") == strip_nested("a {{b {{c}} d}} e", "{{", "}}")
    _correct("strip templates")


def check_squash(fn):
    """Exercise 2: fn(chunk) is the text that near_key hashes: lowercase, runs of anything but
    a-z and 0-9 replaced by one space, stripped."""
    for a, b, same in SQUASH_CASES:
        ka, kb = fn(a), fn(b)
        assert (ka == kb) == same, (
            f"fn({a!r}) = {ka!r} and fn({b!r}) = {kb!r} should {'' if same else 'not '}be equal"
        )
        assert (near_key(a) == near_key(b)) == same  # the library agrees
    assert fn("Hello,  World! 42") == "hello world 42", "expected 'hello world 42'"
    _correct("near-duplicate squash")


def check_split_rule(fn):
    """Exercise 3: fn(source, title) returns 'train', 'val' or 'test' by Eq. 3.5."""
    titles = [f"Article {i}" for i in range(2000)]
    for source in ("wikipedia", "factbook"):
        for title in titles:
            want = split_of(source, title)
            got = fn(source, title)
            assert got == want, (
                f"fn({source!r}, {title!r}) = {got!r}, expected {want!r}: hash "
                "f'{source}\\x00{title}' with sha256, read the first 8 bytes big-endian, divide "
                "by 2**64, then compare with 0.90 and 0.95"
            )
    _correct("split rule")


def check_metadata_chunk(fn):
    """Exercise 4: fn(prefix_ids, stream, offset, block_size) -> (x, y) of one metadata chunk."""
    rng = np.random.default_rng(3)
    stream = rng.integers(0, 50, 200)
    for prefix, offset, block in (([90, 91, 92], 10, 8), ([99], 0, 5), ([7, 8, 9, 10], 150, 12)):
        x, y = (np.asarray(a) for a in fn(np.array(prefix), stream, offset, block))
        k = len(prefix)
        assert x.shape == y.shape == (block,), f"x and y need shape ({block},), got {x.shape}"
        seq = np.concatenate([prefix, stream[offset : offset + block - k + 1]])
        assert (x == seq[:-1]).all(), "x = prefix followed by the text from `offset` (Eq. 3.6)"
        want_y = seq[1:].copy()
        want_y[: k - 1] = IGNORE_INDEX
        assert (y == want_y).all(), (
            f"y = x shifted by one; the first k - 1 = {k - 1} targets predict prefix tokens and "
            f"must be IGNORE_INDEX ({IGNORE_INDEX}); y[k-1] is the first text token"
        )
    _correct("metadata chunk")


def check_backoff(fn):
    """Exercise 5: fn(retry_afters, backoff) -> waits before each retry (Eq. 3.7)."""
    cases = (
        (([None, None, None], 0.5), [0.5, 1.0, 2.0]),
        (([2.0, None, 0.0], 1.0), [2.0, 2.0, 0.0]),
        (([None] * 5, 0.25), [0.25, 0.5, 1.0, 2.0, 4.0]),
    )
    for (retry_afters, backoff), want in cases:
        got = [float(w) for w in fn(retry_afters, backoff)]
        assert got == want, (
            f"fn({retry_afters}, {backoff}) = {got}, expected {want}: the a-th retry waits "
            "Retry-After if the server sent one, else backoff * 2 ** (a - 1)"
        )
    _correct("backoff schedule")


def check_bits_per_char(fn):
    """Part 2, exercise 3: fn(bits_per_byte, text) -> bits per character of the same prediction
    (the total bits are the same; only the count they are divided by changes)."""
    cases = [(4.8, "plain ASCII text"), (2.0, "Caf\u00e9 na\u00efve \u00fcber"),
             (3.0, "\u03b1\u03b2\u03b3 \u0394"), (1.5, "\u6f22\u5b57")]
    for bpb, text in cases:
        ref = bpb * len(text.encode("utf-8")) / len(text)
        mine = float(fn(bpb, text))
        assert abs(mine - ref) < 1e-9, (
            f"{bpb} bits per byte on {text!r} ({len(text.encode())} bytes, {len(text)} characters) "
            f"is {ref:.4f} bits per character, you gave {mine:.4f}: the total is bits per byte x "
            "bytes; divide it by the characters instead")
    _correct("bits per character")
