"""`python -m spike_lib bench tokenizers`: encode throughput (MB/s) of every tokenizer on one core.

Taught in: notebooks/04_tokenizers.ipynb
"""

import time

from spike_lib.train.bench import median_seconds

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


def bench_tokenizers(text=None, names=("char", "syllable", "bpe", "gpt2"), repeats=3) -> dict:
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
    return bench_tokenizers(bench_text(getattr(args, "mb", DEFAULT_MB)))
