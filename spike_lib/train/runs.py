"""The run loop behind `python -m spike_lib train`: either backend, JSON-lines log, safe resume.

A run folder holds run.json (the options, the model config and, with --time-budget, the planned
schedule length), log.jsonl (one JSON record per step) and checkpoint/ (the last good
checkpoint, replaced whole by spike_lib.train.checkpoint).
The batch of step k is a pure function of (seed, k), so a resumed run repeats the losses of
an uninterrupted one. Taught in: notebooks/10_toolkit.ipynb
"""

import json
import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from spike_lib.core.config import Config, check_choice, check_range
from spike_lib.numpy_impl.train import TrainingDiverged
from spike_lib.core.overrides import (  # noqa: F401  (the --set names stay importable from runs)
    OWN_OPTION,
    check_override_key,
    parse_override,
    parse_overrides,
)

RUN_CONFIG, LOG, CKPT = "run.json", "log.jsonl", "checkpoint"
PRESETS = {"tiny": Config.tiny, "small": Config.small, "book": Config.book}
BACKENDS = ("numpy", "mlx")
DEFAULTS = {"config": "tiny", "tokenizer": None, "steps": 200, "batch_size": 16, "lr": 3e-3,
            "warmup": 20, "weight_decay": 0.01, "clip": 1.0, "eval_every": 50,
            "ckpt_every": None, "val_tokens": 4096, "seed": 0, "spiking": True,
            "attention": "sdsa", "metadata": False, "backend": "numpy", "set": {},
            "time_budget": None}
# options that change what is logged or saved when, not what is learned: free on --resume
# (time_budget too: the schedule's length is fixed in run.json's "plan" once it is measured)
FREE_ON_RESUME = ("eval_every", "ckpt_every", "val_tokens", "time_budget")
NO_STEP_CAP = 10**7  # --steps when only --time-budget bounds a run


class RunError(RuntimeError):
    """A run could not go on (a write failed); the message says what is left on disk."""


