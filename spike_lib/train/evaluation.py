"""Evaluating a checkpoint: find it (a run folder stands for its checkpoint), load it with its
tokenizer, and measure loss, perplexity, bits per character, firing rate and energy on a text.

Used by `python -m spike_lib eval`, generate, finetune and the book model's numbers.
Taught in: notebooks/10_toolkit.ipynb
"""

from pathlib import Path

import numpy as np

DERIVED_RATES = (".kv", ".out_in")


def _run_of(path):
    """The run folder `path` stands for (a run, or a run's checkpoint/), else None."""
    from spike_lib.train.runfolder import CKPT, RUN_CONFIG

    if (path / RUN_CONFIG).is_file() and not (path / "weights.npz").is_file():
        return path
    if path.name == CKPT and (path.parent / RUN_CONFIG).is_file():
        return path.parent
    return None


def _no_checkpoint(run) -> ValueError:
    """The error for a run folder without a complete checkpoint: a folder that describes a model
    (meta.json) but lacks its weights says so (e.g. a shipped folder whose weights were left in
    the repository's history, as book-6800's were before it became data/checkpoints/book); any
    other run has not saved one yet."""
    from spike_lib.core.checkpoint_format import META, WEIGHTS

    if (run / META).is_file() and not (run / WEIGHTS).is_file():
        return ValueError(f"{run} describes a model but holds no {WEIGHTS}: restore the weights "
                          f"(its README.md says how) or give another checkpoint")
    return ValueError(f"the run {run} has no checkpoint yet: train it longer")


def resolve_checkpoint(path) -> Path:
    """A checkpoint folder; a run folder stands for its last complete checkpoint (read-only)."""
    from spike_lib.train.runfolder import find_checkpoint

    path = Path(path)
    run = _run_of(path)
    if run is None:
        return path
    found = find_checkpoint(run)
    if found is None:
        raise _no_checkpoint(run)
    return found


def load_from(path, load):
    """load(checkpoint folder) for a checkpoint or a run folder. A run is read while its
    trainer may be saving: the load is retried on the last complete checkpoint, and nothing
    is ever renamed or deleted (spike_lib.train.runfolder.read_checkpoint)."""
    from spike_lib.train.runfolder import read_checkpoint

    path = Path(path)
    run = _run_of(path)
    if run is None:
        return load(path)
    found = read_checkpoint(run, load)
    if found is None:
        raise _no_checkpoint(run)
    return found


def load_for_use(path):
    """(numpy model, tokenizer, meta) of a checkpoint that must hold its tokenizer.

    The missing tokenizer is an error inside the load, so a run read while its trainer swaps
    in a new checkpoint is retried (load_from) instead of failing on the half-moved folder."""
    from spike_lib.train.checkpoint import load_checkpoint

    def load_with_tokenizer(folder):
        model, tok, meta = load_checkpoint(folder)
        if tok is None:
            raise ValueError(f"{path} holds no tokenizer.json: re-save the checkpoint with its "
                             "tokenizer (save_checkpoint(path, model, tokenizer))")
        return model, tok, meta

    return load_from(path, load_with_tokenizer)


def evaluate_text(model, tok, text, max_tokens=20_000, batch_size=16, ids=None,
                  context_tokens=None) -> dict:
    """The eval command's numbers for one text (see run), or for given token ids (text=None).

    context_tokens: each prediction reads at most N previous tokens (probes.evaluate_context).
    """
    from spike_lib.core.config import check_range
    from spike_lib.train.probes import evaluate_context

    check_range("max_tokens", max_tokens, 2, kind=int)
    if ids is None:
        ids = tok.encode(text)
    ids = np.asarray(ids, dtype=np.int64)[: max_tokens + 1]
    if len(ids) < 2:
        raise ValueError("the text has fewer than 2 tokens: nothing to predict")
    ev = evaluate_context(model, ids, context_tokens,
                          n_chars=max(1, len(tok.decode(ids[1:].tolist()))),
                          batch_size=batch_size)
    n_ctx = min(model.cfg.block_size, len(ids) - 1)
    rows = np.arange(0, len(ids) - n_ctx, n_ctx)[:batch_size, None] + np.arange(n_ctx)
    model.train(False)
    model(ids[rows])  # one batch of windows: firing rates and energy of this forward pass
    rates = [v for k, v in model.firing_rates().items() if not k.endswith(DERIVED_RATES)]
    report = model.energy_report(rows.shape[0], n_ctx)
    return {"loss": ev["loss"], "perplexity": ev["perplexity"], "bpc": ev["bpc"],
            "tokens": ev["n_tokens"], "firing_rate": float(np.mean(rates)) if rates else None,
            "energy_ratio": report.ratio}
