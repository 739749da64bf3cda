"""The shipped corpus: document records, the train/val/test split rule, and the loaders.

Taught in: notebooks/03_corpus.ipynb
"""

# a document is {"id", "source", "title", "category", "category_id", "licence", "url", "text"};
# each split is one gzip-compressed JSONL file in data/corpus/.
import gzip
import hashlib
import io
import json
import os
import re
from pathlib import Path

from spike_lib.core.atomic import atomic_file
from spike_lib.data.sources import CATEGORIES

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)
FIELDS = ("id", "source", "title", "category", "category_id", "licence", "url", "text")
REPORT_NAME = "build_report.json"
SAMPLE_NAME = "wikitext_sample.json"  # one raw Wikipedia page, to show the cleaning offline


def data_dir() -> Path:
    """The repository's data/ folder (or $SPIKE_DATA_DIR, e.g. for a build into a scratch dir)."""
    env = os.environ.get("SPIKE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def split_path(split: str, root=None) -> Path:
    return Path(root or data_dir()) / "corpus" / f"{split}.jsonl.gz"


def split_score(source: str, title: str) -> float:
    """A number in [0, 1) fixed by the document's source and title (sha256): the split key."""
    digest = hashlib.sha256(f"{source}\x00{title}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(source: str, title: str, fractions=SPLIT_FRACTIONS) -> str:
    """'train', 'val' or 'test' for a document: deterministic, by document, so no text of a
    test document is ever in train; the same document lands in the same split on every build."""
    score, edge = split_score(source, title), 0.0
    for name, frac in zip(SPLITS, fractions):
        edge += frac
        if score < edge:
            return name
    return SPLITS[-1]


def doc_id(source: str, title: str) -> str:
    return f"{source}:{hashlib.sha256(f'{source}/{title}'.encode()).hexdigest()[:10]}"


def make_record(source: str, title: str, category: str, licence: str, url: str, text: str):
    """A corpus document; the category must be one of CATEGORIES."""
    if category not in CATEGORIES:
        raise ValueError(f"category {category!r} of {source}/{title} is not one of {CATEGORIES}")
    return {
        "id": doc_id(source, title),
        "source": source,
        "title": title,
        "category": category,
        "category_id": CATEGORIES.index(category),
        "licence": licence,
        "url": url,
        "text": text,
    }


def split_into_parts(title: str, text: str, max_chars: int = 40_000) -> list[tuple[str, str]]:
    """Cut a long book into parts of <= max_chars at paragraph breaks: ('Emma (part 2)', text).

    Books are split into parts so that each split holds some of every kind of text; each part
    is its own document for the split rule.
    """
    if len(text) <= max_chars:
        return [(title, text)]
    parts, current, size = [], [], 0
    for para in re.split(r"\n\s*\n", text):
        if current and size + len(para) > max_chars:
            parts.append("\n\n".join(current))
            current, size = [], 0
        current.append(para)
        size += len(para) + 2
    if current:
        parts.append("\n\n".join(current))
    return [(f"{title} (part {i + 1})", p) for i, p in enumerate(parts)]


def write_jsonl_gz(path, records) -> int:
    """Write records as gzip JSONL atomically (temp file + os.replace); returns the count.

    mtime=0 and sorted keys make the bytes depend on the records only.
    """
    n = 0
    with (
        atomic_file(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="", compresslevel=9) as gz,
    ):
        for rec in records:
            gz.write((json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode())
            n += 1
    return n


def read_jsonl_gz(path, fields=FIELDS) -> list[dict]:
    """Records of a gzip JSONL file; a truncated or bad line raises ValueError naming the line."""
    path = Path(path)
    if not path.exists():
        raise ValueError(
            f"{path} does not exist; run `python -m spike_lib data build` (or check "
            f"out data/ from the repository again)"
        )
    fix = "restore it (`git checkout -- data/`) or rebuild with `python -m spike_lib data build`"
    records = []
    try:
        with gzip.open(path, "rb") as gz:
            for lineno, line in enumerate(io.TextIOWrapper(gz, encoding="utf-8"), 1):
                if not line.endswith("\n"):
                    raise ValueError(
                        f"{path} line {lineno} is truncated (no newline at the end); {fix}"
                    )
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(
                        f"{path} line {lineno} is not valid JSON ({err}); {fix}"
                    ) from err
                missing = [f for f in fields if f not in rec]
                if missing:
                    raise ValueError(f"{path} line {lineno} lacks the fields {missing}; {fix}")
                records.append(rec)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is corrupt ({type(err).__name__}: {err}); {fix}") from err
    return records


def load_corpus(split: str = "train", root=None, sources=None) -> list[dict]:
    """The documents of one split ('train', 'val', 'test'), optionally only some sources."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    docs = read_jsonl_gz(split_path(split, root))
    if sources is not None:
        docs = [d for d in docs if d["source"] in set(sources)]
    return docs


def corpus_text(split: str = "train", root=None, sources=None, sep: str = "\n\n") -> str:
    """All text of one split as a single string, documents joined by `sep` (for tokenizers)."""
    return sep.join(d["text"] for d in load_corpus(split, root, sources))


def load_report(root=None) -> dict:
    """The build report shipped with the corpus (filter counts, sizes, timings)."""
    path = Path(root or data_dir()) / "corpus" / REPORT_NAME
    if not path.exists():
        raise ValueError(f"{path} does not exist; run `python -m spike_lib data build`")
    return json.loads(path.read_text(encoding="utf-8"))


def load_wikitext_sample(root=None) -> dict:
    """{'title', 'categories', 'wikitext', 'url', 'licence'}: one raw page of the dump."""
    path = Path(root or data_dir()) / "corpus" / SAMPLE_NAME
    if not path.exists():
        raise ValueError(f"{path} does not exist; run `python -m spike_lib data build`")
    return json.loads(path.read_text(encoding="utf-8"))


def summarize(docs) -> dict:
    """{(source, category): {'documents', 'characters', 'words'}} of a list of documents."""
    table = {}
    for d in docs:
        row = table.setdefault(
            (d["source"], d["category"]), {"documents": 0, "characters": 0, "words": 0}
        )
        row["documents"] += 1
        row["characters"] += len(d["text"])
        row["words"] += len(d["text"].split())
    return dict(sorted(table.items()))
