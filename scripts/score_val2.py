"""Score fine-tuned QA folders on the second, larger paraphrase validation set (chapter 9c.5).

Usage (from the repository root):

    python scripts/score_val2.py --out data/qa/val2_scores.json \
        --run s11-qhead-s1=/work/runs/code/54391ff/runs/qa/s11-qhead-s1/best \
        --run s13-ptrain=data/checkpoints/book-qa --chose s13-ptrain=pval,pval2

data/qa/paraphrase_val2.jsonl (115 questions over 29 hand-written passages) was written after
the runs of chapter 9c.1 were chosen, so it chose none of them: it measures how much of a run's
score on the 43 questions of paraphrase_val.jsonl was the choice (a later run chosen on it too,
s13-ptrain, is marked with --chose). Each folder is scored with `qa-eval`
(exact match, F1, per question type) on paraphrase_val, on paraphrase_val2, and on the two
halves of paraphrase_val2: passages about articles of the template val split (never trained
on) and of the train split (whose template facts the model was fine-tuned on). Runs already in
--out are kept unless given again; the file is written after each run, and "commands" keeps
every command that wrote it. --chose NAME=pval,pval2 records which of these sets chose the run's
step (a score on a set that chose is optimistic); --note NAME=TEXT adds a note to a run.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from spike_lib.core.atomic import write_json
from spike_lib.data.qa import QA_DIR


def halves(tmp: Path) -> dict:
    """{label: QA file}: the whole set and its two halves by the template split of the article."""
    recs = [json.loads(line) for line in (QA_DIR / "paraphrase_val2.jsonl").read_text().splitlines()]
    val_articles = {json.loads(line)["article"] for line in (QA_DIR / "val.jsonl").read_text().splitlines()}
    files = {"pval": QA_DIR / "paraphrase_val.jsonl", "pval2": QA_DIR / "paraphrase_val2.jsonl"}
    for label, keep in (("pval2_val_articles", True), ("pval2_train_articles", False)):
        path = tmp / f"{label}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in recs if (r["article"] in val_articles) == keep))
        files[label] = path
    return files


def score(folder: str, qa_file: Path) -> dict:
    cmd = [sys.executable, "-m", "spike_lib", "qa-eval", "--checkpoint", folder, "--qa-file",
           str(qa_file), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"qa-eval failed on {folder}: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def annotate(data: dict, chose: list, notes: list) -> None:
    """Record --chose and --note on the runs they name (scored now or earlier)."""
    for name, sets in chose:
        if name in data["runs"]:
            data["runs"][name]["chose"] = sets.split(",")
    for name, text in notes:
        if name in data["runs"]:
            data["runs"][name]["note"] = text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER")
    ap.add_argument("--chose", action="append", default=[], metavar="NAME=SETS",
                    help="the sets (comma-separated: pval, pval2) that chose NAME's step")
    ap.add_argument("--note", action="append", default=[], metavar="NAME=TEXT")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    runs, chose, notes = ([r.split("=", 1) for r in opt] for opt in (args.run, args.chose, args.note))
    if any(len(r) != 2 for r in runs + chose + notes):
        ap.error("--run, --chose and --note take NAME=VALUE")
    data = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    earlier = data.get("commands", [data["command"]] if "command" in data else [])
    data["command"] = " ".join(["python scripts/score_val2.py", *(f"--run {r}" for r in args.run),
                                *(f"--chose {c}" for c in args.chose),
                                *(f"--note '{n}'" for n in args.note), f"--out {args.out}"])
    data["commands"] = [*earlier, data["command"]]
    with tempfile.TemporaryDirectory() as tmp:
        files = halves(Path(tmp))
        for name, folder in runs:
            data["runs"][name] = {"folder": folder, **{label: score(folder, f) for label, f in files.items()}}
            annotate(data, chose, notes)
            write_json(args.out, data, newline=True)
            r = data["runs"][name]
            print(name, {k: round(r[k]["exact_match"], 1) for k in files}, flush=True)
    annotate(data, chose, notes)
    write_json(args.out, data, newline=True)


if __name__ == "__main__":
    main()
