"""Character tokenizer: one id per character seen in training, raw UTF-8 bytes for the rest.

Taught in: notebooks/04_tokenizers.ipynb
"""

from collections import Counter

from spike_lib.core.config import check_range
from spike_lib.tokenizers.base import EOT, Tokenizer, byte_tokens, require_strings


class CharTable:
    """Maps a character to ids: ASCII -> its byte id (0..127), a known character -> its own id,
    any other character -> the ids of its UTF-8 bytes (the byte fallback: ids 128..255)."""

    def __init__(self, chars, first_id=256):
        self.chars = list(chars)
        self.char_to_id = {c: first_id + k for k, c in enumerate(self.chars)}
        for b in range(128):
            self.char_to_id[chr(b)] = b

    def ids(self, c: str):
        """(ids, n_fallback) of one character."""
        i = self.char_to_id.get(c)
        if i is not None:
            return (i,), 0
        raw = tuple(c.encode("utf-8"))
        return raw, len(raw)


def frequent_chars(text: str, max_chars=None, min_count=1) -> list:
    """Non-ASCII characters of text with count >= min_count, most frequent first (ties by code)."""
    counts = Counter(text)
    chars = [c for c, n in counts.items() if ord(c) >= 128 and n >= min_count]
    chars.sort(key=lambda c: (-counts[c], c))
    return chars if max_chars is None else chars[:max_chars]


def require_chars(data: dict, path) -> list:
    """The 'chars' list of a tokenizer file: single characters."""
    chars = require_strings(data, "chars", path, "a list of single characters")
    bad = next((c for c in chars if len(c) != 1), None)
    if bad is not None:
        raise ValueError(f"tokenizer file {path}: key 'chars' must be a list of single "
                         f"characters; it holds {bad!r}")
    return chars


class CharTokenizer(Tokenizer):
    """ids 0..255: single bytes (so 0..127 are the ASCII characters); 256..: non-ASCII characters
    seen in training; last id: <|endoftext|>. An unseen character becomes its UTF-8 bytes, so
    decode(encode(s)) == s for every string; those byte tokens are the `fallback` ones."""

    name = "char"

    def __init__(self, chars=()):
        self.table = CharTable(chars)
        self.token_bytes = byte_tokens() + [c.encode("utf-8") for c in self.table.chars]
        self.eot_id = len(self.token_bytes)
        self.token_bytes.append(EOT.encode("utf-8"))

    @classmethod
    def train(cls, text: str, max_chars=256, min_count=2):
        """Keep the max_chars most frequent non-ASCII characters seen >= min_count times."""
        check_range("max_chars", max_chars, 0, kind=int)
        check_range("min_count", min_count, 1, kind=int)
        return cls(frequent_chars(text, max_chars, min_count))

    def encode_stats(self, text: str):
        text = self.check_text(text)
        get = self.table.char_to_id.get
        ids = [get(c, -1) for c in text]
        if -1 not in ids:  # fast path: every character is in the vocabulary
            return ids, 0
        out, n_fallback = [], 0
        for c, i in zip(text, ids):
            if i >= 0:
                out.append(i)
            else:
                raw = c.encode("utf-8")
                out.extend(raw)
                n_fallback += len(raw)
        return out, n_fallback

    def state(self) -> dict:
        return {"chars": self.table.chars}

    @classmethod
    def from_state(cls, data: dict, path=None):
        return cls(require_chars(data, path))
