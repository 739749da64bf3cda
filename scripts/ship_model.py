"""Copy a training run's last good checkpoint into data/checkpoints/NAME/ for the book to ship.

Usage: python scripts/ship_model.py runs/book data/checkpoints/book
       python scripts/ship_model.py --thin data/checkpoints/book   (thin a shipped log in place)

The destination folder is the checkpoint itself (weights.npz, config.json, meta.json,
tokenizer.json; the optimizer state is left out) plus the run's run.json and log.jsonl, and a
README.md with the command that reproduces it. The folder is replaced only once the new one is
complete (temp folder, then renames). The shipped log keeps every evaluation and every 5th step
(every 10th past 4,500 steps; thin_log), so it stays under the course's 1000-line limit; the run
folder keeps them all.
"""

import json
import math
import shutil
import sys
from pathlib import Path

from spike_lib.train.bookmodel import run_summary, train_command
from spike_lib.train.checkpoint import atomic_folder
from spike_lib.train.runs import last_good_checkpoint

SHIPPED = ("weights.npz", "config.json", "meta.json", "tokenizer.json")
THIN_EVERY = 5


def thin_log(records, every=THIN_EVERY) -> list:
    """Keep the first 10 steps, every `every`-th step, every record with more than a step's
    training numbers (evaluations, notes) and the last record; drop the rest."""
    plain = {"step", "loss", "lr", "grad_norm", "tokens_per_s"}
    last = len(records) - 1
    return [r for i, r in enumerate(records)
            if i == last or set(r) - plain or r.get("step", 0) <= 10 or r.get("step", 0) % every == 0]


def thin_shipped(folder) -> int:
    """Thin a shipped folder's log.jsonl in place (atomically); returns the lines kept."""
    from spike_lib.core.atomic import atomic_file

    path = Path(folder) / "log.jsonl"
    kept = thin_log([json.loads(line) for line in path.read_text().splitlines() if line])
    with atomic_file(path) as f:
        f.write("".join(json.dumps(r) + "\n" for r in kept))
    return len(kept)


def ship(run, dest) -> Path:
    run, dest = Path(run), Path(dest)
    ckpt = last_good_checkpoint(run)
    if ckpt is None:
        raise SystemExit(f"error: {run} has no checkpoint yet")
    run_json = json.loads((run / "run.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]
    meta = json.loads((ckpt / "meta.json").read_text())
    step = meta.get("step")
    with atomic_folder(dest) as tmp:
        for name in SHIPPED:
            shutil.copy2(ckpt / name, tmp / name)
        shutil.copy2(run / "run.json", tmp / "run.json")
        # every 5th step, or every 10th, ... so that the log stays under 900 lines (train --resume
        # has already cut the log back to its checkpoint, so no step is logged twice)
        every = THIN_EVERY * math.ceil((step or len(log)) / (THIN_EVERY * 900))
        kept = thin_log([r for r in log if step is None or r.get("step", 0) <= step], every)
        (tmp / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
        evals = [r for r in kept if "val_bpc" in r]
        last_eval = f"{evals[-1]['val_bpc']:.3f} at step {evals[-1]['step']}" if evals else "none yet"
        (tmp / "README.md").write_text("")  # run_summary needs a complete folder
        info = run_summary(tmp)
        (tmp / "README.md").write_text(
            f"# {dest.name}\n\nShipped from the training run `{run}` at step {step} of "
            f"{run_json['options']['steps']} (last validation BPC {last_eval}): "
            f"{info['n_params']:,} parameters, {info['tokens_seen']:,} training tokens in "
            f"{info['train_seconds'] / 60:.0f} minutes of training (median {info['tokens_per_s']:.0f} "
            "tokens/s on the machine that trained it).\n"
            "The optimizer state is not shipped. Reproduce it with\n\n```\n"
            f"{train_command(run_json['options'], f'runs/{dest.name}')}\n```\n\nThen "
            f"`python scripts/ship_model.py runs/{dest.name} data/checkpoints/{dest.name}`.\n")
    return dest


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--thin":
        print(thin_shipped(sys.argv[2]), "lines kept")
    elif len(sys.argv) != 3:
        raise SystemExit(__doc__)
    else:
        print(ship(sys.argv[1], sys.argv[2]))
