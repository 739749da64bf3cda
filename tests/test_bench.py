"""Benchmark helpers (issue 15): model FLOPs of the quadratic attentions, the NumPy profile adds
up to its step, the in-place LIF gives lif_forward's numbers. No timings are asserted."""

import numpy as np
import pytest

from spike_lib.core.config import Config
from spike_lib.core.energy import forward_macs, train_step_flops
from spike_lib.core.neurons import lif_backward, lif_forward
from spike_lib.numpy_impl.neurons import LIF
from spike_lib.train import profile


def test_forward_macs_count_the_quadratic_attentions_matmuls():
    cfg = Config.tiny()
    base = forward_macs(cfg, 2, 16)
    t, n_layer, length, d, hd = cfg.num_steps, cfg.n_layer, 16, cfg.n_embd, cfg.n_embd // cfg.n_head
    extra = {"softmax_shift": 2 * length**2 * d, "hybrid": 2 * length**2 * d,
             "spike_matrix": 2 * length**2 * d, "sdsa_decay": length**2 * d,
             "spike_matrix_running": 2 * length * d * hd, "sdsa_mean": 0, "sdsa_shift": 0}
    for name, per_seq in extra.items():
        got = forward_macs(cfg.replace(attention=name), 2, 16)
        assert got == base + t * n_layer * 2 * per_seq, name
    assert train_step_flops(cfg.replace(attention="hybrid"), 2) == 6 * forward_macs(
        cfg.replace(attention="hybrid"), 2, 16)


@pytest.mark.parametrize("beta, th", [(0.5, 1.0), (0.9, 0.5)])
def test_in_place_lif_equals_the_reference_maths(beta, th):
    x = np.random.default_rng(0).normal(0.6, 1.0, (3, 2, 5, 7)).astype(np.float32)
    lif = LIF(beta=beta, threshold=th, surrogate="arctan", surrogate_scale=2.0)
    spk = lif(x)
    ref_spk, ref_mem = lif_forward(x, beta, th, "subtract", lif.surrogate)
    np.testing.assert_array_equal(spk, ref_spk)
    np.testing.assert_array_equal(lif.cache[0], ref_mem)
    assert 0 < spk.mean() < 1
    dspk = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(lif.backward(dspk),
                               lif_backward(dspk, ref_mem, ref_spk, beta, th, "subtract",
                                            lif.surrogate, True), rtol=1e-6, atol=1e-7)


def test_numpy_profile_kinds_add_up_to_the_step(monkeypatch):
    """A fake clock that only the work moves: each patched piece of work advances it by its own
    power of two, so every kind must get exactly its own work's ticks (exclusive of the layers
    it calls) and the kinds must add up to the step, with no real timing involved."""
    from spike_lib.core import scoring
    from spike_lib.numpy_impl import blocks, layers, model, module, neurons, optim

    now, ticks = [0.0], {}

    def costs(owner, name, cost, kind):
        fn = getattr(owner, name)

        def patched(*args, **kwargs):
            now[0] += cost
            ticks[kind] = ticks.get(kind, 0.0) + cost
            return fn(*args, **kwargs)
        monkeypatch.setattr(owner, name, patched)

    costs(layers.Linear, "forward", 1, "matmul (Linear)")
    costs(layers.Linear, "backward", 2, "matmul (Linear)")
    costs(neurons.LIF, "forward", 4, "LIF loops")
    costs(neurons.LIF, "backward", 8, "LIF loops")
    costs(layers.LayerNorm, "forward", 16, "LayerNorm")
    costs(blocks.Block, "forward", 32, "residual adds")  # calls Linear, LIF, LayerNorm inside
    costs(model.SpikeLLM, "forward", 64, "model glue (mean over T)")  # calls every block
    costs(model.SpikeLLM, "backward", 128, "model glue (mean over T)")
    costs(scoring, "cross_entropy", 256, "loss")
    costs(module.Module, "zero_grad", 512, "zero_grad")
    costs(optim, "clip_grad_norm", 1024, "grad norm + clip")
    costs(optim.AdamW, "step", 2048, "optimizer (AdamW)")
    out = profile.numpy_profile(Config.tiny(), 2, repeats=1, clock=lambda: now[0])
    assert set(profile.KINDS) <= set(out)
    expected = {k: ticks.get(k, 0.0) / 2 for k in profile.KINDS}  # two equal steps: warm-up + 1
    assert expected["matmul (Linear)"] > 0 and expected["LIF loops"] > 0
    assert {k: out[k] for k in profile.KINDS} == expected
    assert out["step"] == sum(expected.values()) == now[0] / 2


def test_bench_store_lists_the_three_benchmarks_with_their_options():
    from types import SimpleNamespace

    from spike_lib.train import bench

    args = SimpleNamespace(repeats=3, torch="/py", torch_script="ref.py", new_tokens=200,
                           attention="spike_matrix_shift")
    cmds = bench.store_commands(args)
    assert cmds["speed"] == ["bench", "speed", "--json", "--repeats", "3", "--torch", "/py",
                             "--torch-script", "ref.py"]
    assert cmds["generate"][-2:] == ["--attention", "spike_matrix_shift"]
    assert cmds["profile"][:2] == ["bench", "profile"]
    with pytest.raises(ValueError, match="--store PATH"):
        bench.store_bench(SimpleNamespace(store=None))


def test_generate_bench_keeps_every_run_and_reports_the_median_one():
    from types import SimpleNamespace

    from spike_lib.train import bench

    args = SimpleNamespace(backend="numpy", attention="sdsa", new_tokens=3, gen_repeats=3)
    out = bench.generate_bench(args)
    for mode in ("windowed", "carried"):
        runs = out[f"numpy_{mode}_tokens_per_s_runs"]
        assert len(runs) == 3 and out[f"numpy_{mode}_tokens_per_s"] == sorted(runs)[1]
    assert out["numpy_carried_speedup"] == (out["numpy_carried_tokens_per_s"]
                                            / out["numpy_windowed_tokens_per_s"])


def test_speed_bench_fractions_use_the_higher_peak_and_name_every_row(monkeypatch):
    from types import SimpleNamespace

    from spike_lib.core.energy import train_step_flops
    from spike_lib.train import bench

    peaks = iter([100.0, 150.0])  # before and after the runs
    monkeypatch.setattr(bench, "numpy_matmul_gflops", lambda n: next(peaks))
    monkeypatch.setattr(bench, "mlx_matmul_gflops", lambda n: None)
    monkeypatch.setattr(bench, "_last_json", lambda cmd: {"train_tokens_per_s": 1000.0})
    out = bench.speed_bench(SimpleNamespace(n=64, repeats=1, torch="/py", torch_script="r.py"))
    assert (out["matmul_gflops_before"], out["matmul_gflops_after"], out["matmul_gflops"]) == (
        100.0, 150.0, 150.0)
    assert [r["config"] for r in out["rows"]] == ["small", "book", "shipped"]
    for r in out["rows"]:
        cfg = bench.bench_config(r["config"])
        per_token = train_step_flops(cfg, r["batch"]) / (r["batch"] * cfg.block_size) / 1e9
        for name in ("numpy", "numpy_unsplit", "mlx", "mlx_unsplit"):
            assert r[f"{name}_model_flops_fraction"] == pytest.approx(1000.0 * per_token / 150.0)
        assert ("torch_train_tokens_per_s" in r) == (r["config"] != "shipped")
    shipped = out["rows"][2]
    assert shipped["vocab_size"] == 2439 and shipped["attention"] == "spike_matrix_decay_shift"
