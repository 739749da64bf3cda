"""The leak rates a spike_matrix_decay model learned, per layer and head, for chapter 8e.

Usage (from the repository root):

    python scripts/decay_rates.py --out data/benchmarks/decay_rates.json \
        --checkpoint decay-D4-5k@1000=/work/runs/s13/decay-D4-5k-snap1000

A checkpoint is a folder written by `spike_lib train` (config.json, meta.json, weights.npz). Kept
per checkpoint: its step, the attention, and lambda = sigmoid(decay_logit) of every block's
attention (a list per layer, one rate per head), with the half-lives ln 2 / -ln lambda in tokens.
"init" holds the rates every such model starts from (spike_lib.core.neurons.decay_init).
Entries already in --out are kept unless given again.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np

from spike_lib.core.neurons import decay_init


def half_lives(lam):
    return [math.log(2) / -math.log(x) if x < 1 else math.inf for x in lam]


def rates(folder: Path) -> dict:
    """{"step", "attention", "lambda": [[per head] per layer], "half_life": [...]} of a checkpoint."""
    for name in ("config.json", "meta.json", "weights.npz"):
        if not (folder / name).is_file():
            raise ValueError(f"{folder / name} is missing: pass a checkpoint folder of `spike_lib train`")
    cfg = json.loads((folder / "config.json").read_text())
    if not cfg.get("attention", "").startswith("spike_matrix_decay"):
        raise ValueError(f"{folder} has attention={cfg.get('attention')!r}: it learns no leak rates")
    with np.load(folder / "weights.npz", allow_pickle=False) as w:
        logits = [w[f"blocks.{i}.attn.decay_logit"].astype(np.float64) for i in range(cfg["n_layer"])]
    lam = [(1 / (1 + np.exp(-x))).tolist() for x in logits]
    step = json.loads((folder / "meta.json").read_text())["step"]
    return {"step": step, "attention": cfg["attention"], "folder": str(folder), "lambda": lam,
            "half_life": [half_lives(x) for x in lam]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=FOLDER")
    ap.add_argument("--n-head", type=int, default=4, help="heads of the init entry (the book model's 4)")
    args = ap.parse_args(argv)
    out = json.loads(args.out.read_text()) if args.out.is_file() else {"checkpoints": {}}
    lam0 = (1 / (1 + np.exp(-decay_init(args.n_head).astype(np.float64)))).tolist()
    out["init"] = {"lambda": lam0, "half_life": half_lives(lam0)}
    for spec in args.checkpoint:
        name, sep, folder = spec.partition("=")
        if not sep:
            raise SystemExit(f"--checkpoint {spec!r}: write NAME=FOLDER")
        out["checkpoints"][name] = rates(Path(folder))
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(args.out)
    for name, r in out["checkpoints"].items():
        print(name, "step", r["step"], "half-lives by layer:",
              [[round(h, 1) for h in layer] for layer in r["half_life"]])


if __name__ == "__main__":
    main()
