"""The tokenizer interface: text <-> integer ids, lossless thanks to a 256-entry byte fallback.

Taught in: notebooks/04_tokenizers.ipynb
"""

import json
from pathlib import Path

from spike_lib.core.atomic import write_text

FORMAT_VERSION = 1
EOT = "<|endoftext|>"


CACHE_LIMIT = 200_000  # distinct pieces a tokenizer remembers (a few tens of MB at most)


def atomic_write_text(path, text: str) -> None:
    """Write text to path atomically: spike_lib.core.atomic.write_text (the one atomic writer)."""
    write_text(path, text)


def read_json(path) -> dict:
    """Read a tokenizer JSON file with errors that name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"tokenizer file {path} does not exist: train and save one first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"tokenizer file {path} is not valid UTF-8 JSON ({err}): re-save it")
    if not isinstance(data, dict):
        raise ValueError(f"tokenizer file {path} holds a JSON {type(data).__name__}, expected an "  # noqa: TRY004
                         "object {\"type\": ..., \"version\": 1, ...}: it is not a tokenizer file")
    if "type" not in data:
        raise ValueError(f"tokenizer file {path} has no 'type' field: it is not a tokenizer file")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"tokenizer file {path} has version {data.get('version')!r}, "
            f"this spike_lib reads version {FORMAT_VERSION}: re-train and save it"
        )
    return data


def require(data: dict, key: str, kind, path, expected: str):
    """data[key] if it exists and is a `kind`; else one ValueError naming the file, the key and
    what was expected (so a hand-damaged file never ends in a KeyError or TypeError)."""
    if key not in data:
        raise ValueError(f"tokenizer file {path} has no key {key!r}: expected {expected}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"tokenizer file {path}: key {key!r} must be {expected}, "
                         f"got {type(value).__name__}")
    return value


def require_strings(data: dict, key: str, path, expected="a list of strings") -> list:
    """A list of strings under key, checked item by item."""
    values = require(data, key, list, path, expected)
    bad = next((k for k, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise ValueError(f"tokenizer file {path}: key {key!r} must be {expected}; entry {bad} "
                         f"is {values[bad]!r}")
    return values


class Tokenizer:
    """Base class: token i decodes to the bytes `self.token_bytes[i]`.

    decode(ids) = UTF-8 decoding of b"".join(token_bytes[i] for i in ids). Every tokenizer keeps
    the 256 single bytes in its vocabulary, so encode can always fall back to the bytes of a
    character it has never seen and decode(encode(s)) == s holds for every string s.
    Subclasses set `token_bytes` (list of bytes), `eot_id` and implement `encode_stats`.
    """

    name = "base"
    token_bytes: list
    eot_id: int

    @property
    def vocab_size(self) -> int:
        return len(self.token_bytes)

    def encode(self, text: str) -> list:
        """Token ids of `text` (special tokens are never produced from text)."""
        return self.encode_stats(text)[0]

    def encode_stats(self, text: str):
        """(ids, n_fallback): ids and how many of them came from a fallback path."""
        raise NotImplementedError

    def encode_pieces(self, pieces):
        """(ids, n_fallback) of pre-split pieces, each encoded once by self._encode_piece and cached."""
        cache = self._cache
        ids, n_fallback = [], 0
        for piece in pieces:
            hit = cache.get(piece)
            if hit is None:
                hit = self._encode_piece(piece)
                if len(cache) < CACHE_LIMIT:
                    cache[piece] = hit
            ids.extend(hit[0])
            n_fallback += hit[1]
        return ids, n_fallback

    def decode(self, ids) -> str:
        """Text of ids; an id sequence cut mid-character decodes with U+FFFD replacement marks."""
        ids = self.check_ids(ids)
        return b"".join([self.token_bytes[i] for i in ids]).decode("utf-8", errors="replace")

    def check_ids(self, ids) -> list:
        """ids as a list of Python ints (numpy arrays welcome); out-of-range ids raise."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        n = len(self.token_bytes)
        if ids and (min(ids) < 0 or max(ids) >= n or not all(isinstance(i, int) for i in ids)):
            bad = next(i for i in ids if not isinstance(i, int) or not 0 <= i < n)
            raise ValueError(f"token id {bad!r} is out of range: ids must be ints in [0, {n - 1}]")
        return ids

    def token_str(self, i: int) -> str:
        """A printable form of one token (bytes that are not whole characters shown as <0xNN>)."""
        b = self.token_bytes[i]
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"<0x{x:02X}>" for x in b)

    def check_text(self, text) -> str:
        if not isinstance(text, str):
            raise TypeError(f"encode needs a str, got {type(text).__name__}: decode bytes first")
        return text

    # saving: subclasses return their JSON-able state from `state()` and rebuild in `from_state`
    def state(self) -> dict:
        raise NotImplementedError

    def save(self, path) -> None:
        """Save as JSON (never pickle), atomically."""
        data = {"type": self.name, "version": FORMAT_VERSION, **self.state()}
        atomic_write_text(path, json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    @classmethod
    def from_state(cls, data: dict, path=None):
        raise NotImplementedError

    @classmethod
    def load(cls, path):
        data = read_json(path)
        if data["type"] != cls.name:
            raise ValueError(f"{path} holds a {data['type']!r} tokenizer, not {cls.name!r}")
        return cls.from_state(data, path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


def byte_tokens() -> list:
    """The 256 single-byte tokens: ids 0..255 in every tokenizer of this package."""
    return [bytes([b]) for b in range(256)]
