"""The run loop behind `python -m spike_lib train`: either backend, JSON-lines log, safe resume.

The batch of step k is a pure function of (seed, k), so a resumed run repeats the losses of
an uninterrupted one. The parts: options (what a run is asked to do), backends (NumPy or MLX,
batches, the eval record), budget (--time-budget), runfolder (run.json, log, checkpoint).
Taught in: notebooks/10_toolkit.ipynb
"""

import json
import time
import warnings
from pathlib import Path

import numpy as np

from spike_lib.core.checkpoint_format import load_config
from spike_lib.core.overrides import (  # noqa: F401  (the --set names stay importable from runs)
    OWN_OPTION,
    check_override_key,
    parse_override,
    parse_overrides,
)
from spike_lib.core.training import TrainingDiverged, cosine_lr
from spike_lib.train import distributed
from spike_lib.train.backends import (  # noqa: F401 - importable from runs as before
    Batches,
    MLXBackend,
    MLXOptimizerState,
    NumpyBackend,
    StepRNG,
    eval_record,
    make_backend,
)
from spike_lib.train.budget import Budget
from spike_lib.train.heldout import heldout_ids
from spike_lib.train.options import (  # noqa: F401
    BACKENDS,
    DEFAULTS,
    FREE_ON_RESUME,
    NO_STEP_CAP,
    PRESETS,
    make_config,
    resolve_tokenizer,
    run_options,
)
from spike_lib.train.runfolder import (  # noqa: F401
    CKPT,
    LOG,
    RUN_CONFIG,
    last_good_checkpoint,
    read_log,
    read_run_config,
    truncate_log,
    write_json_atomic,
)


class RunError(RuntimeError):
    """A run could not go on (a write failed); the message says what is left on disk."""


def _progress(enabled, total, initial):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", leave=False)


def _open_run(out, resume, options) -> tuple:
    """(opts, saved run.json or {}): the options of a new run, or a resumed run's checked ones."""
    if not resume:
        if (out / RUN_CONFIG).exists():
            raise ValueError(f"{out} already holds a run: pass --resume to continue it, or "
                             "choose another --out folder")
        return run_options(**options), {}
    saved = read_run_config(out)
    opts = run_options(**{**saved["options"], **{k: v for k, v in options.items()
                                                    if v is not None}})
    diff = {k: (saved["options"].get(k, DEFAULTS.get(k)), v) for k, v in opts.items()
            if k not in FREE_ON_RESUME and saved["options"].get(k, DEFAULTS.get(k)) != v}
    if diff:
        said = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
        raise ValueError(f"{out} was trained with other options ({said}); resume with "
                         "the saved options (leave them out), or start a new --out folder")
    return opts, saved


def _prepare(opts, train_docs, val_docs) -> tuple:
    """(tokenizer, Config, train_docs, val_docs) for the options; checks metadata prefixes fit."""
    tok = resolve_tokenizer(opts["tokenizer"])
    cfg = make_config(opts, tok)
    if train_docs is None or val_docs is None:
        from spike_lib.data.corpus import load_corpus

        train_docs = load_corpus("train") if train_docs is None else train_docs
        val_docs = load_corpus("val") if val_docs is None else val_docs
    if opts["metadata"]:
        from spike_lib.data.batches import metadata_prefix

        k = max(len(tok.encode(metadata_prefix(d))) for d in train_docs)
        if k >= cfg.block_size:
            raise ValueError(f"metadata prefixes take up to {k} tokens of the {opts['tokenizer']}"
                             f" tokenizer but block_size is {cfg.block_size}: use a larger "
                             "--config or a tokenizer with longer tokens (bpe)")
    return tok, cfg, train_docs, val_docs


