"""`python -m spike_lib bench`: throughput measured as medians and ratios within one run.

Targets live here, never in timed tests: this 2-core machine is shared and noisy.
Taught in: notebooks/07b_speed_and_generation.ipynb
"""

import numpy as np

from spike_lib.core.training import median_seconds


def _sustained_gflops(call, flop, repeats, warm) -> float:
    """GFLOP/s of call() under sustained load: untimed calls for `warm` seconds first (the
    cores' clocks and the BLAS threads come up; a cold start measured 135 GFLOP/s where the
    same GEMM sustains 175), then the median of `repeats` timed calls."""
    import time

    end = time.perf_counter() + warm
    while time.perf_counter() < end:
        call()
    return flop / median_seconds(call, repeats, warmup=0) / 1e9


def numpy_matmul_gflops(n=1024, repeats=20, warm=0.3) -> float:
    """float32 n x n matmul GFLOP/s of NumPy's BLAS, sustained (see _sustained_gflops)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return _sustained_gflops(lambda: a @ b, 2 * n**3, repeats, warm)


def mlx_matmul_gflops(n=1024, repeats=20, warm=0.3):
    """float32 matmul GFLOP/s of MLX on its default device, sustained, or None without MLX."""
    try:
        import mlx.core as mx
    except ImportError:
        return None
    a = mx.random.normal((n, n))
    b = mx.random.normal((n, n))
    mx.eval(a, b)
    return _sustained_gflops(lambda: mx.eval(a @ b), 2 * n**3, repeats, warm)


def numpy_infer_tokens_per_s(cfg, batch, repeats) -> float:
    """Forward-only (inference) tokens/s of the NumPy SpikeLLM on random tokens."""
    from spike_lib.numpy_impl.model import SpikeLLM

    rng = np.random.default_rng(0)
    model = SpikeLLM(cfg, rng)
    model.train(False)
    x = rng.integers(0, cfg.vocab_size, (batch, cfg.block_size))
    return x.size / median_seconds(lambda: model(x), repeats)


def tokenizers_bench(args) -> dict:
    """MB/s of each tokenizer's encode (spike_lib/tokenizers/bench.py)."""
    from spike_lib.tokenizers.bench import run_bench

    return run_bench(args)


