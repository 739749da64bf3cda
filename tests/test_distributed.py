"""Data-parallel training: slice gradients average to the batch's, and 2 ranks train as 1 process.

The launcher tests start `mlx.launch -n 2 --backend ring` on 127.0.0.1 (free ports) with the
real CLI, and compare with one in-process run of the same global batch.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from mlx.utils import tree_flatten

from spike_lib.train import checkpoint, distributed, runs
from spike_lib.core.config import Config
from spike_lib.data.batches import IGNORE_INDEX
from spike_lib.data.corpus import load_corpus, write_jsonl_gz
from spike_lib.train.distributed import World, token_weight
from spike_lib.mlx_impl.model import SpikeLLM
from spike_lib.mlx_impl.train import loss_and_grads

warnings.filterwarnings("ignore", "MLX is using its slow", RuntimeWarning)

# 6 steps of the tiny model on a global batch of 4 sequences (2 per rank)
KW = {"steps": 6, "eval_every": 3, "ckpt_every": 3, "batch_size": 4, "val_tokens": 128,
      "warmup": 2, "backend": "mlx"}
ARGV = ["--backend", "mlx", "--steps", "6", "--eval-every", "3", "--ckpt-every", "3",
        "--batch-size", "4", "--val-tokens", "128", "--warmup", "2", "--no-progress", "--json"]
# float32 sums in another order (a mean of two 32-token means, not one 64-token mean; BLAS
# blocks half a batch differently) move each loss by a few ulps (eps = 1.2e-7); 6 AdamW steps
# of lr <= 3e-3 keep the weights within 1e-5 (measured here: losses <= 2.2e-7 relative, grad
# norms <= 1.3e-7, weights <= 3.8e-6 absolute, |w| <= 4)
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-5
LAUNCH = shutil.which("mlx.launch") or str(Path(sys.executable).parent / "mlx.launch")


# -- the maths, in one process ------------------------------------------------------------------
def _grads(model, x, y):
    loss, grads = loss_and_grads(model, mx.array(x), mx.array(y))
    return loss.item(), {k: np.array(g) for k, g in tree_flatten(grads)}


def test_mean_of_slice_gradients_is_the_full_batch_gradient():
    model = SpikeLLM(Config.tiny(vocab_size=30, block_size=8, n_embd=16, d_ff=32))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 30, (4, 8)), rng.integers(0, 30, (4, 8))
    loss, full = _grads(model, x, y)
    halves = [_grads(model, x[r * 2:(r + 1) * 2], y[r * 2:(r + 1) * 2]) for r in (0, 1)]
    # equal token counts (16 and 16): the plain mean over ranks is the batch's mean
    assert (halves[0][0] + halves[1][0]) / 2 == pytest.approx(loss, rel=1e-6)
    for k, g in full.items():
        np.testing.assert_allclose((halves[0][1][k] + halves[1][1][k]) / 2, g, rtol=1e-4,
                                   atol=1e-7)
    # unequal counts (ignored targets on rank 0: 10 and 16 tokens): only w_r = R n_r / N is right
    y[0, :6] = IGNORE_INDEX
    loss, full = _grads(model, x, y)
    halves = [_grads(model, x[r * 2:(r + 1) * 2], y[r * 2:(r + 1) * 2]) for r in (0, 1)]
    w = [token_weight(n, 26, 2) for n in (10, 16)]
    assert w == [20 / 26, 32 / 26]
    assert (w[0] * halves[0][0] + w[1] * halves[1][0]) / 2 == pytest.approx(loss, rel=1e-6)
    assert abs((halves[0][0] + halves[1][0]) / 2 - loss) > 1e-3  # the plain mean is off
    for k, g in full.items():
        np.testing.assert_allclose((w[0] * halves[0][1][k] + w[1] * halves[1][1][k]) / 2, g,
                                   rtol=1e-4, atol=1e-7)


def test_token_weight_hand_values():
    assert token_weight(64, 128, 2) == 1.0  # equal slices: nn.average_gradients' plain mean
    assert token_weight(3, 8, 2) == 0.75
    assert token_weight(0, 0, 2) == 0.0  # no tokens anywhere: no weight, no division by 0


def test_world_slices_its_rows_and_refuses_what_cannot_run():
    batch = np.arange(12).reshape(6, 2)
    np.testing.assert_array_equal(World(1, 3).slice(batch), [[4, 5], [6, 7]])
    assert World().slice(batch) is batch
    opts = runs.run_options(backend="mlx", batch_size=6)
    World(0, 3).check(opts)
    with pytest.raises(ValueError, match="--backend numpy cannot average gradients.*"
                                         "add --backend mlx"):
        World(0, 2).check(runs.run_options(batch_size=6))
    with pytest.raises(ValueError, match="--batch-size 6 does not divide among 4 processes.*"
                                         "--batch-size 4"):
        World(0, 4).check(opts)


def test_one_process_world_passes_values_through():
    w = World()
    assert w.agree(7) == 7 and w.share({"a": 1}) == {"a": 1} and w.same(1.5)
    assert w.from_rank0(lambda: [3, 2.5]) == [3, 2.5] and w.share_arrays({}) == {}
    assert not distributed.launched() and distributed.world() == World()


def test_local_size_counts_this_machines_ranks(tmp_path, monkeypatch):
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([["127.0.0.1:5000"], ["127.0.0.1:5001"], ["10.0.0.2:5000"]]))
    monkeypatch.setenv("MLX_HOSTFILE", str(hostfile))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setenv("MLX_RANK", "1")
    assert distributed.local_size() == 2 and distributed.blas_threads() == 2  # 4 cores / 2
    monkeypatch.setenv("MLX_RANK", "2")
    assert distributed.local_size() == 1 and distributed.blas_threads() is None
    monkeypatch.setenv("MLX_HOSTFILE", "")  # mlx.launch -n 1 writes an empty hostfile
    assert distributed.local_size() == 1


# -- 2 processes through mlx.launch --------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 30-document corpus (SPIKE_DATA_DIR for the launched ranks) and its documents."""
    root = tmp_path_factory.mktemp("data")
    val = load_corpus("val")
    docs = {"train_docs": val[:30], "val_docs": val[30:33]}
    for split, d in (("train", docs["train_docs"]), ("val", docs["val_docs"])):
        write_jsonl_gz(root / "corpus" / f"{split}.jsonl.gz", d)
    return root, docs


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("runs") / "one"
    runs.train_run(out, **corpus[1], **KW)
    return out