def run_options(**overrides) -> dict:
    """DEFAULTS with overrides (None means default), each validated; tokenizer filled in."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown run options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    opts = {**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("steps") is None and overrides.get("time_budget") is not None:
        opts["steps"] = NO_STEP_CAP  # the clock decides
    if not isinstance(opts["set"], dict):
        raise ValueError(f"set={opts['set']!r} is invalid: it must be a dict of Config fields")  # noqa: TRY004
    opts["set"] = dict(opts["set"])
    for key in opts["set"]:
        check_override_key(key)
    if opts["time_budget"] is not None:
        check_range("time_budget", opts["time_budget"], 0.0, low_open=True)
    check_choice("config", opts["config"], list(PRESETS))
    check_choice("backend", opts["backend"], BACKENDS)
    from spike_lib.train import registry

    registry.check_name("attention", opts["attention"])  # sdsa, softmax or a registered one
    for key in ("steps", "batch_size", "eval_every", "val_tokens"):
        check_range(key, opts[key], 1, kind=int)
    check_range("warmup", opts["warmup"], 0, kind=int)
    check_range("seed", opts["seed"], 0, kind=int)
    check_range("lr", opts["lr"], 0.0, low_open=True)
    check_range("weight_decay", opts["weight_decay"], 0.0)
    check_range("clip", opts["clip"], 0.0)
    if opts["ckpt_every"] is None:
        opts["ckpt_every"] = opts["eval_every"]
    check_range("ckpt_every", opts["ckpt_every"], 1, kind=int)
    if opts["tokenizer"] is None:  # characters for the tiny model, BPE for the real ones
        opts["tokenizer"] = "char" if opts["config"] == "tiny" else "bpe"
    PRESETS[opts["config"]](**opts["set"])  # Config validates the overrides (ValueError)
    return opts


def resolve_tokenizer(name_or_path):
    """A tokenizer by name (char, syllable, bpe, gpt2, or a registered plug-in) or by .json path."""
    from spike_lib.train import registry
    from spike_lib.tokenizers import TOKENIZERS, get_tokenizer, load_tokenizer

    if name_or_path in TOKENIZERS:
        return get_tokenizer(name_or_path)
    path = Path(name_or_path)
    if path.suffix != ".json":
        try:
            tok = registry.get_tokenizer(name_or_path)
        except ValueError:
            raise ValueError(f"tokenizer={name_or_path!r} is neither a tokenizer name "
                             f"{registry.names('tokenizer')} nor the path of a saved tokenizer "
                             "(.json)") from None
        if not callable(getattr(tok, "save", None)):  # checkpoints hold their tokenizer
            raise ValueError(f"the plug-in tokenizer {name_or_path!r} has no save(path): "
                             "subclass spike_lib.tokenizers.base.Tokenizer to train with it")
        return tok
    if not path.is_file():
        raise ValueError(f"tokenizer file {path} does not exist: give a shipped name "
                         f"{sorted(TOKENIZERS)} or the path of a file saved with .save()")
    return load_tokenizer(path)


def make_config(opts, tokenizer) -> Config:
    """The preset with the tokenizer's vocabulary size and the run's switches."""
    return PRESETS[opts["config"]](vocab_size=tokenizer.vocab_size, spiking=opts["spiking"],
                                   attention=opts["attention"], seed=opts["seed"],
                                   **opts.get("set", {}))


class StepRNG:
    """Quacks like np.random.Generator, drawing from default_rng([seed, step]) after .at(step)."""

    def __init__(self, seed):
        self.seed, self.gen = seed, None

    def at(self, step):
        self.gen = np.random.default_rng([self.seed, step])
        return self

    def __getattr__(self, name):  # integers, random: what batch_iterator draws with
        return getattr(self.gen, name)


class Batches:
    """batches(k) -> (x, y): the batch of step k, the same whatever ran before it."""

    def __init__(self, docs, tokenizer, block_size, batch_size, seed, metadata=False):
        from spike_lib.data.batches import batch_iterator, encode_documents

        self.rng = StepRNG(seed)
        data = docs if metadata else encode_documents(docs, tokenizer.encode)[0]
        self.it = batch_iterator(data, block_size, batch_size, self.rng, metadata=metadata,
                                 encode=tokenizer.encode)

    def __call__(self, step):
        self.rng.at(step)
        return next(self.it)


class NumpyBackend:
    """The NumPy SpikeLLM with the hand-written backward and AdamW."""

    name = "numpy"

    def __init__(self, cfg, opts):
        from spike_lib.numpy_impl.model import SpikeLLM
        from spike_lib.numpy_impl.optim import AdamW

        self.model = SpikeLLM(cfg)
        self.opt = AdamW(self.model, lr=opts["lr"], weight_decay=opts["weight_decay"])
        self.clip = opts["clip"]
        self.model.train(True)

    def step(self, x, y, lr) -> dict:
        from spike_lib.numpy_impl.train import train_step

        return train_step(self.model, self.opt, x, y, lr, self.clip)

    def numpy_model(self):
        return self.model

    def save(self, path, tokenizer, meta):
        from spike_lib.train.checkpoint import save_checkpoint

        save_checkpoint(path, self.model, tokenizer, self.opt, meta={**meta, "backend": "numpy"})

    def load(self, path) -> dict:
        from spike_lib.train.checkpoint import load_checkpoint

        return load_checkpoint(path, self.model, self.opt)[2]


class MLXOptimizerState:
    """An MLX optimizer's state as flat NumPy arrays, for spike_lib.train.checkpoint (optimizer.npz)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def state_dict(self) -> dict:
        from mlx.utils import tree_flatten

        return {k: np.array(v) for k, v in tree_flatten(self.optimizer.state)}

    def load_state_dict(self, state):
        import mlx.core as mx
        from mlx.utils import tree_unflatten

        self.optimizer.state = tree_unflatten([(k, mx.array(v)) for k, v in state.items()])
        return self


