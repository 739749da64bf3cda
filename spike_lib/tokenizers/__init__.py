"""Tokenizers by name: `get_tokenizer("syllable")` loads the shipped one, `load_tokenizer(path)`
any saved one; all share encode/decode/vocab_size/save. All are lossless except the WordPiece
family (wordpiece, bert-cased, bert-chinese), which drops whitespace and unknown words.

Taught in: notebooks/04_tokenizers.ipynb
"""

from pathlib import Path

from spike_lib.core.config import check_choice
from spike_lib.tokenizers.base import EOT, Tokenizer, read_json
from spike_lib.tokenizers.bpe import BPETokenizer
from spike_lib.tokenizers.char import CharTokenizer
from spike_lib.tokenizers.gpt2 import GPT2Tokenizer
from spike_lib.tokenizers.syllable import SyllableTokenizer
from spike_lib.tokenizers.wordpiece import WordPieceTokenizer

TOKENIZERS = {
    "char": CharTokenizer,
    "syllable": SyllableTokenizer,
    "bpe": BPETokenizer,
    "gpt2": GPT2Tokenizer,
    "wordpiece": WordPieceTokenizer,
    "bert-cased": WordPieceTokenizer,  # BERT-base-cased's vocabulary (data/tokenizers/*.txt)
    "bert-chinese": WordPieceTokenizer,  # BERT-base-Chinese's, lowercased like blingfire's
}
LOSSY = ("wordpiece", "bert-cased", "bert-chinese")
DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "tokenizers"


def shipped_path(name: str) -> Path:
    """Where the course's trained tokenizer `name` lives: data/tokenizers/<name>.json
    (a plain vocab.txt, <name>.txt, for the WordPiece family)."""
    return DATA_DIR / (f"{name}.txt" if name in LOSSY else f"{name}.json")


def get_tokenizer(name: str, train_text=None, **kwargs) -> Tokenizer:
    """The tokenizer `name`: trained on train_text (kwargs go to .train) if given, otherwise the
    shipped file from data/tokenizers/ (gpt2 always loads its rank file; kwargs go to it;
    bert-cased and bert-chinese always load BERT's vocabulary)."""
    check_choice("tokenizer", name, list(TOKENIZERS))
    cls = TOKENIZERS[name]
    if name == "gpt2":
        return cls(**kwargs)
    if name.startswith("bert-"):
        from spike_lib.tokenizers.bert import load_bert

        return load_bert(name)
    if train_text is not None:
        return cls.train(train_text, **kwargs)
    path = shipped_path(name)
    if not path.is_file():
        raise ValueError(
            f"no shipped {name!r} tokenizer at {path}: pass train_text=... to train one"
        )
    if name == "wordpiece":
        return cls.from_vocab_file(path)
    return cls.load(path)


def load_tokenizer(path, vocab_size=None) -> Tokenizer:
    """Load any tokenizer saved with .save(path) (JSON; the 'type' field picks the class).

    vocab_size: the size the model reading it was built for (a checkpoint's config); a tokenizer
    of another size is refused here rather than failing mid-generation."""
    data = read_json(path)
    check_choice(f"type in {path}", data["type"], list(TOKENIZERS))
    tok = TOKENIZERS[data["type"]].from_state(data, path)
    if vocab_size is not None and tok.vocab_size != vocab_size:
        raise ValueError(
            f"tokenizer file {path} has {tok.vocab_size:,} tokens but the model's vocab_size is "
            f"{vocab_size:,}: the checkpoint holds a tokenizer from another run; copy the "
            "tokenizer.json saved with these weights"
        )
    return tok


def build_shipped_tokenizers(text=None, out_dir=DATA_DIR, num_syllables=2000) -> dict:
    """Train the shipped char, syllable, bpe and wordpiece tokenizers on the corpus training split
    (BPE and WordPiece with the syllable tokenizer's vocabulary size, for a fair comparison);
    save them; return sizes. WordPiece is saved as a plain vocab.txt (wordpiece.txt)."""
    if text is None:
        from spike_lib.data.corpus import corpus_text

        text = corpus_text("train")
    out_dir = Path(out_dir)
    char = CharTokenizer.train(text)
    syl = SyllableTokenizer.train(text, num_syllables=num_syllables)
    bpe = BPETokenizer.train(text, vocab_size=syl.vocab_size)
    sizes = {}
    for name, tok in (("char", char), ("syllable", syl), ("bpe", bpe)):
        tok.save(out_dir / f"{name}.json")
        sizes[name] = tok.vocab_size
    wordpiece = WordPieceTokenizer.train(text, vocab_size=syl.vocab_size)
    wordpiece.save_vocab(out_dir / "wordpiece.txt")
    sizes["wordpiece"] = wordpiece.vocab_size
    return sizes


__all__ = [
    "EOT",
    "LOSSY",
    "TOKENIZERS",
    "BPETokenizer",
    "CharTokenizer",
    "GPT2Tokenizer",
    "SyllableTokenizer",
    "Tokenizer",
    "WordPieceTokenizer",
    "build_shipped_tokenizers",
    "get_tokenizer",
    "load_tokenizer",
    "shipped_path",
]
