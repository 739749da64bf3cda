"""Data-parallel training across processes with MLX's own distributed layer (mx.distributed).

Every rank r of R takes rows [r B/R, (r+1) B/R) of the same global batch of B sequences, and the
step averages the gradients (weighted by each slice's token count) so every rank applies the
update of the whole batch. Taught in: book/distributed.md
"""

import functools
import json
import os
from dataclasses import dataclass

import numpy as np

from spike_lib.core.blas import blas_threads, local_size  # noqa: F401 - the launch helpers
from spike_lib.core.training import token_weight  # noqa: F401 - re-exported for the launcher

# set by the launchers: mlx.launch (ring, jaccl, nccl) and mpirun (Open MPI, MPICH)
LAUNCH_ENV = ("MLX_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


class RankZeroError(ValueError):
    """Rank 0 refused the run: it prints the reason, the other ranks stop quietly."""


def launched() -> bool:
    """True when a launcher (mlx.launch, mpirun) started this process as one of a group."""
    return any(key in os.environ for key in LAUNCH_ENV)


@functools.cache
def world() -> "World":
    """This process's World: from mx.distributed.init() when launched, else one process alone.

    mlx is imported only when launched, so the NumPy backend runs without it.
    """
    if not launched():
        return World()
    import mlx.core as mx

    group = mx.distributed.init()
    return World(group.rank(), group.size(), group if group.size() > 1 else None)


@dataclass(frozen=True)
class World:
    """The R processes that train one model: this is rank `rank` of `size` (MLX's group or None).

    Rank 0 alone reads and writes the run folder; the others receive what it read (share,
    share_arrays), so only rank 0's machine needs the run folder.
    """

    rank: int = 0
    size: int = 1
    group: object = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def check(self, opts):
        """ValueError for options that cannot run on this many processes."""
        if self.size == 1:
            return
        if opts["backend"] != "mlx":
            raise ValueError(f"train runs as {self.size} processes (started by mlx.launch or "
                             f"mpirun) but --backend {opts['backend']} cannot average gradients "
                             "across them: add --backend mlx, or run one process without the "
                             "launcher")
        if opts["batch_size"] % self.size:
            raise ValueError(f"--batch-size {opts['batch_size']} does not divide among "
                             f"{self.size} processes: the global batch must be a multiple of "
                             f"{self.size} (e.g. --batch-size "
                             f"{self.size * max(1, opts['batch_size'] // self.size)})")

    def slice(self, batch):
        """This rank's rows of the global batch (B, ...) -> (B / R, ...)."""
        if self.size == 1:
            return batch
        b = len(batch) // self.size
        return batch[self.rank * b:(self.rank + 1) * b]

    def _all_sum(self, a) -> np.ndarray:
        import mlx.core as mx

        return np.array(mx.distributed.all_sum(mx.array(a), group=self.group))

    def agree(self, value) -> int:
        """Rank 0's integer (a step count, a stop flag) on every rank."""
        if self.size == 1:
            return int(value)
        return int(self._all_sum(np.array([int(value) if self.main else 0], np.int64))[0])

    def share(self, obj):
        """Rank 0's JSON-able obj on every rank (the others pass anything, e.g. None)."""
        if self.size == 1:
            return obj
        data = np.frombuffer(json.dumps(obj).encode(), np.uint8) if self.main else None
        n = self.agree(len(data) if self.main else 0)
        data = self._all_sum(data if self.main else np.zeros(n, np.uint8))  # others add zeros
        return json.loads(data.tobytes().decode())

    def from_rank0(self, fn):
        """fn() run on rank 0 only, its JSON-able result shared; its ValueError stops every rank."""
        if self.size == 1:
            return fn()
        if self.main:
            try:
                value = fn()
            except ValueError as err:
                self.share({"error": str(err)})
                raise
            return self.share({"value": value})["value"]
        got = self.share(None)
        if "error" in got:
            raise RankZeroError(f"rank 0 stopped the run: {got['error']}")
        return got["value"]

    def share_arrays(self, arrays) -> dict:
        """Rank 0's {name: NumPy array} on every rank, bit for bit (one all_sum of the bytes)."""
        if self.size == 1:
            return arrays
        spec = self.share([[k, list(v.shape), v.dtype.str] for k, v in arrays.items()]
                          if self.main else None)
        sizes = [int(np.prod(shape)) * np.dtype(dt).itemsize for _, shape, dt in spec]
        if self.main:
            parts = [np.ascontiguousarray(v).reshape(-1).view(np.uint8) for v in arrays.values()]
            blob = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        else:
            blob = np.zeros(sum(sizes), np.uint8)
        blob = self._all_sum(blob) if len(blob) else blob
        out, at = {}, 0
        for (name, shape, dt), n in zip(spec, sizes, strict=True):
            out[name] = blob[at:at + n].view(np.dtype(dt)).reshape(shape).copy()
            at += n
        return out

    def same(self, x: float) -> bool:
        """True when every rank holds the same number x as rank 0 (exactly: JSON keeps floats)."""
        if self.size == 1:
            return True
        apart = int(x != self.share(x if self.main else None))
        return int(self._all_sum(np.array([apart], np.int32))[0]) == 0

    def broadcast_state(self, backend):
        """Give every rank rank 0's weights and optimizer state (backend.get_state/set_state)."""
        if self.size == 1:
            return
        state = self.share_arrays(backend.get_state() if self.main else None)
        if not self.main:
            backend.set_state(state)

    def in_step(self, backend) -> bool:
        """True when all ranks hold the same weights; otherwise rank 0's are re-sent (False)."""
        if self.size == 1:
            return True
        state = backend.get_state()
        if self.same(float(sum(np.asarray(v, np.float64).sum() for v in state.values()))):
            return True
        self.broadcast_state(backend)
        return False
