"""Byte-level byte-pair encoding (BPE) trained from scratch: repeatedly merge the most frequent
adjacent pair of tokens into a new token (Sennrich et al. 2016; byte-level as in GPT-2).

Taught in: notebooks/04_tokenizers.ipynb
"""

import heapq
import itertools
import re
from collections import Counter, defaultdict

from spike_lib.core.config import check_range
from spike_lib.tokenizers.base import EOT, Tokenizer, byte_tokens, require

# GPT-2's pre-tokenizer written for the standard `re` module ([^\W\d_] = a letter): merges
# never cross these piece boundaries, so a token never spans a word and the next space.
PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+|[\s\S]"""
)
# the only pre-tokenizer patterns a tokenizer file may name: a regex read from a file could take
# exponential time to match (`(\w+\s?)+$`), so files choose from this table, by name or exact text
PATTERNS = {"gpt2": PATTERN}
HEAP_MIN = 64  # pieces of more bytes merge with a heap (merge_heap): O(n log n), not O(n^2)


def check_pattern(pattern, path=None) -> str:
    """The regex of a known pre-tokenizer (a name in PATTERNS or one of its exact strings)."""
    if pattern in PATTERNS:
        return PATTERNS[pattern]
    if pattern in PATTERNS.values():
        return pattern
    where = f"tokenizer file {path}: " if path is not None else ""
    shown = pattern if not isinstance(pattern, str) or len(pattern) < 60 else pattern[:60] + "..."
    raise ValueError(
        f"{where}pre-tokenizer pattern {shown!r} is not one spike_lib writes; allowed: "
        f"{sorted(PATTERNS)} (or their exact text). A pattern from a file is refused because a "
        "regex can take hours to match: re-train the tokenizer with a known pattern"
    )


def merge_scan(data: bytes, ranks: dict) -> list:
    """The reference rule: repeatedly merge the adjacent pair whose merged bytes have the lowest
    id, leftmost first; each step scans every pair, so a piece of n bytes costs O(n^2)."""
    parts = [data[i : i + 1] for i in range(len(data))]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at : at + 2] = [parts[at] + parts[at + 1]]
    return parts


def merge_heap(data: bytes, ranks: dict, counter=None) -> list:
    """The same merges as merge_scan, from a heap of the adjacent pairs keyed by (id, position):
    each merge pops one pair and pushes at most two (the merged part with its left and with its
    right neighbour), so a piece of n bytes costs at most 3n heap operations, O(n log n) time.
    Parts form a linked list of byte spans; a popped entry is stale when its pair's bytes no
    longer have that id (distinct tokens have distinct bytes). counter (a dict) receives the
    number of "pushes", "pops" and "merges"."""
    n = len(data)
    m = n + 1  # heap key = id * m + position: ties go to the leftmost pair, no tuples built
    end = list(range(1, n + 1))  # the part starting at byte i is data[i:end[i]]; -1: merged away
    nxt = list(range(1, n + 1))  # start of the next part (n: none)
    prv = list(range(-1, n - 1))
    get, heappush, heappop = ranks.get, heapq.heappush, heapq.heappop
    heap = [r * m + i for i in range(n - 1) if (r := get(data[i : i + 2])) is not None]
    heapq.heapify(heap)
    pushes, pops, merges = len(heap), 0, 0
    while heap:
        r, i = divmod(heappop(heap), m)
        pops += 1
        j = nxt[i]
        if end[i] < 0 or j >= n or get(data[i : end[j]]) != r:  # stale
            continue
        end[i] = end[j]  # part j joins part i
        k = nxt[i] = nxt[j]
        if k < n:
            prv[k] = i
        end[j] = -1
        merges += 1
        h = prv[i]
        if h >= 0 and (r := get(data[h : end[i]])) is not None:
            heappush(heap, r * m + h)
            pushes += 1
        if k < n and (r := get(data[i : end[k]])) is not None:
            heappush(heap, r * m + i)
            pushes += 1
    if counter is not None:
        for key, v in (("pushes", pushes), ("pops", pops), ("merges", merges)):
            counter[key] = counter.get(key, 0) + v
    parts, i = [], 0
    while i < n:
        parts.append(data[i : end[i]])
        i = nxt[i]
    return parts


def count_pairs(words, counts):
    """Eq. 4.2: n(a, b) = sum over words w of count(w) * (occurrences of a, b adjacent in w)."""
    pairs = Counter()
    for w, n in zip(words, counts):
        for pair in itertools.pairwise(w):
            pairs[pair] += n
    return pairs


def merge_word(w, a, b, new):
    """Replace every adjacent (a, b) in w, left to right, by the id `new`."""
    out, i = [], 0
    while i < len(w):
        if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(w[i])
            i += 1
    return out


def train_merges(pieces: Counter, num_merges: int):
    """Learn up to num_merges merges [(a, b), ...]; merge k creates token id 256 + k.

    Incremental: pair counts and, for each pair, the set of words containing it are updated only
    for the words a merge touches; a heap with lazy deletion finds the most frequent pair
    (ties: smallest ids). A merge whose bytes already exist as a token is skipped.
    """
    words = [list(p.encode("utf-8")) for p in pieces]
    counts = list(pieces.values())
    pairs = count_pairs(words, counts)
    where = defaultdict(set)
    for k, w in enumerate(words):
        for pair in itertools.pairwise(w):
            where[pair].add(k)
    heap = [(-n, p) for p, n in pairs.items()]
    heapq.heapify(heap)
    token_bytes = byte_tokens()
    seen = set(token_bytes)
    banned = set()  # pairs whose merged bytes already exist as a token
    merges = []
    while len(merges) < num_merges and heap:
        neg, pair = heapq.heappop(heap)
        if pair in banned or pairs.get(pair, 0) != -neg:  # stale heap entry
            continue
        if -neg < 2:  # every remaining pair occurs once: nothing left to compress
            break
        merged = token_bytes[pair[0]] + token_bytes[pair[1]]
        if merged in seen:  # same bytes reachable another way: do not add a duplicate token
            banned.add(pair)
            continue
        new = len(token_bytes)
        token_bytes.append(merged)
        seen.add(merged)
        merges.append(pair)
        changed = set()
        for k in where.pop(pair):
            w, n = words[k], counts[k]
            for p in itertools.pairwise(w):
                pairs[p] -= n
                changed.add(p)
            w = words[k] = merge_word(w, pair[0], pair[1], new)
            for p in itertools.pairwise(w):
                pairs[p] += n
                where[p].add(k)
                changed.add(p)
        for p in changed:
            if pairs.get(p, 0) > 0:
                heapq.heappush(heap, (-pairs[p], p))
            else:
                pairs.pop(p, None)
    return merges


class BPETokenizer(Tokenizer):
    """ids 0..255 bytes, 256 + k the k-th merge (bytes of a + bytes of b), last id <|endoftext|>.

    Encoding a piece repeatedly merges the adjacent pair whose merged bytes have the lowest id
    (the earliest learned merge), leftmost first: the rule tiktoken uses, so tiktoken built
    from these ranks gives the same ids. Every string is lossless: bytes are always in vocab.
    """

    name = "bpe"

    def __init__(self, merges=(), pattern=PATTERN):
        self.merges = [tuple(m) for m in merges]
        self.pattern = pattern
        self.regex = re.compile(pattern)  # a pattern from a file was checked by check_pattern
        self.token_bytes = byte_tokens()
        for k, (a, b) in enumerate(self.merges):
            if not (0 <= a < 256 + k and 0 <= b < 256 + k):
                raise ValueError(f"merge {k} = ({a}, {b}) uses an id not yet defined: bad file")
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self.ranks = {tb: i for i, tb in enumerate(self.token_bytes)}
        if len(self.ranks) != len(self.token_bytes):
            raise ValueError("merges produce duplicate tokens: not a valid BPE vocabulary")
        self.eot_id = len(self.token_bytes)
        self.token_bytes.append(EOT.encode("utf-8"))
        self._cache = {}

    @classmethod
    def train(cls, text: str, vocab_size=2048, pattern=PATTERN):
        """Learn vocab_size - 257 merges (256 bytes + 1 end-of-text token) from text."""
        check_range("vocab_size", vocab_size, 257, kind=int)
        pieces = Counter(re.findall(pattern, text))
        return cls(train_merges(pieces, vocab_size - 257), pattern)

    def _encode_piece(self, piece: str):
        ranks = self.ranks
        data = piece.encode("utf-8")
        merge = merge_scan if len(data) <= HEAP_MIN else merge_heap  # same ids, see tests
        ids = tuple(ranks[p] for p in merge(data, ranks))
        # fallback: a lone byte >= 0x80, i.e. a piece of a character the merges never covered
        return ids, sum(1 for i in ids if 128 <= i < 256)

    def encode_stats(self, text: str):
        return self.encode_pieces(self.regex.findall(self.check_text(text)))

    def to_tiktoken(self):
        """The same tokenizer as a tiktoken.Encoding (fast Rust encoder; used to check parity)."""
        import tiktoken

        ranks = {tb: i for i, tb in enumerate(self.token_bytes[: self.eot_id])}
        return tiktoken.Encoding(
            name=f"spike_bpe_{self.vocab_size}",
            pat_str=self.pattern,
            mergeable_ranks=ranks,
            special_tokens={EOT: self.eot_id},
        )

    def state(self) -> dict:
        return {"pattern": self.pattern, "merges": [list(m) for m in self.merges]}

    @classmethod
    def from_state(cls, data: dict, path=None):
        merges = require(data, "merges", list, path, "a list of [id, id] pairs")
        bad = next((k for k, m in enumerate(merges) if not (
            isinstance(m, list) and len(m) == 2 and all(type(x) is int for x in m))), None)
        if bad is not None:
            raise ValueError(f"tokenizer file {path}: key 'merges' must be a list of [id, id] "
                             f"pairs of ints; entry {bad} is {merges[bad]!r}")
        pattern = check_pattern(data.get("pattern", PATTERN), path)
        try:
            return cls(merges, pattern)
        except ValueError as err:
            raise ValueError(f"tokenizer file {path}: key 'merges': {err}") from None
