"""A run folder's life: create it, save into it, repair it, read it.

A run folder holds run.json (the options, the model config and, with --time-budget, the planned
schedule length), log.jsonl (one JSON record per step) and checkpoint/ (the last good
checkpoint, replaced whole by spike_lib.core.atomic.atomic_folder).
Taught in: notebooks/10_toolkit.ipynb
"""

import json
import os
import shutil
from pathlib import Path

from spike_lib.core.atomic import atomic_file, write_json
from spike_lib.core.checkpoint_format import load_meta, load_weights, read_npz

RUN_CONFIG, LOG, CKPT = "run.json", "log.jsonl", "checkpoint"


def write_json_atomic(path, obj):
    """run.json and friends: core.atomic.write_json (indent 1, sorted keys)."""
    write_json(path, obj)


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
    with atomic_file(path) as f:
        f.writelines(json.dumps(r) + "\n" for r in keep)


def last_good_checkpoint(run):
    """The run's checkpoint folder, verified to load; None when the run has saved none yet.

    A kill between the two renames of a save leaves the previous checkpoint in
    .checkpoint.old-*/: it is moved back. Half-written .checkpoint.tmp-* folders are removed.
    """
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
