"""BERT's WordPiece: a basic tokenizer (whitespace, punctuation, CJK characters one by one,
optional lowercasing and accent stripping), then greedy longest-match-first pieces with "##"
continuations and [UNK]; plus a likelihood-based trainer (Schuster & Nakajima 2012; Wu et al.
2016; Devlin et al. 2019). Lossy: decode gives the words joined by single spaces.

Taught in: notebooks/04b_comparing_tokenizers.ipynb
"""

import heapq
import itertools
import math
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

from spike_lib.core.config import check_choice, check_range
from spike_lib.tokenizers.base import Tokenizer, atomic_write_text, require, require_strings

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_WORD_CHARS = 100  # BERT: a longer word becomes a single [UNK]
OPTION_TYPES = {"lowercase": (bool,), "accents": (bool, type(None)), "unk": (str,),
                "eot": (str,), "max_chars": (int,)}
# BERT's whitespace: space, tab, newline, carriage return and the Unicode category Zs
ZS = "\u0020\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
     "\u202f\u205f\u3000"
WHITESPACE_RE = re.compile(f"[\t\n\r{ZS}]+")
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_control(c: str) -> bool:
    """BERT drops control characters (category C*), except tab, newline and carriage return."""
    return c not in "\t\n\r" and unicodedata.category(c)[0] == "C"


def is_punctuation(c: str) -> bool:
    """ASCII non-letters/digits (so "$", "^", "`" count) and every Unicode category P*."""
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c)[0] == "P"


