"""Fast BLAS for MLX on Linux: find the system OpenBLAS and preload it (the wheel's BLAS is slow).

MLX's Linux CPU wheel bundles a reference BLAS (about 5 GFLOP/s float32 matmul on a 2-core
laptop, against about 150 for numpy's OpenBLAS). Preloading Debian's OpenBLAS
(`LD_PRELOAD=.../openblas-pthread/libblas.so.3`, package libopenblas0-pthread) gives MLX the
same speed with identical results. `make` installs the package, the CLI re-executes itself
with the preload, and `python -m spike_lib kernel --install` gives Jupyter a kernel with it.
Taught in: notebooks/07_mlx_port.ipynb
"""

import contextlib
import ctypes
import functools
import glob
import json
import os
import platform
import sys
import warnings
from pathlib import Path

from spike_lib.core.atomic import write_json

PATTERNS = ("/usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3",
            "/usr/lib64/openblas-pthread/libblas.so.3", "/usr/lib/openblas-pthread/libblas.so.3")
OPT_OUT = "SPIKE_NO_PRELOAD"  # set to 1 to measure the slow "before" case
FIX = ("install Debian's OpenBLAS (sudo apt-get install libopenblas0-pthread) and start Python "
       "with LD_PRELOAD=<path>/openblas-pthread/libblas.so.3, or re-run `make setup`")


def find_openblas():
    """Path of the system's pthread OpenBLAS libblas.so.3, or None (always None off Linux)."""
    if platform.system() != "Linux":
        return None
    for pattern in PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def preloaded() -> bool:
    """True when an OpenBLAS is in this process's LD_PRELOAD."""
    return "openblas" in os.environ.get("LD_PRELOAD", "")


def needs_fix() -> bool:
    """True on Linux when MLX would run on its slow bundled BLAS."""
    return platform.system() == "Linux" and not preloaded()


def status() -> dict:
    return {"openblas": find_openblas(), "preloaded": preloaded(), "needs_fix": needs_fix()}


def warn_if_slow():
    """Warn once, clearly, when MLX runs on Linux without the fast BLAS."""
    if needs_fix():
        warnings.warn(f"MLX is using its slow reference BLAS (about 30x slower matmul): {FIX}",
                      RuntimeWarning, stacklevel=2)


def local_size() -> int:
    """How many ranks of this launch share this machine (1 when not launched as a group).

    mlx.launch's ring hostfile (MLX_HOSTFILE) lists one ["ip:port", ...] per rank; Open MPI
    says it in OMPI_COMM_WORLD_LOCAL_SIZE.
    """
    if "OMPI_COMM_WORLD_LOCAL_SIZE" in os.environ:
        return max(1, int(os.environ["OMPI_COMM_WORLD_LOCAL_SIZE"]))
    try:
        with open(os.environ["MLX_HOSTFILE"], encoding="utf-8") as f:
            hosts = json.load(f)
        ips = [h[0].rsplit(":", 1)[0] for h in hosts]
        return max(1, ips.count(ips[int(os.environ["MLX_RANK"])]))
    except (KeyError, OSError, ValueError, IndexError, TypeError, AttributeError):
        return 1


def blas_threads() -> int | None:
    """BLAS threads per process so R local ranks share the cores (None: not several ranks here).

    Two processes with a 2-thread OpenBLAS each on 2 cores spin against each other (steps of
    0.2 s stalled for seconds, once 20 s); cores // local ranks threads each avoids that.
    """
    n = local_size()
    if n == 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // n)


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by OPENBLAS_NUM_THREADS when set
    (so `OPENBLAS_NUM_THREADS=1 python -m spike_lib train ...` keeps a run on one core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        cap = int(os.environ.get("OPENBLAS_NUM_THREADS", "0"))
    except ValueError:
        cap = 0
    return max(1, min(cores or 1, cap) if cap > 0 else (cores or 1))


@functools.lru_cache(maxsize=1)
def _preloaded_openblas():
    """ctypes handle of the preloaded OpenBLAS (the one MLX calls), or None."""
    lib = find_openblas()
    if lib is None or not preloaded():
        return None
    try:
        handle = ctypes.CDLL(lib)
        handle.openblas_get_num_threads.restype = ctypes.c_int
        return handle
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def mlx_blas_threads(n):
    """Run the block with MLX's OpenBLAS on n threads, then restore the previous count.

    Used by the MLX training step that runs parts of a batch on parallel CPU streams: each
    stream's matmuls then get one core instead of every stream spinning on all of them. Does
    nothing when no OpenBLAS is preloaded (MLX then uses its own BLAS).
    """
    handle = _preloaded_openblas()
    if handle is None:
        yield
        return
    before = handle.openblas_get_num_threads()
    handle.openblas_set_num_threads(int(n))
    try:
        yield
    finally:
        handle.openblas_set_num_threads(before)


def reexec_with_openblas(argv):
    """Re-run this command with OpenBLAS preloaded, when it helps and is possible (no return).

    A rank of a data-parallel launch (spike_lib.train.distributed) also gets OPENBLAS_NUM_THREADS
    set to its share of the cores, unless it is set already.
    """
    lib, threads = find_openblas(), None
    if "MLX_HOSTFILE" in os.environ or "OMPI_COMM_WORLD_LOCAL_SIZE" in os.environ:  # launched
        threads = blas_threads()
    if lib is None or os.environ.get(OPT_OUT) == "1":
        return
    env = dict(os.environ)
    if threads and "OPENBLAS_NUM_THREADS" not in env:
        env["OPENBLAS_NUM_THREADS"] = str(threads)
    elif preloaded():
        return
    if not preloaded():
        env["LD_PRELOAD"] = f"{lib} {env['LD_PRELOAD']}".strip() if env.get("LD_PRELOAD") else lib
    os.execve(sys.executable, [sys.executable, "-m", "spike_lib", *argv], env)


def install_kernel(prefix=sys.prefix) -> Path:
    """Add the OpenBLAS preload to the environment's python3 Jupyter kernel (written atomically)."""
    path = Path(prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (spike course)", "language": "python",
            "metadata": {"debugger": True}}
    if path.exists():
        spec = json.loads(path.read_text())
    lib = find_openblas()
    if lib:
        spec.setdefault("env", {})["LD_PRELOAD"] = lib
    write_json(path, spec, sort_keys=False)
    return path


def add_arguments(parser) -> None:
    parser.add_argument("--install", action="store_true",
                        help="add the OpenBLAS preload to this environment's Jupyter kernel")


def run(args) -> dict:
    result = status()
    if args.install:
        result["kernel"] = str(install_kernel())
    return result