def _free_ports(n=2) -> int:
    """A port p with p .. p + n - 1 free on 127.0.0.1 (the ring listens on one per rank)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for k in range(n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + k))
            return port
        except OSError:
            continue
    pytest.skip("no free pair of ports on 127.0.0.1 for the ring backend")


def launch(data, *argv, command=("-m", "spike_lib", "train")):
    """mlx.launch -n 2 --backend ring -- python -m spike_lib train ... ; (stdout, stderr)."""
    if not Path(LAUNCH).exists():
        pytest.skip(f"mlx.launch is not installed next to {sys.executable}")
    cmd = [LAUNCH, "-n", "2", "--backend", "ring", "-p", str(_free_ports()), "--",
           sys.executable, *command, *argv]
    env = {**os.environ, "SPIKE_DATA_DIR": str(data)}
    proc = subprocess.run(cmd, check=False, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    return proc.stdout, proc.stderr  # mlx.launch exits 0 even when a rank failed


def _summary(stdout, stderr) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, (stdout, stderr)  # one summary: rank 0's
    return json.loads(lines[0])


def _assert_same_training(dist, ref):
    a, b = runs.read_log(dist), runs.read_log(ref)
    assert [r["step"] for r in a] == [1, 2, 3, 4, 5, 6]  # one writer: no record twice
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=LOSS_RTOL)
    np.testing.assert_allclose([r["grad_norm"] for r in a], [r["grad_norm"] for r in b],
                               rtol=LOSS_RTOL)
    wa, wb = checkpoint.load_weights(dist / runs.CKPT), checkpoint.load_weights(ref / runs.CKPT)
    assert set(wa) == set(wb)
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=WEIGHT_ATOL, err_msg=k)
    return max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)


def test_two_ranks_train_as_one_process_with_the_same_global_batch(tmp_path, corpus,
                                                                   one_process):
    out = tmp_path / "two"
    stdout, stderr = launch(corpus[0], "--out", str(out), *ARGV)
    summary = _summary(stdout, stderr)
    assert summary["world_size"] == 2 and summary["steps"] == 6
    assert "held different weights" not in stderr  # the checkpoint-time checksums agreed
    assert json.loads((out / runs.RUN_CONFIG).read_text())["world_size"] == 2
    assert checkpoint.load_meta(out / runs.CKPT)["world_size"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "log.jsonl", "run.json"]
    # 0 is possible: one process on 2 cores splits its batch into the same two halves
    # (make_step's parallel parts) and adds their gradients as the two ranks do
    assert out != one_process and _assert_same_training(out, one_process) < WEIGHT_ATOL


def test_two_ranks_resume_a_run_that_one_process_began(tmp_path, corpus, one_process):
    out = tmp_path / "resumed"

    def stop_at_5(step, record):
        if step + 1 == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # killed after step 5, the checkpoint holds step 3
        runs.train_run(out, callback=stop_at_5, **corpus[1], **KW)
    summary = _summary(*launch(corpus[0], "--out", str(out), "--resume", "--json"))
    assert summary["start_step"] == 3 and summary["world_size"] == 2
    _assert_same_training(out, one_process)


def test_wrong_combination_is_one_clear_error_from_rank_0(tmp_path, corpus):
    out = tmp_path / "numpy"
    _, stderr = launch(corpus[0], "--out", str(out), "--backend", "numpy")
    assert stderr.count("error: train runs as 2 processes") == 1, stderr
    assert "add --backend mlx" in stderr and "Traceback" not in stderr
    assert not out.exists()


RANKS = """
import json
import numpy as np
from spike_lib.train.distributed import world

