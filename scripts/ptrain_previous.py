"""Store what chapters 9b and 9c show of a span model that a newer one replaced as book-qa.

Usage (from the repository root):

    python scripts/ptrain_previous.py --folder /work/runs/s13/book-qa-prev \
        --log /work/runs/code/c4a20b9/runs/qa/s10-qhead/log.jsonl --out data/qa/ptrain_previous.json
    python scripts/ptrain_previous.py --folder /work/runs/s14/book-qa-s13 \
        --log /work/runs/code/16e9a7e/runs/qa/s13-ptrain/log.jsonl --out data/qa/ptrain_s13.json

    python scripts/ptrain_previous.py --folder data/checkpoints/book-qa \
        --log /work/runs/code/895b94d/runs/qa/s14-leak/log.jsonl --out data/qa/ptrain_s14.json
    python scripts/ptrain_previous.py --folder data/checkpoints/book-qa \
        --log data/checkpoints/book-qa/train_log.jsonl --out data/qa/ptrain_s14p2.json

(s10-qhead, replaced by s13-ptrain in session 13; s13-ptrain, replaced in session 14 by the same
recipe on the leaking D = 4 book model, s14-leak, itself replaced by s14-leak-p2, which adds
data/qa/paraphrase_train2.jsonl; the third command ran on book-qa at commit a638e79; s14-leak-p2,
replaced in session 16 by its recipe on the 6800-step book model: the fourth, at commit 5bfd32e.)

FOLDER is the replaced data/checkpoints/book-qa (its qa.json holds the scores measured when it
was shipped: template test, paraphrase val and the paraphrase test, scored once); LOG is that
run's log (its mix and its validation curve). The notebook reads this small JSON, never the run
folders. Nothing is measured here: every number is copied from those two files.
"""

import argparse
import json
from pathlib import Path

from spike_lib.core.atomic import write_json


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", required=True, type=Path, help="the replaced book-qa folder")
    ap.add_argument("--log", required=True, type=Path, help="its run's log.jsonl")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    info = json.loads((args.folder / "qa.json").read_text())
    log = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    head = next(r for r in log if "name" in r)
    keys = ("step", "val_em", "pval_em", "pval2_em", "pvals_em")
    evals = [{k: r[k] for k in keys if k in r} for r in log if "val_em" in r]
    scores = {split: {k: s[k] for k in ("exact_match", "f1", "n")}
              for split, s in info["scores"]["shipped"].items()}
    out = {"command": " ".join(["python scripts/ptrain_previous.py", f"--folder {args.folder}",
                                f"--log {args.log}", f"--out {args.out}"]),
           "name": head["name"], "train_command": info["command"], "best_step": info["best_step"],
           "selected_on": info.get("selected_on", "paraphrase_val"), "mix": head["mix"],
           "varied": head["varied"]["records"], "extra": head.get("extra"), "repeat": head.get("repeat"),
           "template_in_mix": head["template_in_mix"], "scores": scores, "evals": evals}
    write_json(args.out, out, newline=True)
    print(args.out, {k: round(v["exact_match"], 1) for k, v in scores.items()})


if __name__ == "__main__":
    main()