def train_bench(args) -> dict:
    """Training tokens/s of NumPy and MLX (eager, compiled) and their model-FLOP fractions.

    model_flops_fraction = train_step_flops / step time / the machine's matmul GFLOP/s (the
    better of NumPy's and MLX's). With the OpenBLAS preload in place, the MLX "before" numbers
    come from a subprocess with SPIKE_NO_PRELOAD=1 and no LD_PRELOAD (MLX's bundled BLAS).
    """
    import json
    import os
    import resource
    import subprocess
    import sys

    from spike_lib.core.blas import OPT_OUT, preloaded
    from spike_lib.core.config import Config

    cfg = getattr(Config, args.config)()
    out = {}
    if args.backend in ("all", "mlx"):
        from spike_lib.mlx_impl.train import benchmark_train_step as mlx_step

        out["mlx_matmul_gflops"] = mlx_matmul_gflops(args.n)
        out["mlx_train_tokens_per_s"] = mlx_step(cfg, args.batch, args.repeats)["tokens_per_s"]
        if args.backend == "all":
            out["mlx_eager_train_tokens_per_s"] = mlx_step(
                cfg, args.batch, args.repeats, compile=False)["tokens_per_s"]
    if args.backend == "mlx":
        return out
    from spike_lib.numpy_impl.model import train_step_flops
    from spike_lib.numpy_impl.train import benchmark_train_step as np_step

    out["matmul_gflops"] = numpy_matmul_gflops(args.n)
    out["numpy_train_tokens_per_s"] = np_step(cfg, args.batch, args.repeats)["tokens_per_s"]
    out["numpy_infer_tokens_per_s"] = numpy_infer_tokens_per_s(cfg, args.batch, args.repeats)
    if args.config != "tiny":  # the test-size model too, as the NumPy issue asks
        tiny = Config.tiny()
        out["numpy_tiny_train_tokens_per_s"] = np_step(tiny, args.batch, args.repeats)[
            "tokens_per_s"]
        out["numpy_tiny_infer_tokens_per_s"] = numpy_infer_tokens_per_s(tiny, args.batch,
                                                                         args.repeats)
    out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = max(out["matmul_gflops"], out.get("mlx_matmul_gflops") or 0.0)
    flops_per_token = train_step_flops(cfg, args.batch) / (args.batch * cfg.block_size)
    for key, name in (("numpy", "model_flops_fraction"), ("mlx", "mlx_model_flops_fraction")):
        if f"{key}_train_tokens_per_s" in out:
            out[name] = out[f"{key}_train_tokens_per_s"] * flops_per_token / 1e9 / best
    # against numpy's own matmul only (the NumPy chapter's target: >= 0.3)
    out["model_flops_fraction_of_numpy_matmul"] = (
        out["numpy_train_tokens_per_s"] * flops_per_token / 1e9 / out["matmul_gflops"])
    if "mlx_train_tokens_per_s" in out:
        out["mlx_speedup"] = out["mlx_train_tokens_per_s"] / out["numpy_train_tokens_per_s"]
    out["blas_preloaded"] = preloaded()
    if args.backend == "all" and preloaded() and not args.no_before:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        env[OPT_OUT] = "1"
        cmd = [sys.executable, "-m", "spike_lib", "bench", "train", "--backend", "mlx", "--json",
               "--config", args.config, "--batch", str(args.batch), "--repeats", "1",
               "--n", str(args.n)]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        before = json.loads(res.stdout.strip().splitlines()[-1])
        out["mlx_slow_blas_matmul_gflops"] = before["mlx_matmul_gflops"]
        out["mlx_slow_blas_train_tokens_per_s"] = before["mlx_train_tokens_per_s"]
        out["blas_fix_speedup"] = (out["mlx_train_tokens_per_s"]
                                   / before["mlx_train_tokens_per_s"])
    return out


def machine_info() -> dict:
    """The CPU model, its core count and the 1/5/15-minute load averages, to print beside timings."""
    import os
    import platform

    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                         model)
    except OSError:
        pass
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": model, "cpus": os.cpu_count(), "load_average": load}


def _generation_model(backend, args):
    """(model, prompt ids, description): the shipped book model, or a seeded Config.book model
    with attention args.attention (random weights)."""
    from spike_lib.core.config import Config

    if args.attention is None:
        from spike_lib.train.bookmodel import shipped_path

        path = shipped_path()
        if backend == "numpy":
            from spike_lib.train.checkpoint import load_checkpoint
        else:
            from spike_lib.mlx_impl.model import load_checkpoint
        model, tok, _ = load_checkpoint(path)
        return model, tok.encode("The river"), f"shipped {path.name} model"
    cfg = Config.book(attention=args.attention)
    if backend == "numpy":
        from spike_lib.numpy_impl.model import SpikeLLM
    else:
        from spike_lib.mlx_impl.model import SpikeLLM
    return SpikeLLM(cfg), [1, 2, 3], f"Config.book(attention={args.attention!r}), seed 0 weights"


def _per_token_seconds(model, prompt, new_tokens, carry_state) -> list:
    """Seconds between consecutive new tokens of one sampled continuation (seed 0)."""
    import time

    from spike_lib.core.sampling import generate_ids

    times, last = [], time.perf_counter()
    for _ in generate_ids(model, prompt, new_tokens, np.random.default_rng(0),
                          carry_state=carry_state):
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times