w = world()
arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3) / 7, "t": np.array(3, np.uint64),
          "m": np.array([True, False])}


class Backend:  # the two methods World.broadcast_state needs
    def __init__(self, state):
        self.state = state

    def get_state(self):
        return self.state

    def set_state(self, state):
        self.state = state


mine = Backend({"p": np.full(3, 1.0 + (w.rank == 1) * 1e-7)})  # rank 1 drifted by 1e-7
out = {"rank": w.rank, "size": w.size, "agree": w.agree(5 + w.rank),
       "share": w.share({"opts": [1, 2.5]} if w.main else None),
       "same": [w.same(0.1 * 3), w.same(float(w.rank))],
       "arrays": {k: [v.dtype.str, v.tolist()] for k, v in
                  w.share_arrays(arrays if w.main else None).items()},
       "in_step": [w.in_step(mine), w.in_step(mine)], "p": mine.state["p"].tolist()}
print(json.dumps(out), flush=True)
"""


def test_world_shares_rank_0s_values_bit_for_bit_between_two_processes(tmp_path, corpus):
    script = tmp_path / "ranks.py"
    script.write_text(RANKS)
    stdout, stderr = launch(corpus[0], command=(str(script),))
    got = sorted((json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")),
                 key=lambda d: d["rank"])
    assert [d["rank"] for d in got] == [0, 1], (stdout, stderr)
    for d in got:
        assert d["size"] == 2 and d["agree"] == 5  # rank 0's integer, not the sum 11
        assert d["share"] == {"opts": [1, 2.5]} and d["same"] == [True, False]
        assert d["arrays"] == {"w": ["<f4", (np.arange(6, dtype=np.float32).reshape(2, 3)
                                             / 7).tolist()],
                               "t": ["<u8", 3], "m": ["|b1", [True, False]]}
        assert d["in_step"] == [False, True]  # rank 1 drifted: rank 0's weights were re-sent
        assert d["p"] == [1.0, 1.0, 1.0]
