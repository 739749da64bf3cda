"""Atomic writes: a file or a folder is replaced whole or not at all, never left half written.

Every writer of spike_lib goes through this module:
    with atomic_path("x.png") as tmp: fig.savefig(tmp)     # any library that writes to a path
    with atomic_file("x.jsonl") as f: f.write(...)          # a file object (text, or mode="wb")
    write_text(path, text); write_json(path, obj)           # the common cases
    with atomic_folder("run/checkpoint", kind=...) as tmp:  # a folder (checkpoint, adapter)
The new content goes into a temporary sibling (same folder, so os.replace is atomic), is
flushed to disk and then renamed over the target; on any error the temporary is removed and the
target is left as it was. Files get mode 0644 (mkstemp would leave 0600).
Taught in: book/how_to_use.md (What is safe)
"""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

# .NAME.tmp-XXXX: being written; .NAME.old-XXXX: the old copy, stepped aside during a save
TMP_TAG, OLD_TAG = ".tmp-", ".old-"


def fault_point(name):
    """Test hook: SPIKE_FAULT="NAME:N" kills this process with SIGKILL the N-th time the
    program passes fault_point(NAME) (a kill -9 at a chosen moment, for the tests of what
    survives a kill). Does nothing when SPIKE_FAULT is unset."""
    spec = os.environ.get("SPIKE_FAULT")
    if not spec or spec.rpartition(":")[0] != name:
        return
    _FAULTS[name] = _FAULTS.get(name, 0) + 1
    if _FAULTS[name] == int(spec.rpartition(":")[2]):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


_FAULTS = {}


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not supported here (Windows): the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path):
    """Yield the path of a temporary sibling of `path`; once the block ends it becomes `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_TAG}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:  # what the block wrote reaches the disk before the rename
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_file(path, mode="w", encoding="utf-8", newline=None):
    """Yield a file object open on a temporary sibling of `path` (mode "w" text or "wb")."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode={mode!r} is invalid: use 'w' (text) or 'wb' (bytes)")
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_text(path, text: str) -> Path:
    """Write text (UTF-8) to path atomically."""
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)


def write_bytes(path, data: bytes) -> Path:
    with atomic_file(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json(path, obj, indent=1, sort_keys=True, ensure_ascii=True, newline=False) -> Path:
    """json.dump obj to path atomically (newline=True ends the file with a line break)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    return write_text(path, text + ("\n" if newline else ""))


def leftovers(path) -> dict:
    """{"tmp": [...], "old": [...]}: the siblings an interrupted atomic_folder(path) left."""
    path = Path(path)
    return {"tmp": sorted(path.parent.glob(f".{path.name}{TMP_TAG}*")),
            "old": sorted(path.parent.glob(f".{path.name}{OLD_TAG}*"))}


@contextmanager
def atomic_folder(path, check_replace=None):
    """Yield an empty temporary sibling folder of `path`; once the block ends it becomes `path`.

    check_replace(path) is called before anything is written when `path` exists: it raises
    (ValueError) unless `path` may be replaced (for example: it is the same kind of artefact).
    The old folder steps aside (.NAME.old-*/NAME) and is removed only once the new one is in
    place: a kill between the two renames leaves the old copy there, which
    spike_lib.train.runfolder.repair_folder (or `python -m spike_lib repair PATH`) puts back.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a folder: choose another --out (nothing was "
                         "written)")
    if path.is_dir() and check_replace is not None:
        check_replace(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TMP_TAG}", dir=path.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        for f in tmp.iterdir():  # every file on disk before the folder is swapped in
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}{OLD_TAG}", dir=path.parent))
            os.replace(path, old / path.name)  # step aside, keep until the new one is in place
            fault_point("folder-stepped-aside")
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
