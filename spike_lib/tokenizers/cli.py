"""`python -m spike_lib tokenize --tokenizer NAME --text-file F`: tokens, characters per token,
fallback fraction ([UNK] tokens for the WordPiece family) and whether decode(encode(text)) == text.

Taught in: notebooks/04_tokenizers.ipynb
"""

from pathlib import Path

NAMES = ("char", "syllable", "bpe", "gpt2", "wordpiece", "bert-cased", "bert-chinese")


def read_text_file(path) -> str:
    """Read a UTF-8 text file; a missing or non-UTF-8 file raises a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"text file {path} does not exist: pass an existing file to --text-file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"text file {path} is not UTF-8 (bad byte 0x{data[err.start]:02x} at offset "
            f"{err.start}): convert it, e.g. `iconv -f latin1 -t utf-8`"
        ) from None


def measure(tok, text: str) -> dict:
    """The numbers the command prints, for any tokenizer and text (characters per token counts
    the characters of the original text, also for a lossy tokenizer)."""
    ids, n_fallback = tok.encode_stats(text)
    n = len(ids)
    return {
        "tokens": n,
        "chars_per_token": len(text) / n if n else 0.0,
        "fallback_fraction": n_fallback / n if n else 0.0,
        "roundtrip": tok.decode(ids) == text,
    }


def add_arguments(parser) -> None:
    parser.add_argument("--tokenizer", default="syllable", choices=NAMES,
                        help="which shipped tokenizer (data/tokenizers/)")
    parser.add_argument("--tokenizer-file", default=None,
                        help="a saved tokenizer JSON to use instead of the shipped one")
    parser.add_argument("--text-file", required=True, help="a UTF-8 text file to tokenize")


def run(args) -> dict:
    from spike_lib.tokenizers import get_tokenizer, load_tokenizer

    text = read_text_file(args.text_file)
    if args.tokenizer_file:
        tok = load_tokenizer(args.tokenizer_file)
    else:
        tok = get_tokenizer(args.tokenizer)
    return measure(tok, text)