def train_run(out, resume=False, callback=None, progress=False, train_docs=None,
              val_docs=None, **options) -> dict:
    """Train a SpikeLLM into run folder `out`, or continue it (resume=True) from its checkpoint.

    options: see DEFAULTS (None keeps the default, or the saved value on resume). Resuming with
    an option that changes what is learned raises ValueError naming the difference.
    train_docs / val_docs: corpus documents (default: the shipped train and val splits).
    callback(step, record) runs after every step with the logged record. A NaN loss raises
    TrainingDiverged, a failed write RunError; run/checkpoint then holds the last good state.
    Started by mlx.launch as R processes (spike_lib.train.distributed), each rank trains on its slice
    of every global batch; rank 0 alone reads and writes `out`, evaluates and shows progress.
    """
    out, world, ready = Path(out), distributed.world(), []

    def open_folder():  # rank 0 only: the other ranks get its options or its error
        opts, saved = _open_run(out, resume, options)
        world.check(opts)
        ready.extend(_prepare(opts, train_docs, val_docs))
        if resume and saved.get("model") != ready[1].to_dict():
            raise ValueError(f"{out} holds a model with another config than tokenizer "
                             f"{opts['tokenizer']!r} now gives (vocab_size {ready[1].vocab_size});"
                             " restore the tokenizer file or start a new run")
        return {"options": opts, "plan": saved.get("plan")}

    shared = world.from_rank0(open_folder)
    opts = shared["options"]
    tok, cfg, train_docs, val_docs = ready or _prepare(opts, train_docs, val_docs)
    backend = make_backend(cfg, opts, world)

    def load():  # rank 0 only: the step (and seconds) to start from
        if not resume:
            out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(out / RUN_CONFIG, {"options": opts, "model": cfg.to_dict(),
                                                 "world_size": world.size})
            return [0, 0.0]
        ckpt, start = last_good_checkpoint(out), [0, 0.0]
        if ckpt is not None:
            if load_config(ckpt) != cfg:
                raise ValueError(f"{ckpt} holds a model of another config than {out}/"
                                 f"{RUN_CONFIG}: the folder was mixed up; start a new run")
            meta = backend.load(ckpt)
            start = [int(meta["step"]), float(meta.get("train_seconds", 0.0))]
        truncate_log(out / LOG, start[0])
        return start

    start, spent = world.from_rank0(load)
    world.broadcast_state(backend)  # every rank starts from rank 0's weights
    batches = Batches(train_docs, tok, cfg.block_size, opts["batch_size"], opts["seed"],
                      opts["metadata"])
    val_ids = heldout_ids(tok, opts["val_tokens"], docs=val_docs)  # every source, equal shares
    val_chars = len(tok.decode(val_ids[1:].tolist()))
    steps, lr = opts["steps"], opts["lr"]
    clock = Budget(opts, shared["plan"], spent)
    total = clock.total(steps)
    bar = _progress(progress and world.main, total, start)
    rec, last_saved, speeds, step = {}, start, [], start
    try:
        while step < total:
            x, y = batches(step)
            lr_t = cosine_lr(step, lr, min(opts["warmup"], total), total, lr * 0.1)
            t0 = time.perf_counter()
            try:
                res = backend.step(world.slice(x), world.slice(y), lr_t)  # global mean
            except TrainingDiverged as err:
                raise TrainingDiverged(
                    f"training stopped at step {step + 1}: {err}. {out / CKPT} keeps the last "
                    f"good state (step {last_saved}); lower --lr (now {lr}) and resume, or "
                    "start again") from None
            dt = time.perf_counter() - t0
            clock.step_done(dt)
            speeds.append(x.size / dt)
            rec = {"step": step + 1, "loss": res["loss"], "lr": lr_t,
                   "grad_norm": res["grad_norm"], "tokens_per_s": x.size / dt}
            planning = clock.planning(total)
            out_of_time = bool(world.agree(clock.out_of_time(step + 1, total)))  # rank 0's clock
            last = step + 1 == total or out_of_time
            t0 = time.perf_counter()
            if world.main and ((step + 1) % opts["eval_every"] == 0 or last or planning):
                rec.update(eval_record(backend, val_ids, val_chars, opts["batch_size"]))
            t_eval = time.perf_counter() - t0
            if out_of_time:
                rec["stopped"] = "time_budget"
            try:
                t0 = time.perf_counter()
                if planning:  # fix the schedule's length in run.json before the checkpoint
                    total = world.agree(clock.plan(step + 1, steps, t_eval, opts))
                    if world.main:
                        write_json_atomic(out / RUN_CONFIG, {
                            "options": opts, "model": cfg.to_dict(), "plan": clock.fixed,
                            "world_size": world.size})
                    if bar is not None:
                        bar.total = total
                if (step + 1) % opts["ckpt_every"] == 0 or last or planning:
                    if not world.in_step(backend) and world.main:  # all ranks must take part
                        warnings.warn(f"the {world.size} processes held different weights at "
                                      f"step {step + 1}: rank 0's were sent to all", stacklevel=2)
                    if world.main:
                        backend.save(out / CKPT, tok, {"step": step + 1, "loss": res["loss"],
                                                       "train_seconds": clock.spent(),
                                                       "world_size": world.size})
                    last_saved = step + 1
                clock.save_took(time.perf_counter() - t0)
                if world.main:
                    with open(out / LOG, "a", encoding="utf-8") as f:
                        f.write(json.dumps(rec) + "\n")
            except OSError as err:
                raise RunError(f"could not write to {out} at step {step + 1} ({err}); "
                               f"{out / CKPT} keeps the last good state (step {last_saved}): "
                               "free some disk space and train again with --resume") from None
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{res['loss']:.3f}")
            if callback is not None:
                callback(step, rec)
            step += 1
            if out_of_time:
                break
    finally:
        if bar is not None:
            bar.close()
    return {"run": str(out), "start_step": start, "steps": total, "loss": rec.get("loss"),
            "val_bpc": rec.get("val_bpc"), "checkpoint_step": last_saved,
            "tokens_per_s": float(np.median(speeds)) if speeds else None,
            "train_seconds": round(clock.spent(), 1),
            "stopped_by": rec.get("stopped", "steps"), "world_size": world.size}
