"""Span QA runs and their soups (python -m spike_lib soup) on the validation questions, chapter 9b.

Usage (from the repository root):

    python scripts/soup_runs.py --out data/qa/soups.json --soup-dir runs/qa/soups \
        --run s10-qhead=runs/qa/s10-qhead --run s11-qhead-s1=runs/qa/s11-qhead-s1 ...

A run is a folder of scripts/train_span_varied.py (its best/ model and log.jsonl), all from one
base model with the same head. Each run's model and each soup is scored on the template
validation sample (200, seed 0) and the paraphrase validation questions, the sets the runs chose
their best step on; never on a test set. Soups: every run together (uniform), every pair, and
the greedy soup of Wortsman et al. (2022): the runs in order of paraphrase validation exact
match, each added only if the soup's paraphrase validation exact match (then F1) does not fall
and template validation stays >= 80 %. --interpolate A:B also scores the line between two runs,
(1 - alpha) A + alpha B for alpha = 0.25 and 0.75 (0, 0.5 and 1 are the runs and their soup):
a loss barrier along it would mean that the runs sit in different basins and that their mean is
no model (Frankle et al. 2020, linear mode connectivity).
"""

import argparse
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

from spike_lib.core.atomic import write_json
from spike_lib.data.qa import QA_DIR, load_qa
from spike_lib.train import soup, span_qa
from spike_lib.train.qa_baselines import test_sample


def evaluate(folder, sets) -> dict:
    model, tok, _ = span_qa.load_qa_model(folder, "mlx")
    model.train(False)
    out = {}
    for name, recs in sets.items():
        r = span_qa.evaluate_span(model, tok, recs)
        out[f"{name}_em"], out[f"{name}_f1"] = round(r["exact_match"], 2), round(r["f1"], 2)
        out[f"{name}_loss"] = round(r["answer_loss"], 4)
    return out


def key(s) -> tuple:
    return (s["val_em"] >= 80, s["pval_em"], s["pval_f1"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--soup-dir", required=True, help="where the soup folders are written")
    ap.add_argument("--interpolate", metavar="A:B", help="also score the line between two runs")
    args = ap.parse_args()
    runs = dict(r.split("=", 1) for r in args.run)
    sets = {"val": test_sample(load_qa(QA_DIR / "val.jsonl"), 200),
            "pval": load_qa(QA_DIR / "paraphrase_val.jsonl")}
    result = {"sets": {"val": "template validation sample (200, seed 0)",
                       "pval": "data/qa/paraphrase_val.jsonl"}, "runs": {}, "soups": {}}
    for name, folder in runs.items():
        info = span_qa.read_qa_config(Path(folder) / "best")
        log = [json.loads(x) for x in (Path(folder) / "log.jsonl").read_text().splitlines() if x]
        curve = [{k: r[k] for k in ("step", "val_em", "pval_em")} for r in log if "pval_em" in r]
        result["runs"][name] = {"folder": folder, "command": info.get("command"),
                                "best_step": info.get("best_step"), "evals": curve,
                                **evaluate(Path(folder) / "best", sets)}
        print(name, result["runs"][name], flush=True)
    made, names = {}, list(runs)

    def make(members) -> dict:
        members = tuple(sorted(members, key=names.index))  # one label per set of runs
        label = "+".join(members)
        if label not in made:
            out = Path(args.soup_dir) / label
            soup.run(SimpleNamespace(models=[str(Path(runs[m]) / "best") for m in members],
                                     out=str(out), weights=None))
            made[label] = {"members": list(members), "folder": str(out), **evaluate(out, sets)}
            print(label, made[label], flush=True)
        return made[label]

    for k in range(2, len(names) + 1):
        for members in itertools.combinations(names, k):
            make(members)
    order = sorted(names, key=lambda n: key(result["runs"][n]), reverse=True)
    greedy, best = [order[0]], result["runs"][order[0]]
    for n in order[1:]:
        cand = make(greedy + [n])
        if key(cand) >= key(best):
            greedy, best = greedy + [n], cand
    if args.interpolate:
        a, b = args.interpolate.split(":")
        line = []
        for alpha in (0.0, 0.25, 0.5, 0.75, 1.0):
            if alpha in (0.0, 1.0):
                row = result["runs"][a if alpha == 0.0 else b]
            elif alpha == 0.5:
                row = make(tuple(sorted((a, b), key=names.index)))
            else:
                out = Path(args.soup_dir) / f"{a}-{b}-{alpha}"
                soup.run(SimpleNamespace(models=[str(Path(runs[a]) / "best"), str(Path(runs[b]) / "best")],
                                         out=str(out), weights=[1 - alpha, alpha]))
                row = evaluate(out, sets)
            line.append({"alpha": alpha, **{k: v for k, v in row.items() if k.endswith(("_em", "_f1", "_loss"))}})
            print("alpha", alpha, line[-1], flush=True)
        result["interpolation"] = {"a": a, "b": b, "points": line}
    result["soups"] = made
    result["greedy"] = {"order": order, "members": greedy, "pval_em": best["pval_em"],
                        "val_em": best["val_em"]}
    write_json(args.out, result)
    print(json.dumps(result["greedy"]))


if __name__ == "__main__":
    main()
