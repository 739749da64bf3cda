"""The run loop behind `python -m spike_lib train`: either backend, JSON-lines log, safe resume.

The batch of step k is a pure function of (seed, k), so a resumed run repeats the losses of
an uninterrupted one. The parts: options (what a run is asked to do), backends (NumPy or MLX,
batches, the eval record), budget (--time-budget), runfolder (run.json, log, checkpoint).
Taught in: notebooks/10_toolkit.ipynb
"""

import time
import warnings
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from spike_lib.core.atomic import fault_point
from spike_lib.core.checkpoint_format import load_config, require_keys
from spike_lib.core.overrides import (  # noqa: F401  (the --set names stay importable from runs)
    OWN_OPTION,
    check_override_key,
    parse_override,
    parse_overrides,
)
from spike_lib.core.training import LossWatch, TrainingDiverged, cosine_lr
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
    CHANGEABLE,
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
    RunLocked,
    append_log,
    check_out,
    find_checkpoint,
    last_good_checkpoint,
    locked,
    read_log,
    read_run_config,
    repair_folder,
    repair_run,
    truncate_log,
    write_json_atomic,
    write_run_config,
)


class RunError(RuntimeError):
    """A run could not go on (a write failed); the message says what is left on disk."""


def _progress(enabled, total, initial):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", leave=False)


def _open_run(out, resume, options, allow_changed=()) -> tuple:
    """(opts, saved run.json or {}, changes): a new run's options, or a resumed run's checked
    ones; changes lists the options changed on resume that allow_changed permits."""
    if not resume:
        if (out / RUN_CONFIG).exists():
            raise ValueError(f"{out} already holds a run: pass --resume to continue it, or "
                             "choose another --out folder")
        opts = run_options(**options)
        check_out(out, "run")
        return opts, {}, {}
    bad = sorted(set(allow_changed) - set(CHANGEABLE))
    if bad:
        raise ValueError(f"--allow-changed {bad[0]} is not allowed: only {list(CHANGEABLE)} may "
                         "change on --resume")
    saved = read_run_config(out)
    opts = run_options(**{**saved["options"], **{k: v for k, v in options.items()
                                                    if v is not None}})
    diff = {k: (saved["options"].get(k, DEFAULTS.get(k)), v) for k, v in opts.items()
            if k not in FREE_ON_RESUME and saved["options"].get(k, DEFAULTS.get(k)) != v}
    changes = {k: d for k, d in diff.items() if k in allow_changed}
    diff = {k: d for k, d in diff.items() if k not in allow_changed}
    if diff:
        said = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
        allow = [k for k in diff if k in CHANGEABLE]
        hint = (f", add --allow-changed {allow[0]} to change it on purpose (logged in run.json)"
                if allow else "")
        raise ValueError(f"{out} was trained with other options ({said}); resume with "
                         f"the saved options (leave them out){hint}, or start a new --out "
                         "folder")
    return opts, saved, changes


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


def _diverged(out, step, err, last_saved, lr):
    where = (f"{out / CKPT} keeps the state after step {last_saved}; resume from it with a lower "
             f"rate: python -m spike_lib train --out {out} --resume --lr {lr / 10:g} "
             "--allow-changed lr" if last_saved else
             "no checkpoint was saved yet; start again with a lower --lr")
    return TrainingDiverged(f"training stopped at step {step + 1}: {err}. {where} (now "
                            f"--lr {lr:g})")


def train_run(out, resume=False, callback=None, progress=False, train_docs=None,
              val_docs=None, allow_changed=(), **options) -> dict:
    """Train a SpikeLLM into run folder `out`, or continue it (resume=True) from its checkpoint.

    options: see DEFAULTS (None keeps the default, or the saved value on resume). Resuming with
    an option that changes what is learned raises ValueError naming the difference, unless it
    is in allow_changed (lr, steps: the change is logged in run.json).
    train_docs / val_docs: corpus documents (default: the shipped train and val splits).
    callback(step, record) runs after every step with the logged record. A NaN loss or a
    blow-up raises TrainingDiverged, a failed write RunError; run/checkpoint then holds the
    last good state. The folder is locked while the run writes (RunLocked for a second writer).
    Started by mlx.launch as R processes (spike_lib.train.distributed), each rank trains on its
    slice of every global batch; rank 0 alone reads, locks and writes `out`.
    """
    out, world, ready = Path(out), distributed.world(), []
    with ExitStack() as stack:

        def open_folder():  # rank 0 only: the other ranks get its options or its error
            opts, saved, changes = _open_run(out, resume, options, allow_changed)
            world.check(opts)
            ready.extend(_prepare(opts, train_docs, val_docs))
            if resume and saved.get("model") != ready[1].to_dict():
                raise ValueError(f"{out} holds a model with another config than tokenizer "
                                 f"{opts['tokenizer']!r} now gives (vocab_size "
                                 f"{ready[1].vocab_size}); restore the tokenizer file or start "
                                 "a new run")
            stack.enter_context(locked(out))  # RunLocked if another process writes here
            if not resume and (out / RUN_CONFIG).exists():  # it won the race for the folder
                raise ValueError(f"{out} already holds a run: pass --resume to continue it")
            return {"options": opts, "saved": saved,
                    "changes": {k: list(v) for k, v in changes.items()}}

        shared = world.from_rank0(open_folder)
        return _train(out, world, shared, ready, resume, callback, progress, train_docs,
                      val_docs)


