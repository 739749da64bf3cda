"""The checks a plug-in must pass before spike_lib.train.registry accepts it: shapes, gradients, training.

A neuron or an attention passes four gates, cheapest first:
    1. shapes: (T, B, N, C) in -> the same shape out, finite, spikes in {0, 1} (neurons); the
       output at step t (position l) does not depend on later steps (positions): causal;
    2. gradient: backward agrees with central finite differences of the smooth-mode forward in
       float64, normwise error ||g - g_num|| / (||g|| + ||g_num||) <= GRAD_TOL per tensor;
    3. MLX parity (when an MLX port is given): the same spikes or outputs, the same gradient;
    4. smoke run: SMOKE_STEPS AdamW steps of a tiny SpikeLLM built with it, on a repeating token
       sequence: every loss finite, the last five 5 % below the first five on average.
Every failure raises PluginError naming the plug-in, the check, what was seen and the fix.
Taught in: notebooks/10_toolkit.ipynb
"""

import math

import numpy as np

from spike_lib.core.config import Config
from spike_lib.train import registry
from spike_lib.train.registry import PluginError

SHAPE = (4, 2, 3, 5)  # (T, B, N, C): T timesteps first, then any neuron axes
ATTN_SHAPE = (3, 2, 5, 8)  # (T, B, L, D)
GRAD_TOL = 1e-5
MLX_TOL = 1e-4
SMOKE_STEPS = 30
SAMPLES = ("Hello, spiking world!", "Tokens: 42 + 7 = 49.\nA new line.", "naïve café, 東京")


def _fail(kind, name, check, problem, fix):
    raise PluginError(f"{kind} {name!r} failed the {check} check: {problem}. Fix: {fix}")


def _run(kind, name, check, fn, *args, fix="see the traceback of calling it yourself"):
    """fn(*args), with any exception turned into a PluginError for this check."""
    try:
        return fn(*args)
    except PluginError:
        raise
    except Exception as err:  # noqa: BLE001 - a plug-in may raise anything
        _fail(kind, name, check, f"it raised {type(err).__name__}: {err}", fix)


def _module_api(kind, name, mod):
    for method in ("forward", "backward", "set_smooth", "astype", "named_parameters"):
        if not hasattr(mod, method):
            _fail(kind, name, "build", f"the object has no {method}()",
                  "subclass spike_lib.numpy_impl.neurons.LIF (a neuron) or "
                  "spike_lib.numpy_impl.module.Module (an attention)")
    return mod


def _same_except(kind, name, check, a, b, keep, what, fix):
    if not np.allclose(a[keep], b[keep], atol=1e-6):
        _fail(kind, name, check, what, fix)


def _gradcheck(kind, name, mod, x, rng, max_entries=None) -> dict:
    from spike_lib.train.check import module_gradcheck

    errors = _run(kind, name, "gradient", module_gradcheck, mod, x, rng, 1e-6, max_entries)
    worst = max(errors, key=errors.get)
    if not errors[worst] <= GRAD_TOL:  # NaN fails too
        _fail(kind, name, "gradient",
              f"backward disagrees with finite differences of the smooth-mode forward "
              f"(float64): normwise error {errors[worst]:.1e} on {worst!r}, tolerance {GRAD_TOL}",
              "write backward as the forward run in reverse (BPTT over T), using the "
              "surrogate's grad() where the forward fires, and honour detach_reset=False")
    return {"grad_rel_error": errors[worst], "grad_worst": worst}


# -- neurons -------------------------------------------------------------------------------------
def _build_neuron(obj, name, **overrides):
    kw = {**Config.tiny().lif_kwargs("in"), **overrides}
    mod = _run("neuron", name, "build", lambda: obj(**kw),
               fix="accept the LIF arguments beta, threshold, reset, surrogate, surrogate_scale "
                   "and detach_reset (subclass spike_lib.numpy_impl.neurons.LIF to inherit them)")
    return _module_api("neuron", name, mod)