def generate_bench(args) -> dict:
    """Generation tokens/s, windowed (the whole window re-run per token) vs carried state.

    Per backend: tokens/s over args.new_tokens new tokens (after one untimed warm-up run of
    each; the run of median time of args.gen_repeats, every run's tokens/s kept beside it: a
    carried run takes a fraction of a second, so one busy moment of the host moves a single
    run), and the median milliseconds per token in bands of positions: flat for a carried
    state, growing with the context (then flat at block_size) for the window.
    """
    out = {"new_tokens": args.new_tokens, **machine_info()}
    backends = ("numpy", "mlx") if args.backend == "all" else (args.backend,)
    for backend in backends:
        model, prompt, what = _generation_model(backend, args)
        out["model"], out["prompt_tokens"] = what, len(prompt)
        out["block_size"] = model.cfg.block_size
        for mode, carry in (("windowed", False), ("carried", True)):
            _per_token_seconds(model, prompt, 8, carry)  # warm-up (MLX compiles here)
            runs = sorted((_per_token_seconds(model, prompt, args.new_tokens, carry)
                           for _ in range(max(1, args.gen_repeats))), key=sum)
            times = runs[len(runs) // 2]  # the run of median total time
            out[f"{backend}_{mode}_tokens_per_s"] = len(times) / sum(times)
            out[f"{backend}_{mode}_tokens_per_s_runs"] = [len(t) / sum(t) for t in runs]
            band = max(1, args.new_tokens // 4)
            out[f"{backend}_{mode}_ms_by_position"] = [  # [first, last position, median ms]
                [len(prompt) + i, len(prompt) + min(i + band, len(times)) - 1,
                 round(1e3 * float(np.median(times[i:i + band])), 3)]
                for i in range(0, len(times), band)]
        out[f"{backend}_carried_speedup"] = (out[f"{backend}_carried_tokens_per_s"]
                                             / out[f"{backend}_windowed_tokens_per_s"])
    out["load_average_after"] = machine_info()["load_average"]
    return out


SHAPES = {"small": 8, "book": 16}  # the PyTorch reference's batches; T comes from the config
SHIPPED = "shipped"  # speed: a third row, the shipped book model's own config (batch 16)


def bench_config(config):
    """The Config of a speed row: a preset's name, or SHIPPED (data/checkpoints/book's config:
    its 2439-token vocabulary, its attention and spike levels; the PyTorch script has none of them)."""
    from spike_lib.core.config import Config

    if config == SHIPPED:
        from spike_lib.core.checkpoint_format import load_config
        from spike_lib.train.bookmodel import shipped_path

        return load_config(shipped_path())
    return getattr(Config, config)()


def one_backend(backend, config, batch, repeats, parallel=None) -> dict:
    """Training tokens/s and this process's peak memory for one backend (run in a subprocess).

    parallel: None splits the batch over the usable cores (the default step), 1 does not."""
    import resource

    cfg = bench_config(config)
    if backend == "mlx":
        from spike_lib.mlx_impl.train import benchmark_train_step
    else:
        from spike_lib.numpy_impl.train import benchmark_train_step
    out = {"train_tokens_per_s": benchmark_train_step(cfg, batch, repeats,
                                                      parallel=parallel)["tokens_per_s"]}
    out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _last_json(cmd, env=None) -> dict:
    import json
    import subprocess

    res = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed: {res.stderr.strip()[-500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def speed_bench(args) -> dict:
    """NumPy, MLX (and, with --torch, the PyTorch reference) training tokens/s, back to back.

    For each of the `small` (batch 8) and `book` (batch 16) shapes, each backend runs in its own
    process (so each reports its own peak memory), one after the other; model-FLOP fractions
    are against one matmul peak: the better of NumPy's and MLX's sustained float32 GEMM,
    measured before and after the runs, the higher of the two. The `*_unsplit` rows are the
    same step without the batch split over the cores (make_step / train_step parallel=1). A
    third row, config "shipped", is the shipped book model's own config (no PyTorch run).
    """
    import sys

    from spike_lib.core.energy import train_step_flops

    out = {**machine_info(), "rows": []}

    def matmul_peak():
        return max(numpy_matmul_gflops(args.n), mlx_matmul_gflops(args.n) or 0.0)

    out["matmul_gflops_before"] = matmul_peak()
    rows = []
    for config, batch in (*SHAPES.items(), (SHIPPED, 16)):
        cfg = bench_config(config)
        row = {"config": config, "num_steps": cfg.num_steps, "batch": batch,
               "vocab_size": cfg.vocab_size, "attention": cfg.attention}
        gflop_per_token = train_step_flops(cfg, batch) / (batch * cfg.block_size) / 1e9
        code = ("import json; from spike_lib.train.bench import one_backend; "
                "print(json.dumps(one_backend({!r}, {!r}, {}, {}, {})))")
        runs = [(name, [sys.executable, "-c", code.format(b, config, batch, args.repeats, par)])
                for b in ("numpy", "mlx")
                for name, par in ((b, None), (f"{b}_unsplit", 1))]  # unsplit: one thread's step
        if args.torch and config != SHIPPED:
            runs.append(("torch", [args.torch, args.torch_script, "--T", str(cfg.num_steps),
                                   "--batch", str(batch), "--steps", str(2 * args.repeats)]))
        row["gflop_per_token"] = gflop_per_token
        for name, cmd in runs:
            res = _last_json(cmd)
            row[f"{name}_train_tokens_per_s"] = res["train_tokens_per_s"]
            if "peak_memory_mb" in res:
                row[f"{name}_peak_memory_mb"] = res["peak_memory_mb"]
            if "torch" in res:
                row["torch_version"] = res["torch"]
        if "torch_train_tokens_per_s" in row:
            for name in ("numpy", "mlx"):
                row[f"{name}_vs_torch"] = (row[f"{name}_train_tokens_per_s"]
                                           / row["torch_train_tokens_per_s"])
        rows.append(row)
    out["matmul_gflops_after"] = matmul_peak()
    # one peak for every fraction: the higher of the two measured around the runs (the host's
    # speed drifts; the higher peak gives the lower, safer fractions)
    peak = out["matmul_gflops"] = max(out["matmul_gflops_before"], out["matmul_gflops_after"])
    for row in rows:
        for name in ("numpy", "mlx", "torch", "numpy_unsplit", "mlx_unsplit"):
            if f"{name}_train_tokens_per_s" in row:
                row[f"{name}_model_flops_fraction"] = (
                    row[f"{name}_train_tokens_per_s"] * row["gflop_per_token"] / peak)
    out["rows"] = rows
    out["load_average_after"] = machine_info()["load_average"]
    return out


def profile_bench(args) -> dict:
    """Seconds per kind of work in one training step of each backend (spike_lib.train.profile)."""
    from spike_lib.core.config import Config
    from spike_lib.train.profile import profile

    config = "book" if args.config == "small" else args.config  # the profile's default: book
    backends = ("numpy", "mlx") if args.backend == "all" else (args.backend,)
    return {**machine_info(), "config": config, "batch": SHAPES.get(config, args.batch),
            **profile(getattr(Config, config)(), SHAPES.get(config, args.batch), args.repeats,
                      backends)}


def store_commands(args) -> dict:
    """{name: argv after `python -m spike_lib`} of the benchmarks that `bench store` runs."""
    speed = ["bench", "speed", "--json", "--repeats", str(args.repeats)]
    if args.torch:
        speed += ["--torch", args.torch, "--torch-script", args.torch_script]
    generate = ["bench", "generate", "--json", "--new-tokens", str(args.new_tokens)]
    if args.attention:
        generate += ["--attention", args.attention]
    return {"profile": ["bench", "profile", "--json", "--repeats", "1"], "speed": speed,
            "generate": generate}


def store_bench(args) -> dict:
    """Run the profile, speed and generate benchmarks one after the other, each in its own
    process (generate single-threaded: OPENBLAS_NUM_THREADS=1), and write them as one JSON file
    (--store PATH, atomically) with the commands, the date, the commit and the machine: the
    stored benchmark that chapter 7 prints (it reads the newest data/benchmarks/speed_*.json)."""
    import datetime
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    if not args.store:
        raise ValueError("bench store needs --store PATH, e.g. "
                         "--store data/benchmarks/speed_YYYY-MM-DD.json")
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    out = {"date": now.strftime("%Y-%m-%d"), "machine": machine_info(), "commands": {}}
    for name, argv in store_commands(args).items():
        env = dict(os.environ)
        prefix = ""
        if name == "generate":
            env["OPENBLAS_NUM_THREADS"] = "1"
            prefix = "OPENBLAS_NUM_THREADS=1 "
        out["commands"][name] = prefix + "python -m spike_lib " + " ".join(argv)
        out[name] = _last_json([sys.executable, "-m", "spike_lib", *argv], env)
        out[name]["measured_at"] = (f"{datetime.datetime.now(datetime.timezone.utc):%H:%M} UTC, "
                                    f"code of commit {commit}")
    path = Path(args.store)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    return {"stored": str(path), "numpy_carried_speedup": out["generate"].get(
        "numpy_carried_speedup"), "mlx_carried_speedup": out["generate"].get("mlx_carried_speedup")}


BENCHES = {"generate": generate_bench, "speed": speed_bench, "profile": profile_bench,
           "matmul": lambda args: {"matmul_gflops": numpy_matmul_gflops(args.n),
                                   "mlx_matmul_gflops": mlx_matmul_gflops(args.n)},
           "store": store_bench, "tokenizers": tokenizers_bench, "train": train_bench}


def add_arguments(parser) -> None:
    parser.add_argument("what", nargs="?", default="train", choices=sorted(BENCHES),
                        help="which benchmark to run")
    parser.add_argument("--n", type=int, default=1024, help="matrix size for matmul")
    parser.add_argument("--config", default="small", choices=["tiny", "small", "book"],
                        help="train: the Config preset")
    parser.add_argument("--batch", type=int, default=8, help="train: sequences per step")
    parser.add_argument("--repeats", type=int, default=3, help="train: timed steps (median)")
    parser.add_argument("--backend", default="all", choices=["all", "numpy", "mlx"],
                        help="train: which backends to time (all: both, in one run)")
    parser.add_argument("--new-tokens", type=int, default=200,
                        help="generate: tokens to sample in each mode (200)")
    parser.add_argument("--gen-repeats", type=int, default=3,
                        help="generate: timed runs per mode; the run of median time counts (3)")
    parser.add_argument("--attention", default=None,
                        help="generate: a seeded Config.book model with this attention instead "
                             "of the shipped book model")
    parser.add_argument("--torch", default=None,
                        help="speed: a Python with torch installed, to run --torch-script too")
    parser.add_argument("--torch-script", default="../shared/bench/torch_reference.py",
                        help="speed: the PyTorch reference script (a yardstick, not a dependency)")
    parser.add_argument("--store", default=None,
                        help="store: the JSON file to write (profile + speed + generate)")
    parser.add_argument("--no-before", action="store_true",
                        help="train: skip the MLX run without the OpenBLAS preload")


def run(args) -> dict:
    from spike_lib.core.config import check_range

    check_range("--n", args.n, 1, kind=int)  # a 0 x 0 matmul would report 0 GFLOP/s
    check_range("--batch", args.batch, 1, kind=int)
    check_range("--repeats", args.repeats, 1, kind=int)
    check_range("--new-tokens", args.new_tokens, 1, kind=int)
    check_range("--gen-repeats", args.gen_repeats, 1, kind=int)
    return BENCHES[args.what](args)
