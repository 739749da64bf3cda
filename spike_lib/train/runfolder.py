"""A run folder's life: check an --out before work starts, lock it, save into it, repair it,
read it. The one place that knows what a run, checkpoint or adapter folder may hold.

A run folder holds run.json (the options, the model config, the planned schedule length, and
the options changed on resume), log.jsonl (one JSON record per step), checkpoint/ (the last
good checkpoint, replaced whole by core.atomic.atomic_folder) and .lock (the writer's pid).
Rules: one writer at a time (an exclusive lock); readers never write (they read the last
complete checkpoint, even the copy a save in progress has stepped aside); only the writer (or
`python -m spike_lib repair`) repairs; the log record of a step is on disk before its
checkpoint, so after any kill the log holds every step the checkpoint has seen.
Taught in: book/how_to_use.md (What is safe)
"""

import errno
import json
import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from spike_lib.core.atomic import OLD_TAG, TMP_TAG, atomic_file, leftovers, write_json
from spike_lib.core.checkpoint_format import (
    OPTIMIZER,
    describe_folder,
    is_checkpoint,
    load_meta,
    load_weights,
    read_json_file,
    read_npz,
    require_keys,
)

RUN_CONFIG, LOG, CKPT, LOCK = "run.json", "log.jsonl", "checkpoint", ".lock"
BAD_LOG = "log.bad.jsonl"  # where the writer sets aside log lines it cannot read
ADAPTER_FILES = ("adapter.json", "adapter.npz")
RUN_FILES = (RUN_CONFIG, LOG, CKPT, LOCK, BAD_LOG, "plot.png")
MIN_FREE = 1 << 20  # bytes an --out needs at least before any work starts


class RunLocked(ValueError):
    """Another process is writing to this run folder."""


# -- what a folder is -----------------------------------------------------------------------------
def kind_of(path) -> str:
    """"missing", "empty", "checkpoint", "adapter", "run" or "other" (anything else)."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if not path.is_dir():
        return "file"
    names = {p.name for p in path.iterdir() if not p.name.startswith(".")}
    if not names:
        return "empty"
    if is_checkpoint(path):
        return "checkpoint"
    if set(ADAPTER_FILES) <= names <= set(ADAPTER_FILES):
        return "adapter"
    if RUN_CONFIG in names and names <= set(RUN_FILES):
        return "run"
    return "other"


def replace_guard(kind):
    """check_replace for atomic_folder: replace only an empty folder or one of the same kind."""

    def check(path):
        found = kind_of(path)
        if found not in ("missing", "empty", kind):
            what = ("other files" if found == "other" else
                    f"{'an' if found[0] in 'aeiou' else 'a'} {found} folder")
            raise ValueError(f"{path} already holds {what} ({describe_folder(path)}): refusing "
                             f"to replace it with a {kind}; choose a new or empty folder for "
                             "--out (nothing was written)")

    return check


def _writable(folder) -> None:
    """OSError unless a file can be created in `folder` and the disk has MIN_FREE bytes."""
    fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    os.close(fd)
    os.unlink(probe)
    if shutil.disk_usage(folder).free < MIN_FREE:
        raise OSError(errno.ENOSPC, "No space left on device")


def check_out(path, kind, what="--out") -> Path:
    """Before any work: `path` can receive a `kind` folder (checkpoint, adapter, run), or a
    ValueError names the problem: a file there, a folder of another kind, no permission, no
    space. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path} is a file, not a folder: choose a folder path "
                         "(nothing was written)")
    if path.is_dir():
        replace_guard(kind)(path)
    folder = path if path.is_dir() else path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        _writable(folder)
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be written ({err.strerror or err}: in "
                         f"{folder}): choose a writable folder with free space (nothing was "
                         "written)") from None
    return path


