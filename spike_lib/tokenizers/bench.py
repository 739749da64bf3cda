"""`python -m spike_lib bench tokenizers`: encode throughput (MB/s) of every tokenizer on one core.

Taught in: notebooks/04_tokenizers.ipynb
"""

import time

from spike_lib.core.training import median_seconds

DEFAULT_MB = 2.0


def bench_text(max_mb=DEFAULT_MB) -> str:
    """Real text to time on: the corpus validation split if it is built, else the QA contexts."""
    try:
        from spike_lib.data.corpus import corpus_text

        text = corpus_text("val")
    except (ImportError, OSError, ValueError):
        from spike_lib.data.qa import QA_DIR, load_qa

        text = "\n".join(sorted({r["context"] for r in load_qa(QA_DIR / "val.jsonl")}))
    return text[: int(max_mb * 1e6)]


def encode_mb_per_s(make_tokenizer, text: str, repeats=3) -> tuple:
    """(cold, warm) MB/s: cold = first encode with empty caches, warm = median of repeats."""
    tok = make_tokenizer()
    mb = len(text.encode("utf-8")) / 1e6
    start = time.perf_counter()
    tok.encode(text)
    cold = mb / (time.perf_counter() - start)
    warm = mb / median_seconds(lambda: tok.encode(text), repeats=repeats, warmup=0)
    return cold, warm


def no_whitespace_text(mb=1.0, text=None) -> str:
    """mb megabytes of letters with no whitespace or punctuation (the letters of the bench text,
    repeated): one pre-tokenizer piece, the worst case for BPE's merge loop."""
    import re

    letters = "".join(re.findall(r"[A-Za-z]+", bench_text() if text is None else text))
    n = int(mb * 1e6)
    return (letters * (n // max(len(letters), 1) + 1))[:n]


def bench_no_whitespace(mb=1.0, names=("bpe",)) -> dict:
    """Cold encode MB/s on a whitespace-free run of letters (issue 11 item 7: once quadratic)."""
    from spike_lib.tokenizers import get_tokenizer

    text = no_whitespace_text(mb)
    out = {"no_whitespace_mb": len(text) / 1e6}
    for name in names:
        tok = get_tokenizer(name)
        start = time.perf_counter()
        tok.encode(text)
        out[f"{name}_no_whitespace_mb_s"] = out["no_whitespace_mb"] / (time.perf_counter() - start)
    return out


NAMES = ("char", "syllable", "bpe", "gpt2", "wordpiece", "bert-cased")


def bench_tokenizers(text=None, names=NAMES, repeats=3) -> dict:
    """{name_mb_s, name_mb_s_cold} for each tokenizer, plus the text size timed."""
    from spike_lib.tokenizers import get_tokenizer

    text = bench_text() if text is None else text
    out = {"text_mb": len(text.encode("utf-8")) / 1e6}
    for name in names:
        cold, warm = encode_mb_per_s(lambda n=name: get_tokenizer(n), text, repeats)
        out[f"{name}_mb_s"] = warm
        out[f"{name}_mb_s_cold"] = cold
    return out


def run_bench(args) -> dict:
    out = bench_tokenizers(bench_text(getattr(args, "mb", DEFAULT_MB)))
    out.update(bench_no_whitespace(1.0))
    return out
