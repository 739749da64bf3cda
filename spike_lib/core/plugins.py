"""The plug-in tables: neurons, attention types, tokenizers and datasets, by name.

Core holds the tables and looks names up; spike_lib.train.registry validates and registers
plug-ins into them (and discovers installed ones), so configs and models check a name without
importing the registry. Built-in entries are "module:attr" strings, imported on first use.
Taught in: notebooks/10_toolkit.ipynb
"""

import importlib
from contextlib import contextmanager

KINDS = ("neuron", "attention", "tokenizer", "dataset")
GROUPS = {"neuron": "spike_lib.neurons", "attention": "spike_lib.attention",
          "tokenizer": "spike_lib.tokenizers", "dataset": "spike_lib.datasets"}
BACKENDS = ("numpy", "mlx")
BUILTIN = "built-in"
# the attentions of issue 13 (spike_lib.mlx_impl.context_attention.NAMES and its NumPy port)
CONTEXT_ATTENTIONS = ("sdsa_mean", "sdsa_decay", "sdsa_shift", "sdsa_decay_shift",
                      "spike_matrix", "spike_matrix_running", "spike_matrix_shift",
                      "spike_matrix_decay", "spike_matrix_decay_shift", "hybrid",
                      "hybrid_relu", "hybrid_shift", "softmax_shift")


class PluginError(ValueError):
    """A plug-in failed to load or to validate; the message names it, the problem and the fix."""


def _builtins() -> dict:
    """The shipped entries: kind -> name -> {"numpy": ..., "mlx": ..., "origin": ...}.

    Objects are given as "module:attr" and imported on first use (mlx only when asked for).
    They follow the plug-in protocols (make_attention is a factory(cfg, rng) that reads
    cfg.attention), though the blocks build the built-ins directly, as before plug-ins.
    """
    tok = {n: {"numpy": "spike_lib.tokenizers:get_tokenizer", "args": (n,)}
           for n in ("char", "syllable", "bpe", "gpt2", "wordpiece", "bert-cased", "bert-chinese")}
    return {"neuron": {"lif": {"numpy": "spike_lib.numpy_impl.neurons:LIF",
                               "mlx": "spike_lib.mlx_impl.neurons:LIF"}},
            "attention": {**{n: {"numpy": "spike_lib.numpy_impl.blocks:make_attention",
                                 "mlx": "spike_lib.mlx_impl.blocks:make_attention"}
                             for n in ("sdsa", "softmax")},
                          **{n: {"numpy": "spike_lib.numpy_impl.context_attention:"
                                          "make_context_attention",
                                 "mlx": "spike_lib.mlx_impl.context_attention:"
                                        "make_context_attention"}
                             for n in CONTEXT_ATTENTIONS}},
            "tokenizer": tok,
            "dataset": {"corpus": {"numpy": "spike_lib.data.corpus:load_corpus"}}}


_TABLE = {kind: {name: {**e, "origin": BUILTIN} for name, e in entries.items()}
          for kind, entries in _builtins().items()}
_DISCOVERED = []  # True once discover() has searched sys.path (a lookup miss searches once)
_HOOK = []  # [discover]: filled in by spike_lib.train.registry when it is imported


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is invalid: choose one of {list(KINDS)}")


def _resolve(obj):
    """A "module:attr" string imported, anything else as it is."""
    if not isinstance(obj, str):
        return obj
    module, _, attr = obj.partition(":")
    return getattr(importlib.import_module(module), attr)


def names(kind) -> list:
    """The registered names of one kind, sorted (built-ins included)."""
    _check_kind(kind)
    return sorted(_TABLE[kind])


def describe(kind=None) -> dict:
    """{kind: {name: origin}}: where every registered plug-in came from."""
    kinds = KINDS if kind is None else (kind,)
    return {k: {n: e["origin"] for n, e in sorted(_TABLE[k].items())} for k in kinds}


def set_discover(fn):
    """Install fn() as the search for plug-ins an unknown name runs once (train.registry does)."""
    _HOOK[:] = [fn]


def check_name(kind, name):
    """Raise ValueError unless `name` is registered; an unknown name first runs discover() once.

    discover() (installed by spike_lib.train.registry) imports every installed package's
    spike_lib.* entry points: opening a checkpoint that names an unknown neuron or attention
    therefore loads the plug-ins of this environment before it fails.
    """
    _check_kind(kind)
    if name not in _TABLE[kind] and not _DISCOVERED and _HOOK:
        _HOOK[0]()
    if name not in _TABLE[kind]:
        raise ValueError(f"{kind}={name!r} is invalid: choose "
                         f"one of {names(kind)}, or register yours with "
                         f"spike_lib.train.registry.register_{kind} (installed plug-ins load "
                         "with spike_lib.train.registry.discover(); `python -m spike_lib "
                         "plugins` lists them)")


def origin_of(kind, name):
    """Where a registered plug-in came from ("entry point mod:obj of package", "user"); None
    for a built-in or an unknown name. Checkpoints record it, so that a machine without the
    plug-in can name the package to install."""
    entry = _TABLE.get(kind, {}).get(name)
    return None if entry is None or entry["origin"] == BUILTIN else entry["origin"]


def get(kind, name, backend="numpy"):
    """The registered object (class or factory) of `name` for `backend`."""
    check_name(kind, name)
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is invalid: choose one of {list(BACKENDS)}")
    entry = _TABLE[kind][name]
    if entry.get(backend) is None:
        raise ValueError(f"the {kind} {name!r} has no {backend} implementation: register it "
                         f"with {backend}=... or train with --backend numpy")
    return _resolve(entry[backend])


def build_neuron(cfg, kind, backend="numpy"):
    """The plug-in neuron cfg.neuron for neuron type kind ("in", "qkv", "attn", "hidden")."""
    return get("neuron", cfg.neuron, backend)(**cfg.lif_kwargs(kind))


def build_attention(cfg, rng, backend="numpy"):
    """The plug-in attention cfg.attention: factory(cfg, rng), a causal module."""
    return get("attention", cfg.attention, backend)(cfg, rng)


def get_dataset(name):
    """The dataset function split -> documents of `name` ("corpus" is the shipped corpus)."""
    return get("dataset", name)


def unregister(kind, name):
    """Remove a plug-in (built-ins stay)."""
    _check_kind(kind)
    entry = _TABLE[kind].get(name)
    if entry is None:
        raise ValueError(f"no {kind} named {name!r} is registered; registered: {names(kind)}")
    if entry["origin"] == BUILTIN:
        raise ValueError(f"{name!r} is the built-in {kind}: it cannot be removed")
    del _TABLE[kind][name]


@contextmanager
def snapshot():
    """Restore the registry on exit if the block raised (keep it otherwise)."""
    saved = {k: dict(v) for k, v in _TABLE.items()}
    try:
        yield
    except BaseException:
        for k in KINDS:
            _TABLE[k].clear()
            _TABLE[k].update(saved[k])
        raise


@contextmanager
def temporarily(kind, name, obj, mlx=None):
    """Register obj under name for the duration of the block, unvalidated (for the checks)."""
    if name in _TABLE[kind]:
        yield
        return
    _TABLE[kind][name] = {"numpy": obj, "mlx": mlx, "origin": "validation"}
    try:
        yield
    finally:
        _TABLE[kind].pop(name, None)