class MLXBackend:
    """The MLX SpikeLLM: autodiff, and the training step compiled with mx.compile.

    With a World of R > 1 processes the step averages the gradients over them (data parallel,
    spike_lib.train.distributed) and each rank draws its own dropout masks (seed + 1000 rank).
    """

    name = "mlx"

    def __init__(self, cfg, opts, world=None):
        import importlib

        try:
            mlx_train = importlib.import_module("spike_lib.mlx_impl.train")
            SpikeLLM = importlib.import_module("spike_lib.mlx_impl.model").SpikeLLM
        except ImportError as err:
            raise ValueError(f"--backend mlx is not available here ({err}); install mlx "
                             "(pip install 'mlx[cpu]') or use --backend numpy") from None
        self.mt = mlx_train
        self.model = SpikeLLM(cfg)
        self.opt = mlx_train.AdamW(opts["lr"], weight_decay=opts["weight_decay"])
        self.clip, self.fn = opts["clip"], None
        self.group = world.group if world is not None else None
        if self.group is not None:
            importlib.import_module("mlx.core").random.seed(opts["seed"] + 1000 * world.rank)

    def step(self, x, y, lr) -> dict:
        if self.fn is None:  # after a resume has loaded the optimizer state
            self.model.train(True)
            self.fn = self.mt.make_step(self.model, self.opt, self.clip, compile=True,
                                        group=self.group)
        return self.mt.train_step(self.fn, self.opt, x, y, lr)

    def get_state(self) -> dict:
        """Weights and optimizer state: {'model.<name>' or 'opt.<name>': NumPy array}."""
        opt = MLXOptimizerState(self.opt).state_dict()
        return {**{f"model.{k}": v for k, v in self.model.state_dict().items()},
                **{f"opt.{k}": v for k, v in opt.items()}}

    def set_state(self, state):
        def part(prefix):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        self.model.load_state_dict(part("model."))
        MLXOptimizerState(self.opt).load_state_dict(part("opt."))
        self.fn = None  # the compiled step captured the old optimizer state: trace again

    def numpy_model(self):
        return self.model.to_numpy()

    def save(self, path, tokenizer, meta):
        from spike_lib.train.checkpoint import save_checkpoint

        save_checkpoint(path, self.model, tokenizer, MLXOptimizerState(self.opt),
                        meta={**meta, "backend": "mlx"})

    def load(self, path) -> dict:
        from spike_lib.train.checkpoint import load_checkpoint

        return load_checkpoint(path, self.model, MLXOptimizerState(self.opt))[2]


def make_backend(cfg, opts, world=None):
    return MLXBackend(cfg, opts, world) if opts["backend"] == "mlx" else NumpyBackend(cfg, opts)


# -- the run folder ----------------------------------------------------------------------------
def write_json_atomic(path, obj):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_run_config(run) -> dict:
    path = Path(run) / RUN_CONFIG
    if not path.is_file():
        raise ValueError(f"{run} holds no run ({RUN_CONFIG} is missing): start it without "
                         "--resume, or give the folder of an existing run")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is corrupt ({err}): start a new run folder") from None