def check_out_file(path, what="--out") -> Path:
    """Before any work: file `path` can be written (its folder writable, not a folder itself)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder: give a file name (nothing was written)")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        _writable(folder)
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be written ({err.strerror or err}: in "
                         f"{folder}): choose a writable place (nothing was written)") from None
    return path


# -- the lock --------------------------------------------------------------------------------------
def _pid_alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def lock_owner(run) -> dict:
    """{"pid": ..., "since": ...} written by the last writer of `run` ({} if none)."""
    try:
        data = json.loads((Path(run) / LOCK).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _refuse(run, owner):
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
    raise RunLocked(f"{run} is being written by process {owner.get('pid', '?')} (since "
                    f"{since}): wait for it to finish or stop it; two writers would mix their "
                    "logs and checkpoints")


@contextmanager
def locked(run):
    """Hold the exclusive writer's lock of run folder `run` (created if missing) for the block.

    fcntl.flock on run/.lock: the kernel drops it when the owner dies, even by kill -9, so a
    stale lock never blocks. The file records the owner's pid for the refusal message. Without
    fcntl (Windows) an O_EXCL lock file is used; a pid that no longer runs is a stale lock.
    """
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK
    info = json.dumps({"pid": os.getpid(), "since": time.time()})
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is None:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                owner = lock_owner(run)
                if owner.get("pid") and _pid_alive(owner["pid"]):
                    _refuse(run, owner)
                path.unlink(missing_ok=True)  # stale: its owner is gone
        os.write(fd, info.encode())
        os.close(fd)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
        return
    for _ in range(5):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            _refuse(run, lock_owner(run))
        try:  # the file we locked must still be the one at the path (a releaser unlinks it)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:  # pragma: no cover - another process keeps replacing the lock file
        _refuse(run, lock_owner(run))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, info.encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # still locked: nobody takes the old file meanwhile
        os.close(fd)  # a kill -9 skips this: the kernel drops the lock, the file stays (stale)


# -- reading (never writes) ------------------------------------------------------------------------
def read_run_config(run) -> dict:
    """run.json of `run`, checked: an object with "options" and "model" objects."""
    path = Path(run) / RUN_CONFIG
    if not path.is_file():
        raise ValueError(f"{run} holds no run ({RUN_CONFIG} is missing): start it without "
                         "--resume, or give the folder of an existing run")
    data = read_json_file(path, what="run (start a new run folder)")
    return require_keys(data, {"options": dict, "model": dict}, path, what="run.json")


def find_checkpoint(run):
    """The checkpoint folder of `run`: run/checkpoint, or the complete copy a save in progress
    (or a killed one) stepped aside into .checkpoint.old-*/checkpoint; None if there is none."""
    run = Path(run)
    if (run / CKPT).is_dir():
        return run / CKPT
    olds = [p / CKPT for p in leftovers(run / CKPT)["old"] if (p / CKPT).is_dir()]
    return olds[-1] if olds else None


def read_checkpoint(run, load, tries=8):
    """load(path) of the run's last complete checkpoint, retried while a writer swaps it in.

    A reader never renames or deletes anything: a save that replaces the folder under it makes
    the load fail (a file vanished), so it looks again, up to `tries` times.
    """
    for attempt in range(tries):
        path = find_checkpoint(run)
        if path is None:
            return None
        try:
            return load(path)
        except (ValueError, OSError):
            if attempt == tries - 1:
                raise
            time.sleep(0.02 * 2**attempt)  # a save takes milliseconds to a second
    return None


def _verify(path):
    load_meta(path)
    load_weights(path)
    if (path / OPTIMIZER).exists():
        read_npz(path / OPTIMIZER)
    return path


def last_good_checkpoint(run):
    """The run's last complete checkpoint folder, verified to load; None if none was saved.

    Read-only: while a save is in progress (or after a kill between its renames) this is the
    copy stepped aside in .checkpoint.old-*; `train --resume` or `python -m spike_lib repair`
    moves it back.
    """
    try:
        return read_checkpoint(run, _verify)
    except ValueError as err:
        raise ValueError(f"the checkpoint of {run} is unusable: {err}. Restart the run "
                         "without --resume in a new folder") from None


def _log_lines(path):
    """[(line number, record or None)] of a log; None marks a line that is not a JSON object."""
    raw = Path(path).read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    out = []
    for i, line in enumerate(raw, 1):
        try:
            rec = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            rec = None
        out.append((i, rec if isinstance(rec, dict) else None))
    return out


def read_log(path) -> list:
    """The records of a log.jsonl. A last line cut short by a kill is skipped quietly; other
    unreadable lines are skipped with a warning naming the file and the lines (`train
    --resume` sets them aside in log.bad.jsonl). Never writes."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG
    if not path.is_file():
        raise ValueError(f"no training log at {path}: is this a run folder made by `train`?")
    lines = _log_lines(path)
    bad = [i for i, rec in lines[:-1] if rec is None]
    if bad:
        warnings.warn(f"{path}: lines {bad[:5]}{'...' if len(bad) > 5 else ''} are not JSON "
                      f"records and were skipped; `train --resume` moves them to {BAD_LOG}",
                      RuntimeWarning, stacklevel=2)
    return [rec for _, rec in lines if rec is not None]