def _train(out, world, shared, ready, resume, callback, progress, train_docs, val_docs) -> dict:
    opts, saved = shared["options"], shared["saved"]
    tok, cfg, train_docs, val_docs = ready or _prepare(opts, train_docs, val_docs)
    backend = make_backend(cfg, opts, world)
    run_json = {"options": opts, "model": cfg.to_dict(), "world_size": world.size,
                **{k: saved[k] for k in ("plan", "changes") if k in saved}}

    def load():  # rank 0 only, holding the lock: the step (and seconds) to start from
        if not resume:
            write_run_config(out, run_json)
            return [0, 0.0]
        repair_folder(out / CKPT)  # the writer alone puts back what a killed save left
        ckpt, start = find_checkpoint(out), [0, 0.0]
        if ckpt is not None:
            if load_config(ckpt) != cfg:
                raise ValueError(f"{ckpt} holds a model of another config than {out}/"
                                 f"{RUN_CONFIG}: the folder was mixed up; start a new run")
            meta = require_keys(backend.load(ckpt), {"step": int}, ckpt / "meta.json",
                                what="checkpoint meta.json")
            start = [meta["step"], float(meta.get("train_seconds", 0.0))]
        for msg in repair_run(out, start[0]):
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
        if shared["changes"]:
            run_json.setdefault("changes", []).extend(
                {"at_step": start[0], "option": k, "from": a, "to": b}
                for k, (a, b) in sorted(shared["changes"].items()))
            write_run_config(out, run_json)
        return start

    try:
        start, spent = world.from_rank0(load)
    except OSError as err:
        raise RunError(f"could not write to {out} ({err}): nothing was trained; choose a "
                       "writable --out with free space") from None
    world.broadcast_state(backend)  # every rank starts from rank 0's weights
    batches = Batches(train_docs, tok, cfg.block_size, opts["batch_size"], opts["seed"],
                      opts["metadata"])
    val_ids = heldout_ids(tok, opts["val_tokens"], docs=val_docs)  # every source, equal shares
    val_chars = len(tok.decode(val_ids[1:].tolist()))
    steps, lr = opts["steps"], opts["lr"]
    clock = Budget(opts, saved.get("plan"), spent)
    total = clock.total(steps)
    bar = _progress(progress and world.main, total, start)
    rec, last_saved, speeds, step = {}, start, [], start
    watch = LossWatch()
    try:
        while step < total:
            x, y = batches(step)
            lr_t = cosine_lr(step, lr, min(opts["warmup"], total), total, lr * 0.1)
            t0 = time.perf_counter()
            try:
                res = backend.step(world.slice(x), world.slice(y), lr_t, step)  # global mean
                watch.check(res["loss"])  # NaN, inf or far above its running median
            except TrainingDiverged as err:
                raise _diverged(out, step, err, last_saved, lr) from None
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
                    run_json["plan"] = clock.fixed
                    if world.main:
                        write_run_config(out, run_json)
                    if bar is not None:
                        bar.total = total
                if world.main:  # the record reaches the disk before its checkpoint
                    append_log(out, rec)
                    fault_point("log-appended")
                if (step + 1) % opts["ckpt_every"] == 0 or last or planning:
                    if not world.in_step(backend) and world.main:  # all ranks must take part
                        warnings.warn(f"the {world.size} processes held different weights at "
                                      f"step {step + 1}: rank 0's were sent to all", stacklevel=2)
                    if world.main:
                        backend.save(out / CKPT, tok, {"step": step + 1, "loss": res["loss"],
                                                       "train_seconds": clock.spent(),
                                                       "world_size": world.size})
                        fault_point("checkpoint-saved")
                    last_saved = step + 1
                clock.save_took(time.perf_counter() - t0)
            except OSError as err:
                kept = (f"{out / CKPT} keeps the last good state (step {last_saved})"
                        if last_saved else "no checkpoint was saved yet")
                raise RunError(f"could not write to {out} at step {step + 1} ({err}); {kept}: "
                               "free some disk space and train again"
                               f"{' with --resume' if last_saved else ''}") from None
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
