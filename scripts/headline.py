"""The course's headline results, each beside its reference point, as the table of book/intro.md.

    python scripts/headline.py            # print the table (markdown)
    python scripts/headline.py --check    # exit 1 if book/intro.md does not hold exactly this table

Every number is read from a stored benchmark or recomputed from shipped data, never typed:
data/benchmarks/book_models.json (chapter 8b's test protocol), data/checkpoints/context_sweep.json
and data/benchmarks/decay_recall.json (recall, chapters 8c and 8e), data/checkpoints/book-qa/qa.json
with the QA reference points recomputed by spike_lib.train.qa_baselines (chapter 9b), and the newest
data/benchmarks/speed_*.json (chapter 7b). tests/test_headline.py runs the check, so the front page
cannot drift from the benchmarks.
"""

import argparse
import json
import sys
from pathlib import Path

from spike_lib.data.qa import QA_DIR
from spike_lib.train import qa_baselines as qb
from spike_lib.train.bookmodel import SPIKEGPT, spiking_gap
from spike_lib.train.finetune import load_qa_file

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
INTRO = ROOT / "book" / "intro.md"
HEADER = ("| result | the spiking model | reference points |\n"
          "|---|---|---|")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _gap(g: dict) -> str:
    return f"{g['gap']:+.3f} ± {g['se']:.3f} BPC ({g['percent']:+.1f} %)"


def language_rows(bench: dict) -> list:
    """Chapter 8b: the shipped models on the test protocol, and the gaps at equal minutes."""
    ev, shipped = bench["models"], bench["shipped"]
    book, twin, soft = (ev[shipped[n]] for n in ("book", "book-twin", "book-softmax"))
    tri = bench["ngrams"]["KN trigram (whole train)"]
    gaps = {(g["a"], g["b"]): g for g in bench["gaps"].values()}
    spikes = gaps[(shipped["book"], shipped["book-twin"])]
    attention = gaps[(shipped["book-twin"], shipped["book-softmax"])]
    total = gaps[(shipped["book"], shipped["book-softmax"])]
    spikegpt = spiking_gap(SPIKEGPT["bpc"], SPIKEGPT["twin_bpc"])["percent"]
    return [
        ("bits per character on the test text, 8 sources", f"{book['test_bpc']:.3f}",
         f"count trigram {tri['test_bpc']:.3f}; softmax twin {soft['test_bpc']:.3f}", "8b"),
        ("bits per character on literary prose, target <= 2.0", f"{book['literary_bpc']:.3f}",
         f"count trigram {tri['literary_bpc']:.3f}", "8b"),
        ("price of the spikes at equal minutes, target <= 5 %", _gap(spikes),
         f"against its non-spiking twin, {twin['test_bpc']:.3f}; a second seed of the book model: "
         f"{_gap(bench['gaps']['spikes-seed1@budget'])}", "8b"),
        ("distance to the softmax twin at equal minutes", _gap(total),
         f"of it the attention (non-spiking twin - softmax twin) {_gap(attention)}; "
         f"SpikeGPT - a softmax transformer {spikegpt:+.1f} %", "8b"),
        ("context gain: BPC(8 tokens) - BPC(full)", f"{book['context_gain']:.3f}",
         f"softmax twin {soft['context_gain']:.3f}; non-spiking twin {twin['context_gain']:.3f}",
         "8c"),
    ]


def recall_row(sweep: dict, decay: dict) -> tuple:
    """Chapters 8c and 8e: multi-query associative recall at 8 pairs, two seeds each."""
    runs = sorted((r for r in decay["runs"] if r["pairs"] == 8 and r["spiking"]),
                  key=lambda r: r["seed"])

    def seeds(name):
        return " / ".join(f"{a:.2f}" for a in sweep["recall_table"][name]["8"])

    return ("recall of 8 key-value pairs (MQAR): the book model's attention in a probe-size model, "
            "two seeds", " / ".join(f"{r['accuracy']:.2f}" for r in runs),
            f"softmax {seeds('softmax_shift')}; spiking SDSA {seeds('sdsa')}; "
            f"a value from the context {runs[0]['chance']['context_value']:.3f}", "8c, 8e")


def qa_rows(qa: dict) -> list:
    """Chapters 9b, 9c: the shipped span model, the copy heuristic and the context-free prior."""
    train, val = (load_qa_file(QA_DIR / f"{s}.jsonl") for s in ("train", "val"))
    rows = []
    for split, file, label in (("test (all 513)", "test", "template questions"),
                               ("paraphrase test", "paraphrase", "hand-written paraphrases")):
        recs = load_qa_file(QA_DIR / f"{file}.jsonl")
        base, ours = qb.baselines(recs, train, val), qa["scores"]["shipped"][split]
        rows.append((f"question answering, exact match, {len(recs)} {label}",
                     f"{ours['exact_match']:.1f} %",
                     f"copy heuristic {base['copy']['exact_match']:.1f} %; "
                     f"context-free prior {base['prior']['exact_match']:.1f} %", "9b, 9c"))
    return rows


def speed_row(bench_dir: Path) -> tuple:
    """Chapter 7b: training tokens/s against PyTorch on the same shapes, the newest stored run."""
    path = sorted(bench_dir.glob("speed_*.json"))[-1]  # the newest by its dated name, as in 7b
    speed = _json(path)["speed"]
    row = next(r for r in speed["rows"] if r["config"] == "book" and "numpy_vs_torch" in r)
    return (f"training speed, Config.book() shapes ({row['attention']} attention), 2-core CPU",
            f"NumPy {row['numpy_vs_torch']:.2f}x, MLX {row['mlx_vs_torch']:.2f}x PyTorch",
            f"PyTorch {row['torch_train_tokens_per_s']:,.0f} tokens/s "
            f"({speed['cpu']}, {path.name})",
            "7b")


def table(data: Path = DATA) -> str:
    rows = language_rows(_json(data / "benchmarks" / "book_models.json"))
    rows.append(recall_row(_json(data / "checkpoints" / "context_sweep.json"),
                           _json(data / "benchmarks" / "decay_recall.json")))
    rows += qa_rows(_json(data / "checkpoints" / "book-qa" / "qa.json"))
    rows.append(speed_row(data / "benchmarks"))
    lines = (f"| {result} ({'chapters' if ',' in ch else 'chapter'} {ch}) | {ours} | {refs} |"
             for result, ours, refs, ch in rows)
    return HEADER + "\n" + "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the table in book/intro.md")
    args = ap.parse_args(argv)
    text = table()
    if not args.check:
        print(text)
        return 0
    if text in INTRO.read_text():
        print("book/intro.md holds the current table")
        return 0
    print("book/intro.md does not hold the table the stored benchmarks give; run "
          f"`python scripts/headline.py` and paste its table in place of the old one:\n{text}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