def validate_neuron(obj, name="candidate", mlx=None) -> dict:
    """Run the four gates on a neuron class (and its MLX port); returns their numbers."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.6, 0.8, SHAPE).astype(np.float32)
    neuron = _build_neuron(obj, name)
    fwd = "loop over the leading time axis only, (T, ...) -> (T, ...), one spike per input"
    spk = np.asarray(_run("neuron", name, "shape", neuron, x, fix=fwd))
    if spk.shape != x.shape:
        _fail("neuron", name, "shape", f"input (T, B, N, C) = {x.shape} gave {spk.shape}", fwd)
    if not np.all(np.isfinite(spk)) or not np.all((spk == 0) | (spk == 1)):
        _fail("neuron", name, "spike", f"outputs {np.unique(spk)[:4]} are not all 0 or 1",
              "fire with the surrogate's forward (the Heaviside step) when not in smooth mode")
    if spk.mean() == 0:
        _fail("neuron", name, "spike", "it never fired on inputs around the threshold",
              "check the threshold comparison: s = H(u - threshold)")
    later = x.copy()
    later[-1] += 3.0
    keep = np.zeros(SHAPE, bool)
    keep[:-1] = True
    _same_except("neuron", name, "causality", spk, neuron(later), keep,
                 "changing the input at the last step changed earlier spikes",
                 "step t may only read x[0..t]: update the state forward in time")
    one = x.copy()
    one[:, 0, 0, 0] += 3.0
    keep = np.ones(SHAPE, bool)
    keep[:, 0, 0, 0] = False
    _same_except("neuron", name, "shape", spk, neuron(one), keep,
                 "changing one neuron's input changed other neurons' spikes",
                 "keep one membrane per entry of x[t] (state shape x.shape[1:]); mix no axes")
    neuron(x)
    if not np.array_equal(np.asarray(getattr(neuron, "last_spk", np.nan)), spk):
        _fail("neuron", name, "firing rate", "forward did not keep its spikes in last_spk",
              "set self.last_spk = spk in forward (as LIF does): firing rates read it")
    dx = np.asarray(_run("neuron", name, "shape", neuron.backward, np.ones_like(spk)))
    if dx.shape != x.shape:
        _fail("neuron", name, "shape", f"backward returned {dx.shape} for spikes of shape "
              f"{spk.shape}", "return dL/dx with the input's shape")
    if not np.all(np.isfinite(dx)):
        _fail("neuron", name, "finite", f"backward returned NaN or inf for spikes of shape "
              f"{spk.shape}", "look for a division by zero or an overflow in spiking mode")
    smooth = _build_neuron(obj, name, detach_reset=False).astype(np.float64).set_smooth(True)
    out = np.asarray(_run("neuron", name, "gradient", smooth, x.astype(np.float64)))
    if np.all((out == 0) | (out == 1)):
        _fail("neuron", name, "gradient", "smooth mode still outputs 0/1 spikes",
              "when self.smooth is True, fire with surrogate.smooth(u - threshold)")
    report = {"shape": list(SHAPE), "firing_rate": float(spk.mean())}
    report.update(_gradcheck("neuron", name, smooth, x, rng))
    if mlx is not None:
        report.update(_mlx_neuron(obj, mlx, name, x, rng))
    with registry.temporarily("neuron", name, obj, mlx):  # the smoke model builds it by name
        report.update(smoke_report("neuron", name, smoke_config(neuron=name)))
    return report


def _mlx_neuron(obj, mlx, name, x, rng) -> dict:
    import mlx.core as mx

    from spike_lib.train.check import normwise_rel_error
    from spike_lib.train.registry import _resolve

    ref = _build_neuron(obj, name)
    m = _run("neuron", name, "MLX parity", lambda: _resolve(mlx)(**Config.tiny().lif_kwargs("in")))
    spk_m = np.array(_run("neuron", name, "MLX parity", m, mx.array(x)))
    spk = ref(x)
    if spk_m.shape != spk.shape or np.mean(spk_m != spk) > 0.01:
        _fail("neuron", name, "MLX parity", "the MLX port's spikes differ from the NumPy ones",
              "compute the same forward with mx instead of np (spike_fn for the step)")
    dout = rng.standard_normal(spk.shape).astype(np.float32)
    dx = ref.backward(dout)
    dx_m = mx.grad(lambda v: (m(v) * mx.array(dout)).sum())(mx.array(x))
    err = normwise_rel_error(np.array(dx_m), dx)
    if not err <= MLX_TOL:
        _fail("neuron", name, "MLX parity", f"MLX autodiff and the NumPy backward differ "
              f"(normwise {err:.1e} > {MLX_TOL})", "use spike_fn(surrogate) for the spike and "
              "mx.stop_gradient on the reset when detach_reset, as spike_lib.mlx_impl.neurons")
    return {"mlx_grad_rel_error": err}


# -- attention -----------------------------------------------------------------------------------
def _build_attention(obj, name, cfg, seed=0):
    mod = _run("attention", name, "build", obj, cfg, np.random.default_rng(seed),
               fix="write a factory (cfg, rng) -> Module, e.g. a class whose __init__ takes "
                   "(cfg, rng) and draws its weights from rng")
    return _module_api("attention", name, mod)


def validate_attention(obj, name="candidate", mlx=None) -> dict:
    """Run the four gates on an attention factory(cfg, rng) (and its MLX port)."""
    rng = np.random.default_rng(0)
    t, _, _, d = ATTN_SHAPE
    cfg = Config.tiny(n_embd=d, n_head=2, num_steps=t, detach_reset=False)
    x = rng.normal(0.0, 1.0, ATTN_SHAPE).astype(np.float32)
    mod = _build_attention(obj, name, cfg)
    fix = "map (T, B, L, D) to (T, B, L, D): project back to n_embd channels"
    out = np.asarray(_run("attention", name, "shape", mod, x, fix=fix))
    if out.shape != x.shape or not np.all(np.isfinite(out)):
        _fail("attention", name, "shape", f"input (T, B, L, D) = {x.shape} gave {out.shape} "
              f"(finite: {bool(np.all(np.isfinite(out)))})", fix)
    later = x.copy()
    later[:, :, -1] += 2.0
    keep = np.zeros(ATTN_SHAPE, bool)
    keep[:, :, :-1] = True
    _same_except("attention", name, "causality", out, mod(later), keep,
                 "changing the last token changed the outputs at earlier positions",
                 "a language model reads only the past: use a cumulative sum over positions "
                 "or mask the keys after each query")
    mod(x)
    dx = np.asarray(_run("attention", name, "shape", mod.backward, np.ones_like(out)))
    if dx.shape != x.shape:
        _fail("attention", name, "shape", f"backward returned {dx.shape} for {x.shape}",
              "return dL/dx with the input's shape")
    smooth = _build_attention(obj, name, cfg).astype(np.float64).set_smooth(True)
    report = {"shape": list(ATTN_SHAPE), "params": int(sum(p.size for _, p, _ in
                                                           mod.named_parameters()))}
    report.update(_gradcheck("attention", name, smooth, x, rng, max_entries=24))
    if mlx is not None:
        report.update(_mlx_attention(obj, mlx, name, cfg, x))
    with registry.temporarily("attention", name, obj, mlx):
        report.update(smoke_report("attention", name, smoke_config(attention=name)))
    return report


def _mlx_attention(obj, mlx, name, cfg, x) -> dict:
    import mlx.core as mx

    from spike_lib.train.check import normwise_rel_error
    from spike_lib.train.registry import _resolve

    cfg = cfg.replace(detach_reset=True)
    ref = _build_attention(obj, name, cfg)
    m = _run("attention", name, "MLX parity", _resolve(mlx), cfg, np.random.default_rng(0))
    out_m = np.array(_run("attention", name, "MLX parity", m, mx.array(x)))
    err = normwise_rel_error(out_m, ref(x)) if out_m.shape == x.shape else math.inf
    if not err <= MLX_TOL:
        _fail("attention", name, "MLX parity", f"the MLX port's output differs (normwise "
              f"{err:.1e})", "draw the weights from rng in the NumPy order and compute the same "
              "forward with mx")
    return {"mlx_rel_error": err}


# -- the smoke run -------------------------------------------------------------------------------
def smoke_config(**overrides) -> Config:
    """The tiny model of the smoke run: one block of width 16, T = 4, 16 tokens of 8."""
    return Config.tiny(vocab_size=16, block_size=8, n_embd=16, n_head=2, d_ff=32, **overrides)


def smoke_run(cfg, steps=None, seed=0) -> list:
    """Losses of `steps` (default SMOKE_STEPS) NumPy AdamW steps (lr 1e-2) on windows of
    0, 1, ..., V - 1, 0, 1, ..."""
    from spike_lib.numpy_impl.model import SpikeLLM
    from spike_lib.numpy_impl.optim import AdamW
    from spike_lib.numpy_impl.train import train_step

    rng = np.random.default_rng(seed)
    model = SpikeLLM(cfg, np.random.default_rng(seed))
    opt = AdamW(model, lr=1e-2)
    ids = np.tile(np.arange(cfg.vocab_size), 8)
    losses = []
    for _ in range(SMOKE_STEPS if steps is None else steps):
        rows = rng.integers(0, len(ids) - cfg.block_size - 1, (8, 1)) + np.arange(cfg.block_size)
        losses.append(train_step(model, opt, ids[rows], ids[rows + 1], clip=1.0)["loss"])
    return losses


def check_losses(kind, name, losses) -> dict:
    """Finite losses whose last five average at least 5 % below the first five."""
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if bad:
        _fail(kind, name, "smoke run", f"the loss is {losses[bad[0]]} at step {bad[0] + 1}",
              "look for a division by zero or an exp overflow in spiking mode")
    first, last = float(np.mean(losses[:5])), float(np.mean(losses[-5:]))
    if not last < 0.95 * first:
        _fail(kind, name, "smoke run", f"the loss went from {first:.3f} to only {last:.3f} in "
              f"{len(losses)} steps", "check that backward passes the gradient on (not zeros) "
              "and that the forward uses its input")
    return {"smoke_first_loss": first, "smoke_last_loss": last, "smoke_steps": len(losses)}


def smoke_report(kind, name, cfg) -> dict:
    """smoke_run + check_losses, with a diverged or crashing run reported as a PluginError."""
    from spike_lib.numpy_impl.train import TrainingDiverged

    try:
        losses = smoke_run(cfg)
    except TrainingDiverged as err:
        _fail(kind, name, "smoke run", f"training diverged ({err})",
              "look for NaN or inf in forward or backward in spiking mode")
    except Exception as err:  # noqa: BLE001 - a plug-in may raise anything
        _fail(kind, name, "smoke run", f"training raised {type(err).__name__}: {err}",
              "build spike_lib.train.plugin_checks.smoke_config(...) into a SpikeLLM and train it "
              "yourself to see the traceback")
    return check_losses(kind, name, losses)


# -- tokenizers and datasets ----------------------------------------------------------------------
def as_tokenizer(obj, args=()):
    """A tokenizer instance from a class, a factory or an instance."""
    return obj(*args) if isinstance(obj, type) or not hasattr(obj, "encode") else obj


def validate_tokenizer(obj, name="candidate") -> dict:
    """Round trips on SAMPLES: integer ids in [0, vocab_size), decode(encode(s)) == s."""
    tok = _run("tokenizer", name, "build", as_tokenizer, obj,
               fix="register a class or a function that takes no arguments")
    vocab = getattr(tok, "vocab_size", None)
    if not isinstance(vocab, int) or vocab < 2:
        _fail("tokenizer", name, "build", f"vocab_size is {vocab!r}",
              "give the tokenizer an int attribute vocab_size >= 2")
    n_ids = 0
    for s in SAMPLES:
        ids = _run("tokenizer", name, "round trip", tok.encode, s)
        ok = all(isinstance(i, (int, np.integer)) and 0 <= i < vocab for i in ids)
        if not ok:
            _fail("tokenizer", name, "round trip", f"encode({s!r}) gave ids outside "
                  f"[0, {vocab}) or not integers: {list(ids)[:8]}", "return a list of ints")
        back = _run("tokenizer", name, "round trip", tok.decode, list(ids))
        if back != s:
            _fail("tokenizer", name, "round trip", f"decode(encode({s!r})) gave {back!r}",
                  "make it lossless: fall back to the UTF-8 bytes of unknown characters")
        n_ids += len(ids)
    return {"vocab_size": vocab, "chars_per_token": sum(map(len, SAMPLES)) / max(n_ids, 1)}


def validate_dataset(fn, name="candidate") -> dict:
    """fn("train") and fn("val") return non-empty lists of documents with non-empty "text"."""
    report = {}
    for split in ("train", "val"):
        docs = _run("dataset", name, "documents", fn, split,
                    fix="a dataset is a function split -> list of {'text': ...} documents")
        if not isinstance(docs, list) or not docs:
            _fail("dataset", name, "documents", f"{name}({split!r}) returned "
                  f"{type(docs).__name__} of length {len(docs) if hasattr(docs, '__len__') else '?'}",
                  "return a non-empty list of dicts")
        bad = [i for i, d in enumerate(docs)
               if not isinstance(d, dict) or not isinstance(d.get("text"), str) or not d["text"]]
        if bad:
            _fail("dataset", name, "documents", f"document {bad[0]} of split {split!r} has no "
                  "non-empty 'text' string", "give every document a 'text' field")
        report[f"{split}_docs"] = len(docs)
        report[f"{split}_chars"] = sum(len(d["text"]) for d in docs)
    return report
