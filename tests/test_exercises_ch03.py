"""Chapter 3's exercise checks accept right answers and reject wrong ones with a hint."""

import hashlib
import re

import numpy as np
import pytest

from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.exercises import ch03


def strip_templates(text):
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith("{{", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("}}", i) and depth:
            depth, i = depth - 1, i + 2
        else:
            if depth == 0:
                out.append(text[i])
            i += 1
    return "".join(out)


def squash(chunk):
    return re.sub(r"[^0-9a-z]+", " ", chunk.lower()).strip()


def split_rule(source, title):
    h = hashlib.sha256(f"{source}\x00{title}".encode()).digest()
    s = int.from_bytes(h[:8], "big") / 2**64
    return "train" if s < 0.90 else "val" if s < 0.95 else "test"


def metadata_chunk(prefix, stream, offset, block_size):
    k = len(prefix)
    seq = np.concatenate([prefix, stream[offset : offset + block_size - k + 1]])
    y = seq[1:].copy()
    y[: k - 1] = IGNORE_INDEX
    return seq[:-1], y


def waits(retry_afters, backoff):
    return [r if r is not None else backoff * 2**a for a, r in enumerate(retry_afters)]


def test_right_answers_pass(capsys):
    ch03.check_strip_templates(strip_templates)
    ch03.check_squash(squash)
    ch03.check_split_rule(split_rule)
    ch03.check_metadata_chunk(metadata_chunk)
    ch03.check_backoff(waits)
    assert capsys.readouterr().out.count(": correct") == 5


def test_wrong_answers_fail_with_a_hint():
    with pytest.raises(AssertionError, match="Count the depth"):
        ch03.check_strip_templates(lambda t: re.sub(r"\{\{[^{}]*\}\}", "", t))  # not nested
    with pytest.raises(AssertionError, match="should be equal"):
        ch03.check_squash(lambda c: c.lower())
    with pytest.raises(AssertionError, match="sha256"):
        ch03.check_split_rule(lambda s, t: "train")
    with pytest.raises(AssertionError, match="IGNORE_INDEX"):
        ch03.check_metadata_chunk(lambda p, s, o, b: metadata_chunk(p, s, o, b)[:1] * 2)
    with pytest.raises(AssertionError, match="Retry-After"):
        ch03.check_backoff(lambda r, b: [b * 2**a for a in range(len(r))])  # ignores Retry-After


def test_bits_per_char(capsys):
    ch03.check_bits_per_char(lambda bpb, text: bpb * len(text.encode()) / len(text))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="divide it by the characters"):
        ch03.check_bits_per_char(lambda bpb, text: bpb * len(text) / len(text.encode()))
