"""The wall-time budget of the book model and its twins: each recipe's training speed, idle.

Usage (from the repository root, on an idle machine):

    python scripts/train_budget.py --out data/benchmarks/train_budget.json
    python scripts/train_budget.py --logs book=/tmp/sp-book --logs book-twin=/tmp/sp-twin ...

Issue 13 asks for the book model and its two twins to be trained with the same budget: up to
90 minutes on the idle 2-core machine. The three recipes run at different speeds (the spiking
model's LIF steps, the twins' smooth attention), so equal budgets are not equal steps. For each
shipped folder (book, book-twin, book-softmax) this re-runs the folder's own command (its
run.json options, NumPy, 2 threads) for --probe-steps steps into a temporary folder and takes
the median tokens/s of the steps after the 10th (the first ones warm caches). From it: the
steps that fill --minutes, and the minutes the shipped run's steps take at that speed (Eq. 8.1:
minutes = steps x batch x block / tokens_per_s / 60). --logs NAME=FOLDER summarises probe runs
already made with the same command instead of running them.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spike_lib.train.baselines import cpu_name
from spike_lib.train.bookmodel import run_summary, shipped_path, train_command

NAMES = ("book", "book-twin", "book-softmax")
WARM = 10


def probe_speed(log_path) -> dict:
    """Median tokens/s over the logged steps after the first WARM, and how many were used."""
    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line]
    speeds = [r["tokens_per_s"] for r in rows if r.get("step", 0) > WARM and "tokens_per_s" in r]
    if not speeds:
        raise SystemExit(f"error: {log_path} has no step past {WARM}; probe for more steps")
    return {"tokens_per_s": statistics.median(speeds), "timed_steps": len(speeds)}


def budget_row(per_step, speed, minutes, shipped_steps) -> dict:
    """Steps of `per_step` tokens that fill `minutes` at `speed` tokens/s, and the minutes
    `shipped_steps` take at that speed (Eq. 8.1)."""
    return {"tokens_per_step": per_step, "tokens_per_s": speed,
            "steps_in_budget": int(minutes * 60 * speed / per_step),
            "shipped_steps": shipped_steps,
            "shipped_minutes": shipped_steps * per_step / speed / 60}


def probe(name, steps, workdir) -> Path:
    """Run the shipped folder's command for `steps` steps into workdir/name; returns the folder."""
    options = dict(json.loads((shipped_path(name) / "run.json").read_text())["options"],
                   steps=steps, eval_every=10 * steps)
    out = Path(workdir) / name
    cmd = [sys.executable, "-m"] + train_command(options, str(out)).split()[2:]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2")
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=90.0)
    ap.add_argument("--probe-steps", type=int, default=70)
    ap.add_argument("--logs", action="append", default=[], metavar="NAME=FOLDER")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--note", default="", help="how the probes were made, stored with the result")
    args = ap.parse_args(argv)
    given = dict(s.split("=", 1) for s in args.logs)
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for name in NAMES:
            folder = Path(given[name]) if name in given else probe(name, args.probe_steps, work)
            speed = probe_speed(folder / "log.jsonl")
            shipped = run_summary(shipped_path(name))  # its steps, tokens per step and command
            rows[name] = dict(budget_row(shipped["tokens_per_step"], speed["tokens_per_s"], args.minutes,
                                         shipped["step"]),
                              timed_steps=speed["timed_steps"], command=shipped["command"])
    result = {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%d"), "minutes": args.minutes,
              "probe": f"the folder's command, NumPy, OPENBLAS_NUM_THREADS=2, median tokens/s of "
                       f"steps {WARM + 1}-{args.probe_steps}",
              "command": "python scripts/train_budget.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "note": args.note, "models": rows}
    for name, r in rows.items():
        print(f"{name:<13}{r['tokens_per_s']:>7,.0f} tokens/s  {r['steps_in_budget']:>5} steps in "
              f"{args.minutes:g} min;  shipped {r['shipped_steps']} steps = {r['shipped_minutes']:.0f} min")
    if args.out:
        from spike_lib.core.atomic import atomic_file
        with atomic_file(args.out) as f:
            f.write(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
