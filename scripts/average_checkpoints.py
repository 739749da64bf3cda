"""Latest weight averaging: the mean of a run's last K weight snapshots (Kaddour 2022, "LAWA").

Usage (from the repository root):

    python scripts/average_checkpoints.py --choose 1,2,4,8,12,16,24 --val-tokens 16384 SNAP ...
    python scripts/average_checkpoints.py --k 4 --out FOLDER SNAP ...

SNAP: checkpoint folders of one run, oldest first (session 15: the 6800-step run's weights every
100 steps from 4500, then its final checkpoint). --choose prints, for each K, the validation BPC
(`heldout_ids`, the mixed validation slice; never the test split) of the mean of the last K;
--k writes that mean as a checkpoint folder (the last snapshot's config, meta and tokenizer, its
meta naming the snapshots averaged), which scripts/eval_book_models.py then scores
(`decay-D4-6800-lawa4@6800` in data/benchmarks/book_models.json). The mean is
spike_lib.train.soup.soup_states (float64 sums, float32 weights).
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

FILES = ("config.json", "meta.json", "tokenizer.json")


def read_weights(folder) -> dict:
    with np.load(Path(folder) / "weights.npz") as z:
        return {k: z[k] for k in z.files}


def last_k_mean(snapshots, k) -> dict:
    """The mean state dict of the last k snapshots (the last one itself for k = 1)."""
    from spike_lib.train.soup import soup_states

    if not 1 <= k <= len(snapshots):
        raise ValueError(f"k = {k}: choose 1 to {len(snapshots)} (the snapshots given)")
    use = [read_weights(p) for p in snapshots[-k:]]
    return use[0] if k == 1 else soup_states(use)


def write_average(snapshots, k, out) -> Path:
    """A checkpoint folder holding the mean of the last k snapshots; out must not exist."""
    out = Path(out)
    if out.exists():
        raise SystemExit(f"error: {out} exists; give a new folder")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in FILES:
        shutil.copy2(Path(snapshots[-1]) / f, tmp / f)
    np.savez(tmp / "weights.npz", **last_k_mean(snapshots, k))
    meta = json.loads((tmp / "meta.json").read_text())
    meta["averaged"] = [str(p) for p in snapshots[-k:]]
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    tmp.rename(out)
    return out


def choose(snapshots, ks, val_tokens) -> dict:
    """{K: validation BPC of the mean of the last K snapshots}."""
    from spike_lib.numpy_impl.train import evaluate
    from spike_lib.train.checkpoint import load_checkpoint
    from spike_lib.train.heldout import heldout_ids

    model, tok, _ = load_checkpoint(snapshots[-1])
    ids = heldout_ids(tok, val_tokens)
    n_chars = len(tok.decode(ids[1:].tolist()))
    out = {}
    for k in ks:
        model.load_state_dict(last_k_mean(snapshots, k))
        model.train(False)
        out[k] = evaluate(model, ids, n_chars=n_chars, batch_size=16)["bpc"]
        print(json.dumps({"k": k, "from": str(snapshots[-k]), "val_bpc": out[k]}), flush=True)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshots", nargs="+", type=Path)
    parser.add_argument("--choose", default=None, help="comma-separated K to score on validation")
    parser.add_argument("--val-tokens", type=int, default=16384)
    parser.add_argument("--k", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.choose:
        choose(args.snapshots, [int(k) for k in args.choose.split(",")], args.val_tokens)
    elif args.k and args.out:
        print(write_average(args.snapshots, args.k, args.out))
    else:
        parser.error("give --choose K1,K2,... or --k K --out FOLDER")