def read_log(path) -> list:
    """The records of a log.jsonl; a last line cut short by a kill is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG
    if not path.is_file():
        raise ValueError(f"no training log at {path}: is this a run folder made by `train`?")
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ValueError(f"{path} line {i + 1} is not JSON: the log is corrupt") from None
    return records


def truncate_log(path, last_step):
    """Keep the records up to and including step last_step (what the checkpoint has seen)."""
    if not Path(path).is_file():
        return
    keep = [r for r in read_log(path) if r.get("step", 0) <= last_step]
    fd, tmp = tempfile.mkstemp(prefix=".log.", suffix=".tmp", dir=Path(path).parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in keep)
    os.replace(tmp, path)


def last_good_checkpoint(run):
    """The run's checkpoint folder, verified to load; None when the run has saved none yet.

    A kill between the two renames of a save leaves the previous checkpoint in
    .checkpoint.old-*/: it is moved back. Half-written .checkpoint.tmp-* folders are removed.
    """
    from spike_lib.train.checkpoint import load_meta, load_weights, read_npz

    run = Path(run)
    for tmp in run.glob(f".{CKPT}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    path = run / CKPT
    olds = sorted(run.glob(f".{CKPT}.old-*/{CKPT}"), key=lambda p: p.stat().st_mtime)
    if not path.exists() and olds:
        os.replace(olds[-1], path)
    for old in run.glob(f".{CKPT}.old-*"):
        shutil.rmtree(old, ignore_errors=True)
    if not path.exists():
        return None
    try:
        load_meta(path)
        load_weights(path)
        if (path / "optimizer.npz").exists():
            read_npz(path / "optimizer.npz")
    except ValueError as err:
        raise ValueError(f"the checkpoint of {run} is unusable: {err}. Restart the run "
                         "without --resume in a new folder") from None
    return path


# -- the loop ------------------------------------------------------------------------------------
class Budget:
    """A run's wall-clock budget (--time-budget B seconds): fix the schedule's length, then stop.

    The cosine schedule must know its total number of steps N before it decays. So the run
    times its first CALIBRATE steps (the first, which compiles, left out: median t_step), then
    one evaluation and one checkpoint (t_eval, t_save), and fixes
        N = n + floor(SAFETY * (B - spent - t_eval - t_save) / (t_step + t_eval / eval_every
                                                                 + t_save / ckpt_every))
    capped by --steps. N goes into run.json as "plan" and the run decays over it, so it ends at
    its lowest learning rate just inside B. A resumed run keeps the plan and the seconds spent
    (saved in each checkpoint). Should the machine slow down, the run stops when the next step
    and the final evaluation would overrun B, with a checkpoint. Calibrating inside the warmup
    (warmup >= CALIBRATE) makes the learning rates of every step the planned schedule's. The
    budget counts training, evaluation and saving, not loading and tokenizing the corpus.
    """

    CALIBRATE, SAFETY = 12, 0.95

    def __init__(self, opts, plan, spent=0.0):
        self.budget, self.fixed = opts["time_budget"], plan
        self.t0 = time.perf_counter() - spent
        self.times, self.t_save = [], 0.0
        self.final = plan["final_seconds"] if plan else 0.0

    def spent(self) -> float:
        return time.perf_counter() - self.t0

    def total(self, steps) -> int:
        return self.fixed["steps"] if self.fixed else steps

    def step_done(self, dt):
        self.times.append(dt)

    def save_took(self, dt):
        self.t_save = max(self.t_save, dt)

    def t_step(self) -> float:
        return float(np.median(self.times[1:] or self.times))

    def planning(self, total) -> bool:
        n = len(self.times)
        return bool(self.budget) and self.fixed is None and n == min(self.CALIBRATE, total - 1)

    def out_of_time(self, done, total) -> bool:
        if not self.budget or done >= total or self.planning(total):
            return False
        return self.spent() + self.t_step() + self.final > self.budget

    def plan(self, done, steps, t_eval, opts) -> int:
        """Fix N from the measured times (the checkpoint about to be saved costs like t_eval)."""
        t_save = max(self.t_save, t_eval)  # the first save has not run yet: guess it
        self.final = t_eval + t_save
        per_step = (self.t_step() + t_eval / opts["eval_every"]
                    + t_save / opts["ckpt_every"])
        left = self.budget - self.spent() - t_save - self.final
        n = min(steps, done + max(1, math.floor(self.SAFETY * left / per_step)))
        self.fixed = {"steps": n, "at_step": done, "step_seconds": round(self.t_step(), 4),
                      "eval_seconds": round(t_eval, 3), "final_seconds": round(self.final, 3),
                      "time_budget": self.budget}
        return n


def _progress(enabled, total, initial):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", leave=False)


def _eval_record(backend, val_ids, val_chars, batch_size) -> dict:
    """val loss and BPC, and every layer's firing rate on one batch of validation windows."""
    from spike_lib.numpy_impl.train import evaluate

    model = backend.numpy_model()
    ev = evaluate(model, val_ids, n_chars=val_chars, batch_size=batch_size)
    n_ctx = min(model.cfg.block_size, len(val_ids) - 1)
    rows = np.arange(0, len(val_ids) - n_ctx, n_ctx)[:batch_size, None] + np.arange(n_ctx)
    model.train(False)
    model(val_ids[rows])
    rates = model.firing_rates()
    if backend.name == "numpy":
        model.train(True)
    return {"val_loss": ev["loss"], "val_bpc": ev["bpc"], "firing_rates": rates}


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
    from spike_lib.train import distributed
    from spike_lib.train.checkpoint import load_config
    from spike_lib.data.batches import encode_documents
    from spike_lib.numpy_impl.optim import cosine_lr

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
    val_ids = encode_documents(val_docs, tok.encode)[0][: opts["val_tokens"] + 1]
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
                rec.update(_eval_record(backend, val_ids, val_chars, opts["batch_size"]))
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