def is_cjk(c: str) -> bool:
    """A CJK ideograph (BERT's ranges): each becomes a word of its own."""
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def strip_accents(word: str) -> str:
    """NFD, then drop the combining marks (category Mn): "café" -> "cafe"."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


def basic_split(chunk: str, lowercase=False, accents=None) -> list:
    """The words of one whitespace-free chunk: controls, U+0000 and U+FFFD dropped, every CJK
    character and every punctuation character a word of its own. accents=None strips accents
    exactly when lowercasing (BERT's default)."""
    strip = lowercase if accents is None else not accents
    spaced = []
    for c in chunk:
        if c in "\x00\ufffd" or is_control(c):
            continue
        spaced.append(f" {c} " if is_cjk(c) else c)
    words = []
    for token in "".join(spaced).split(" "):
        if not token:
            continue
        if lowercase:
            token = token.lower()
        if strip:
            token = strip_accents(token)
        start = 0
        for i, c in enumerate(token):  # split on punctuation, keeping it
            if is_punctuation(c):
                if start < i:
                    words.append(token[start:i])
                words.append(c)
                start = i + 1
        if start < len(token):
            words.append(token[start:])
    return words


def basic_tokenize(text: str, lowercase=False, accents=None) -> list:
    """BERT's BasicTokenizer: split on whitespace, then basic_split each chunk."""
    return [w for chunk in WHITESPACE_RE.split(text) if chunk
            for w in basic_split(chunk, lowercase, accents)]


def wordpiece_word(word: str, vocab, unk="[UNK]", max_chars=MAX_WORD_CHARS) -> list:
    """Greedy longest-match-first: take the longest prefix in vocab, then the longest "##" piece
    of the rest, and so on; if some position has no piece, the whole word is [unk]."""
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


def join_pieces(tokens) -> str:
    """BERT's decoding: tokens joined by spaces, then every " ##" removed."""
    return " ".join(tokens).replace(" ##", "")


def read_vocab_file(path) -> list:
    """A vocab.txt: one token per line, the line number is the id (BERT's format)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"WordPiece vocabulary {path} does not exist: give a vocab.txt file "
                         "with one token per line")
    try:
        vocab = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"WordPiece vocabulary {path} is not UTF-8 ({err})") from None
    if vocab and vocab[-1] == "":
        vocab.pop()
    return vocab


class WordPieceTokenizer(Tokenizer):
    """ids = line numbers of the vocabulary; encode = basic_tokenize + wordpiece_word.

    Words missing from the vocabulary become [UNK]: those are the `fallback` tokens here.
    Options: lowercase (BERT uncased), accents (None: strip when lowercasing), eot (the token
    used between documents, [SEP] by default). decode(encode(s)) == s only for texts whose words
    are separated by single spaces, with no [UNK], lowercase where lowercased.
    """

    name = "wordpiece"

    def __init__(self, vocab, lowercase=False, accents=None, unk="[UNK]", eot="[SEP]",
                 max_chars=MAX_WORD_CHARS):
        self.vocab = list(vocab)
        self.token_to_id = {}
        for i, t in enumerate(self.vocab):
            if not isinstance(t, str) or not t:
                raise ValueError(f"vocabulary entry {i} is {t!r}: every token must be a "
                                 "non-empty string")
            self.token_to_id.setdefault(t, i)  # BERT keeps the first id of a repeated token
        for role, tok in (("unk", unk), ("eot", eot)):
            if tok not in self.token_to_id:
                raise ValueError(f"{role} token {tok!r} is not in the vocabulary: add it or pass "
                                 f"{role}=<a token of the vocabulary>")
        self.lowercase, self.accents, self.unk, self.eot = lowercase, accents, unk, eot
        self.max_chars = max_chars
        self.unk_id = self.token_to_id[unk]
        self.eot_id = self.token_to_id[eot]
        self.token_bytes = [t.encode("utf-8") for t in self.vocab]
        self._cache = {}

    @classmethod
    def from_vocab_file(cls, path, **options):
        """Load BERT's plain-text vocabulary (one token per line) with the given options."""
        return cls(read_vocab_file(path), **options)

    def save_vocab(self, path) -> None:
        """Write the vocabulary as BERT's vocab.txt (the options are not in it)."""
        atomic_write_text(path, "".join(t + "\n" for t in self.vocab))

    def options(self) -> dict:
        return {"lowercase": self.lowercase, "accents": self.accents, "unk": self.unk,
                "eot": self.eot, "max_chars": self.max_chars}

    def words(self, text: str) -> list:
        """The basic tokenizer's words (before WordPiece)."""
        return basic_tokenize(self.check_text(text), self.lowercase, self.accents)

    def tokens(self, text: str) -> list:
        """The WordPiece tokens of text as strings ("##" marks a continuation)."""
        return [self.vocab[i] for i in self.encode(text)]

    def _encode_piece(self, chunk: str):
        ids, n_unk = [], 0
        get = self.token_to_id.get
        for word in basic_split(chunk, self.lowercase, self.accents):
            for piece in wordpiece_word(word, self.token_to_id, self.unk, self.max_chars):
                ids.append(get(piece))
                n_unk += piece == self.unk
        return tuple(ids), n_unk

    def encode_stats(self, text: str):
        """(ids, number of [UNK] tokens)."""
        return self.encode_pieces(c for c in WHITESPACE_RE.split(self.check_text(text)) if c)

    def decode(self, ids) -> str:
        return join_pieces(self.vocab[i] for i in self.check_ids(ids))

    def token_str(self, i: int) -> str:
        return self.vocab[i]

    def state(self) -> dict:
        return {"vocab": self.vocab, "options": self.options()}

    @classmethod
    def from_state(cls, data: dict, path=None):
        vocab = require_strings(data, "vocab", path, "a list of token strings (the vocabulary)")
        options = require(data, "options", dict, path, f"an object with keys {OPTION_TYPES}")
        for key, value in options.items():
            kinds = OPTION_TYPES.get(key)
            if kinds is None:
                raise ValueError(f"tokenizer file {path}: key 'options' has an unknown option "
                                 f"{key!r}: expected only {sorted(OPTION_TYPES)}")
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ValueError(f"tokenizer file {path}: option {key!r} is {value!r}, expected "
                                 f"{' or '.join(k.__name__ for k in kinds)}")
        try:
            return cls(vocab, **options)
        except ValueError as err:
            raise ValueError(f"tokenizer file {path}: {err}") from None

    @classmethod
    def train(cls, text: str, vocab_size=2048, lowercase=False, accents=None, min_count=2,
              rule="likelihood"):
        """Learn a vocabulary of vocab_size tokens from text (train_wordpiece, Eq. 4.6)."""
        check_range("vocab_size", vocab_size, len(SPECIALS) + 1, kind=int)
        check_range("min_count", min_count, 1, kind=int)
        check_choice("rule", rule, ["likelihood", "ratio"])
        words = Counter(basic_tokenize(text, lowercase, accents))
        vocab = train_wordpiece(words, vocab_size, min_count, rule)
        return cls(vocab, lowercase=lowercase, accents=accents)


def _continuation(t: str) -> str:
    return t.removeprefix("##")


def train_wordpiece(words: Counter, vocab_size: int, min_count=2, rule="likelihood") -> list:
    """The vocabulary learned from word counts by likelihood-based merging.

    Start from characters (the first of a word as itself, the others as "##c"; characters seen
    fewer than min_count times are left out and their words become [UNK]), then repeatedly
    merge the pair (a, b) seen at least min_count times with the highest score into a + b
    without its "##". With n(t) the count of token t in the segmented words and N their sum, a
    unigram model of the tokens gains about

        rule="likelihood":  score(a, b) = n(a, b) log( n(a, b) N / (n(a) n(b)) )      (Eq. 4.6)

    in log-likelihood when (a, b) becomes one token (Schuster & Nakajima 2012): pairs that are
    frequent *and* whose parts seldom occur apart. rule="ratio" drops the weight and the log,
    score = n(a, b) / (n(a) n(b)), the form the Hugging Face course gives; it favours rare
    pairs. Ties go to the pair whose tokens came first. Incremental: only words holding the
    merged pair are re-counted; a heap with lazy deletion finds the best pair (N only shrinks,
    so a stored score is an upper bound until it is refreshed).
    """
    char_counts = Counter()
    for w, n in words.items():
        for k, c in enumerate(w):
            char_counts[c if k == 0 else "##" + c] += n
    alphabet = sorted((t for t, n in char_counts.items() if n >= min_count),
                      key=lambda t: (-char_counts[t], t))
    vocab = list(SPECIALS) + alphabet
    index = {t: i for i, t in enumerate(vocab)}
    seqs, counts = [], []
    for w, n in words.items():
        seq = [index.get(w[0])] + [index.get("##" + c) for c in w[1:]]
        if None not in seq:  # a word with a character left out stays [UNK]
            seqs.append(seq)
            counts.append(n)
    tok_n = Counter()
    pairs = Counter()
    where = defaultdict(set)
    by_token = defaultdict(set)
    for k, (seq, n) in enumerate(zip(seqs, counts)):
        for t in seq:
            tok_n[t] += n
        for p in itertools.pairwise(seq):
            pairs[p] += n
            where[p].add(k)
            by_token[p[0]].add(p)
            by_token[p[1]].add(p)

    total = [sum(tok_n.values())]  # N, the number of tokens in the segmented text

    def score(p):
        n = pairs[p]
        if rule == "ratio":
            return n / (tok_n[p[0]] * tok_n[p[1]])
        return n * math.log(n * total[0] / (tok_n[p[0]] * tok_n[p[1]]))

    heap = [(-score(p), p) for p, n in pairs.items() if n >= min_count]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, p = heapq.heappop(heap)
        if pairs.get(p, 0) < min_count:  # stale entry
            continue
        fresh = score(p)
        if fresh != -neg:  # N shrank since it was pushed (its score can only have fallen)
            heapq.heappush(heap, (-fresh, p))
            continue
        total[0] -= pairs[p]
        a, b = p
        merged = vocab[a] + _continuation(vocab[b])
        new = index.get(merged)
        if new is None:
            new = index[merged] = len(vocab)
            vocab.append(merged)
        changed = set()
        for k in where.pop(p):
            seq, n = seqs[k], counts[k]
            for q in itertools.pairwise(seq):
                pairs[q] -= n
                changed.add(q)
            for t in seq:
                tok_n[t] -= n
            seq = seqs[k] = _merge(seq, a, b, new)
            for t in seq:
                tok_n[t] += n
            for q in itertools.pairwise(seq):
                pairs[q] += n
                where[q].add(k)
                by_token[q[0]].add(q)
                by_token[q[1]].add(q)
                changed.add(q)
        for t in (a, b, new):  # their counts changed: so did the score of every pair holding them
            changed |= by_token[t]
        for q in changed:
            if pairs.get(q, 0) >= min_count:
                heapq.heappush(heap, (-score(q), q))
            elif pairs.get(q, 1) <= 0:
                pairs.pop(q, None)
                where.pop(q, None)
                by_token[q[0]].discard(q)
                by_token[q[1]].discard(q)
    return vocab


def _merge(seq, a, b, new):
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def lossiness(tok: WordPieceTokenizer, texts) -> dict:
    """What decode(encode(text)) loses over texts: the fraction of texts that round-trip
    exactly, the fraction equal once whitespace is ignored, once whitespace and case are ignored,
    [UNK] tokens per token and the fraction of non-space characters inside [UNK] words."""
    n = exact = no_ws = no_ws_case = 0
    n_tokens = n_unk = unk_chars = chars = 0
    for text in texts:
        n += 1
        ids = tok.encode(text)
        back = tok.decode(ids)
        exact += back == text
        a, b = re.sub(r"\s+", "", back), re.sub(r"\s+", "", text)
        no_ws += a == b
        no_ws_case += a.lower() == b.lower() or strip_accents(a.lower()) == strip_accents(b.lower())
        n_tokens += len(ids)
        n_unk += ids.count(tok.unk_id)
        words = tok.words(text)
        chars += sum(len(w) for w in words)
        unk_chars += sum(len(w) for w in words
                         if tok.unk in wordpiece_word(w, tok.token_to_id, tok.unk, tok.max_chars))
    n = max(n, 1)
    return {"texts": n, "roundtrip": exact / n, "equal_ignoring_whitespace": no_ws / n,
            "equal_ignoring_whitespace_and_case": no_ws_case / n,
            "unk_per_token": n_unk / max(n_tokens, 1),
            "unk_char_fraction": unk_chars / max(chars, 1)}
