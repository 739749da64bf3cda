"""Syllable tokenizer: pyphen's en_US hyphenation points cut words into pieces ("physi-cist");
the most frequent pieces become tokens, everything else falls back to characters, then bytes.

Taught in: notebooks/04_tokenizers.ipynb
"""

import itertools
import re
from collections import Counter

from spike_lib.core.config import check_range
from spike_lib.tokenizers.base import EOT, Tokenizer, byte_tokens, require_strings
from spike_lib.tokenizers.char import CharTable, frequent_chars, require_chars

# a word (a run of letters) with the space before it glued on, or any other single character
PIECE_RE = re.compile(r" ?[^\W\d_]+|[\s\S]")


class Hyphenator:
    """Liang's hyphenation (TeX, 1983) with pyphen's en_US patterns, as pyphen computes it.

    Eq. 4.1: score(k) = max over patterns matching ".word." around gap k of their digit at k;
    the word may break at gap k when score(k) is odd and left <= k <= len(word) - right.
    Patterns are found by walking a trie: the same answer as pyphen, faster.
    """

    def __init__(self, lang="en_US", left=2, right=2):
        import pyphen

        self.patterns = {k: (off, tuple(int(v) for v in vals))
                         for k, (off, vals) in pyphen.Pyphen(lang=lang).hd.patterns.items()}
        self.left, self.right = left, right
        # a trie of the patterns: walking it from position i finds every pattern starting at i
        self.trie = {}
        for key, pat in self.patterns.items():
            node = self.trie
            for c in key:
                node = node.setdefault(c, {})
            node[None] = pat

    def positions(self, word: str) -> list:
        w = f".{word.lower()}."
        n, trie = len(w), self.trie
        score = [0] * (n + 1)
        for i in range(n - 1):
            node = trie
            for c in w[i:]:
                node = node.get(c)
                if node is None:
                    break
                pat = node.get(None)
                if pat is not None:
                    for k, v in enumerate(pat[1], i + pat[0]):
                        score[k] = max(score[k], v)
        hi = len(word) - self.right
        return [k - 1 for k in range(self.left + 1, hi + 2) if score[k] % 2]


def hyphenator(lang="en_US"):
    return Hyphenator(lang)


def split_syllables(word: str, dic) -> list:
    """Cut a word at pyphen's hyphenation points; a leading space stays on the first piece.

    Eq. 4.1: word = s_1 s_2 ... s_k, cut where the hyphenation patterns allow a hyphen.
    """
    space = word[:1] == " "
    core = word[1:] if space else word
    cuts = [0, *dic.positions(core), len(core)]
    pieces = [core[a:b] for a, b in itertools.pairwise(cuts)]
    if space:
        pieces[0] = " " + pieces[0]
    return pieces


def is_word(piece: str) -> bool:
    return len(piece) > 1 or piece.isalpha()


class SyllableTokenizer(Tokenizer):
    """ids 0..255 single bytes (0..127 = ASCII characters), then non-ASCII characters seen in
    training, then the `syllables` (most frequent first), then <|endoftext|>.

    Encoding: split text into pieces (PIECE_RE), words into syllables (pyphen); a syllable in the
    vocabulary is one token; " syl" missing tries " " + "syl"; otherwise the syllable is spelled
    with character tokens (counted as fallback), unseen characters as bytes. Lossless.
    The original project used the 2000 most frequent syllables (pyphen, en_US).
    """

    name = "syllable"

    def __init__(self, syllables=(), chars=(), lang="en_US"):
        self.lang = lang
        self.dic = hyphenator(lang)
        self.table = CharTable(chars)
        self.syllables = list(syllables)
        first = 256 + len(self.table.chars)
        self.syl_to_id = {s: first + k for k, s in enumerate(self.syllables)}
        self.token_bytes = byte_tokens() + [c.encode("utf-8") for c in self.table.chars]
        self.token_bytes += [s.encode("utf-8") for s in self.syllables]
        self.eot_id = len(self.token_bytes)
        self.token_bytes.append(EOT.encode("utf-8"))
        self._cache = {}

    @classmethod
    def train(cls, text: str, num_syllables=2000, max_chars=256, min_count=2, lang="en_US"):
        """Count the syllables of every word in text; keep the num_syllables most frequent
        multi-character ones (ties broken alphabetically) and the frequent non-ASCII characters."""
        check_range("num_syllables", num_syllables, 0, kind=int)
        dic = hyphenator(lang)
        words = Counter(p for p in PIECE_RE.findall(text) if is_word(p))
        counts = Counter()
        for word, n in words.items():
            for syl in split_syllables(word, dic):
                if len(syl) > 1:
                    counts[syl] += n
        ranked = sorted(counts, key=lambda s: (-counts[s], s))[:num_syllables]
        return cls(ranked, frequent_chars(text, max_chars, min_count), lang)

    def _spell(self, s: str, ids: list) -> int:
        """Append character (or byte) ids of s; return how many ids were appended."""
        n = 0
        for c in s:
            cids, _ = self.table.ids(c)
            ids.extend(cids)
            n += len(cids)
        return n

    def _encode_piece(self, piece: str):
        if not is_word(piece):
            return self.table.ids(piece)
        ids, n_fallback = [], 0
        for syl in split_syllables(piece, self.dic):
            i = self.syl_to_id.get(syl)
            if i is not None:
                ids.append(i)
                continue
            if syl[0] == " ":  # try the space as its own token, then the bare syllable
                ids.append(32)
                syl = syl[1:]
                i = self.syl_to_id.get(syl)
                if i is not None:
                    ids.append(i)
                    continue
            n_fallback += self._spell(syl, ids)
        return tuple(ids), n_fallback

    def encode_stats(self, text: str):
        return self.encode_pieces(PIECE_RE.findall(self.check_text(text)))

    def state(self) -> dict:
        return {"lang": self.lang, "chars": self.table.chars, "syllables": self.syllables}

    @classmethod
    def from_state(cls, data: dict, path=None):
        syllables = require_strings(data, "syllables", path)
        lang = data.get("lang", "en_US")
        if not isinstance(lang, str):
            raise ValueError(f"tokenizer file {path}: key 'lang' must be a string such as "  # noqa: TRY004
                             f"'en_US', got {type(lang).__name__}")
        return cls(syllables, require_chars(data, path), lang)
