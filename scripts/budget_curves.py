"""Validation curves of training runs, for chapter 8c's plot of twice the budget.

Usage (from the repository root):

    python scripts/budget_curves.py --out data/benchmarks/budget_curves.json \
        --run book-5k=/work/runs/s9/book-5k --run book-softmax-5k=/work/runs/s10/softmax-5k

A run is a training folder (spike_lib train --out): its run.json (command options, model
config) and log.jsonl. Kept per run: the evaluation rows (step, validation BPC on the mixed
slice, learning rate), the median training tokens/s, and the options. The 2500-step runs
shipped as data/checkpoints/book, book-twin and book-softmax until session 14 are stored as
book-2500, book-twin-2500 and book-softmax-2500 (their folders at commit 895b94d, extracted with
`git show 895b94d:data/checkpoints/NAME/log.jsonl` and run.json); chapter 8d's runs, with book
and book-twin for the gradient norm per evaluation (grad_norm_median, before clipping), are stored
the same way in data/benchmarks/level_curves.json. Runs already in --out are kept unless given
again.
"""

import argparse
import json
import statistics
from pathlib import Path


def curve(folder: Path) -> dict:
    """The evaluation rows and summary of one run folder (a ValueError names what is missing)."""
    log, run = folder / "log.jsonl", folder / "run.json"
    for f in (log, run):
        if not f.is_file():
            raise ValueError(f"{f} is missing: pass a folder written by `spike_lib train --out`")
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    evals, norms = [], []
    for r in rows:  # grad_norm_median: the median gradient norm (before clipping) of the
        if r.get("grad_norm") is not None:  # steps since the previous evaluation
            norms.append(r["grad_norm"])
        if "val_bpc" in r:
            evals.append({"step": r["step"], "val_bpc": r["val_bpc"], "lr": r.get("lr"),
                          "grad_norm_median": statistics.median(norms) if norms else None})
            norms = []
    speeds = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    info = json.loads(run.read_text())
    return {"folder": str(folder), "options": info.get("options", {}),
            "attention": info.get("model", {}).get("attention"),
            "spiking": info.get("model", {}).get("spiking"),
            "steps_logged": max((r["step"] for r in rows if "step" in r), default=0),
            "median_tokens_per_s": statistics.median(speeds) if speeds else None,
            "evals": evals}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER", required=True)
    ap.add_argument("--out", required=True, help="JSON file to write (runs in it are kept)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.is_file() else {"runs": {}}
    for spec in args.run:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            ap.error(f"--run {spec!r}: write NAME=FOLDER, e.g. book-5k=/work/runs/s9/book-5k")
        data["runs"][name] = curve(Path(folder))
    tmp = out.with_suffix(".tmp")
    tmp.write_text("{\"runs\": {\n" + ",\n".join(f"  {json.dumps(name)}: {json.dumps(run)}"  # a line per run
                                                 for name, run in data["runs"].items()) + "\n}}\n")
    tmp.replace(out)
    print(json.dumps({n: {"steps": r["steps_logged"], "last_val_bpc": r["evals"][-1]["val_bpc"]}
                      for n, r in data["runs"].items()}))


if __name__ == "__main__":
    main()