# -- writing (the lock holder only) ---------------------------------------------------------------
def write_run_config(run, data):
    write_json(Path(run) / RUN_CONFIG, data)


def write_json_atomic(path, obj):
    """run.json and friends: core.atomic.write_json (indent 1, sorted keys)."""
    write_json(path, obj)


def append_log(run, rec):
    """Append one record to the log and flush it to disk (before its checkpoint is saved)."""
    with open(Path(run) / LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, allow_nan=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def repair_folder(path) -> list:
    """Finish what a killed atomic save of folder `path` left: put the previous copy back if
    `path` is missing, remove half-written copies. Returns what it did (strings)."""
    path, done = Path(path), []
    left = leftovers(path)
    olds = [p / path.name for p in left["old"] if (p / path.name).is_dir()]
    if not path.exists() and olds:
        os.replace(olds[-1], path)
        done.append(f"put back {path} from {olds[-1].parent.name}")
    for p in leftovers(path)["old"] + left["tmp"]:
        shutil.rmtree(p, ignore_errors=True)
        done.append(f"removed {p.name}")
    return done


def repair_run(run, keep_step) -> list:
    """The writer's repair before it resumes: the checkpoint's leftovers (repair_folder), the
    unreadable log lines set aside in log.bad.jsonl, the log cut back to step keep_step."""
    run, done = Path(run), []
    log = run / LOG
    if not log.is_file():
        return done
    lines = _log_lines(log)
    bad = [i for i, rec in lines if rec is None]
    last_cut = bool(lines) and lines[-1][1] is None and not log.read_bytes().endswith(b"\n")
    aside = [i for i in bad if not (last_cut and i == lines[-1][0])]
    if aside:
        raw = log.read_bytes().split(b"\n")
        with open(run / BAD_LOG, "ab") as f:
            f.writelines(raw[i - 1] + b"\n" for i in aside)
        done.append(f"set aside log lines {aside} in {run / BAD_LOG}")
    keep = [rec for _, rec in lines if rec is not None and rec.get("step", 0) <= keep_step]
    with atomic_file(log) as f:
        f.writelines(json.dumps(r) + "\n" for r in keep)
    return done


def truncate_log(path, last_step):
    """Keep the records up to and including step last_step (what the checkpoint has seen)."""
    path = Path(path)
    if path.is_file():
        repair_run(path.parent, last_step)


__all__ = ["BAD_LOG", "CKPT", "LOCK", "LOG", "OLD_TAG", "RUN_CONFIG", "TMP_TAG",
           "RunLocked", "append_log", "check_out", "check_out_file", "find_checkpoint",
           "kind_of", "last_good_checkpoint", "lock_owner", "locked", "read_checkpoint",
           "read_log", "read_run_config", "repair_folder", "repair_run",
           "replace_guard", "truncate_log", "write_json_atomic", "write_run_config"]
