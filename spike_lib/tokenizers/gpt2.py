"""GPT-2's byte-level BPE (50,257 tokens) through tiktoken, from the rank file shipped in
data/tokenizers/gpt2.tiktoken (OpenAI, MIT; taken from the openai-whisper==20250625 sdist).

Taught in: notebooks/04_tokenizers.ipynb
"""

import json
from pathlib import Path

from spike_lib.tokenizers.base import EOT, FORMAT_VERSION, Tokenizer, atomic_write_text

RANK_FILE = "gpt2.tiktoken"
RANK_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
RANK_BYTES = 835_554
# GPT-2's pre-tokenizer (tiktoken's r50k_base pattern)
PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def default_rank_file() -> Path:
    return Path(__file__).resolve().parents[2] / "data" / "tokenizers" / RANK_FILE


class GPT2Tokenizer(Tokenizer):
    """GPT-2 BPE (Radford et al. 2019): 256 byte tokens + 50,000 merges + <|endoftext|> = 50256.

    encode uses tiktoken's encode_ordinary, so "<|endoftext|>" inside text is plain text and
    decode(encode(s)) == s for every string. Fallback tokens: lone bytes >= 0x80.
    """

    name = "gpt2"

    def __init__(self, rank_file=None):
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe

        path = Path(rank_file) if rank_file is not None else default_rank_file()
        if not path.is_file():
            raise ValueError(
                f"GPT-2 rank file {path} is missing: it ships in data/tokenizers/ "
                "(or take whisper/assets/gpt2.tiktoken from `pip download --no-deps "
                "--no-binary :all: openai-whisper==20250625`)"
            )
        try:
            ranks = load_tiktoken_bpe(str(path), expected_hash=RANK_SHA256)
        except ValueError as err:
            raise ValueError(f"GPT-2 rank file {path} is damaged ({err}): restore it") from None
        self.rank_file = path
        self.eot_id = len(ranks)
        self.enc = tiktoken.Encoding(
            name="gpt2", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens={EOT: self.eot_id}
        )
        self.token_bytes = [b"" for _ in range(self.eot_id + 1)]
        for tb, i in ranks.items():
            self.token_bytes[i] = tb
        self.token_bytes[self.eot_id] = EOT.encode("utf-8")
        self._fallback = {i for i, tb in enumerate(self.token_bytes) if len(tb) == 1 and tb[0] >= 128}

    def encode(self, text: str) -> list:
        return self.enc.encode_ordinary(self.check_text(text))

    def encode_stats(self, text: str):
        ids = self.encode(text)
        fallback = self._fallback
        return ids, sum(1 for i in ids if i in fallback)

    def decode(self, ids) -> str:
        return self.enc.decode(self.check_ids(ids), errors="replace")

    def save(self, path) -> None:
        """Save a small JSON that points at the rank file (relative to the JSON's folder)."""
        path = Path(path)
        try:
            rank = self.rank_file.resolve().relative_to(path.resolve().parent).as_posix()
        except ValueError:
            rank = str(self.rank_file.resolve())
        data = {"type": self.name, "version": FORMAT_VERSION, "rank_file": rank,
                "sha256": RANK_SHA256}
        atomic_write_text(path, json.dumps(data))

    @classmethod
    def from_state(cls, data: dict, path=None):
        rank = data.get("rank_file", RANK_FILE)
        if not isinstance(rank, str):
            raise ValueError(f"tokenizer file {path}: key 'rank_file' must be a path string, "  # noqa: TRY004
                             f"got {type(rank).__name__}")
        rank = Path(rank)
        if path is not None and not rank.is_absolute():
            rank = Path(path).resolve().parent / rank
        return cls(rank)
