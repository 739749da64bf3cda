"""`python -m spike_lib soup`: the average of QA models fine-tuned from one base (a model soup).

Models fine-tuned from the same pretrained weights with different data orders usually lie in
one basin of the loss, so the mean of their weights is a model too, often better than each
(Wortsman et al. 2022, "Model soups"). Ingredients must share the base (the fingerprint in
their qa.json), the head and its shape; LoRA folders are refused (the mean of the A and B
factors is not the mean of the updates A B: fuse them first). The result is a QA folder like
the ingredients, with their paths in qa.json, so `qa-eval` reads it with no other flag.
Taught in: notebooks/09c_seeds_and_soups.ipynb
"""

from pathlib import Path

import numpy as np


def soup_states(states, weights=None) -> dict:
    """The weighted mean (float64 sums, each array back in its own dtype) of state dicts with
    the same keys and shapes; weights default to equal and are normalised to sum 1."""
    if len(states) < 2:
        raise ValueError("a soup needs at least two models")
    w = np.ones(len(states)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(states),) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"soup weights must be {len(states)} non-negative numbers, not all 0")
    w = w / w.sum()
    keys = set(states[0])
    for i, st in enumerate(states[1:], 1):
        if set(st) != keys:
            raise ValueError(f"model {i} has other tensors than model 0 (differs in "
                             f"{sorted(set(st) ^ keys)[:3]}): not fine-tuned from one base")
    out = {}
    for k in sorted(keys):
        arrays = [np.asarray(st[k]) for st in states]
        if any(a.shape != arrays[0].shape for a in arrays):
            raise ValueError(f"{k} has shapes {[a.shape for a in arrays]}: not one architecture")
        total = sum(wi * a.astype(np.float64) for wi, a in zip(w, arrays))
        out[k] = total.astype(arrays[0].dtype)
    return out


def _check_ingredients(folders) -> list:
    from spike_lib.train import span_qa

    infos = []
    for f in folders:
        if not span_qa.is_qa_folder(f):
            raise ValueError(f"{f} is not a QA model folder (no qa.json): soup reads the folders "
                             "that finetune --head span or scripts/train_span_varied.py write")
        info = span_qa.read_qa_config(f)
        if info["strategy"] == "lora":
            raise ValueError(f"{f} holds a LoRA adapter: averaging A and B is not averaging the "
                             "updates A B; fuse it first (python -m spike_lib fuse --checkpoint "
                             f"{f} --out FOLDER) and soup the fused folders")
        infos.append(info)
    first = infos[0]
    for f, info in zip(folders[1:], infos[1:]):
        for key in ("head", "window", "question_head"):
            if info.get(key) != first.get(key):
                raise ValueError(f"{f} has {key} {info.get(key)!r} but {folders[0]} has "
                                 f"{first.get(key)!r}: soup models with the same head")
        for key in ("config", "weights_sha256"):
            if info["base"].get(key) != first["base"].get(key):
                raise ValueError(f"{f} was fine-tuned from another base model than {folders[0]} "
                                 f"(base {key} differs): a soup needs one shared base")
    return infos


def add_arguments(parser) -> None:
    parser.add_argument("models", nargs="+", help="two or more QA model folders of one base")
    parser.add_argument("--out", required=True, help="the QA model folder to write (a new "
                        "folder, or an earlier QA folder to replace)")
    parser.add_argument("--weights", type=float, nargs="+",
                        help="one weight per model (default: equal)")


def run(args) -> dict:
    from spike_lib.train import span_qa

    folders = [Path(m) for m in args.models]
    if len(folders) < 2:
        raise ValueError("a soup needs at least two QA model folders")
    out = Path(args.out)
    if out.resolve() in {f.resolve() for f in folders}:
        raise ValueError(f"--out {out} is one of the ingredients: write the soup elsewhere")
    if out.exists() and not span_qa.is_qa_folder(out):
        raise ValueError(f"{out} exists and is not a QA model folder: choose another --out "
                         "(nothing was written)")
    infos = _check_ingredients(folders)
    loaded = [span_qa.load_qa_model(f, "numpy") for f in folders]
    model, tok, info = loaded[0]
    state = soup_states([m.state_dict() for m, _, _ in loaded], args.weights)
    model.load_state_dict(state)
    skip = ("format_version", "head", "strategy", "base", "window", "question_head", "lora")
    meta = {k: v for k, v in info.items() if k not in skip and k not in ("best_step", "val")}
    meta["soup"] = [{"path": str(f), "weight": (None if args.weights is None else float(w)),
                     **{k: i.get(k) for k in ("best_step", "command") if k in i}}
                    for f, i, w in zip(folders, infos, args.weights or [None] * len(folders))]
    span_qa.save_qa_model(out, model, tok, span_qa.resolve_base(folders[0], info), info["head"],
                          info["strategy"], meta=meta)
    return {"out": str(out), "models": len(folders), "tensors": len(state),
            "params": int(sum(np.asarray(v).size for v in state.values()))}
