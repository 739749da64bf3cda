"""`python -m spike_lib bench`: throughput measured as medians and ratios within one run.

Targets live here, never in timed tests: this 2-core machine is shared and noisy.
Taught in: notebooks/07_mlx_port.ipynb
"""

import statistics
import time

import numpy as np


def median_seconds(fn, repeats=5, warmup=1) -> float:
    """Median wall time of fn() over `repeats` calls after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def numpy_matmul_gflops(n=1024, repeats=5) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats) / 1e9


def mlx_matmul_gflops(n=1024, repeats=5):
    """float32 matmul GFLOP/s of MLX on its default device, or None without MLX."""
    try:
        import mlx.core as mx
    except ImportError:
        return None
    a = mx.random.normal((n, n))
    b = mx.random.normal((n, n))
    mx.eval(a, b)
    return 2 * n**3 / median_seconds(lambda: mx.eval(a @ b), repeats) / 1e9


def tokenizers_bench(args) -> dict:
    """MB/s of each tokenizer's encode (spike_lib/tokenizers/bench.py)."""
    from spike_lib.tokenizers.bench import run_bench

    return run_bench(args)


BENCHES = {"matmul": lambda args: {"matmul_gflops": numpy_matmul_gflops(args.n),
                                   "mlx_matmul_gflops": mlx_matmul_gflops(args.n)},
           "tokenizers": tokenizers_bench}


def add_arguments(parser) -> None:
    parser.add_argument("what", nargs="?", default="matmul", choices=sorted(BENCHES),
                        help="which benchmark to run")
    parser.add_argument("--n", type=int, default=1024, help="matrix size for matmul")


def run(args) -> dict:
    return BENCHES[args.what](args)
