"""Validated configurations: one dataclass per kind of thing, with small defaults and presets.

Every field is checked in __post_init__; a bad value raises ValueError naming the field, the
value and the allowed range. Override a preset with dataclasses.replace(cfg, n_layer=2).
Taught in: notebooks/01_lif_neurons.ipynb (LIFConfig), notebooks/02_sdsa_colors.ipynb (Config)
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from spike_lib.core import plugins
from spike_lib.core.surrogate import SURROGATES

RESETS = ("subtract", "zero")
ATTENTIONS = ("sdsa", "softmax")  # the built-in attentions; spike_lib.train.registry adds plug-ins
# fields added after the first checkpoints shipped: to_dict leaves them out at their default,
# so the config.json and run.json of older runs still compare equal
LATER_FIELDS = {"neuron": "lif", "spike_levels": 1}


def check_range(field, value, low=None, high=None, low_open=False, kind=(int, float)):
    """Raise ValueError unless low <= value <= high (or low < value when low_open)."""
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValueError(f"{field}={value!r} is invalid: it must be a number ({names})")  # noqa: TRY004
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high or math.isnan(value):
        left = "(" if low_open else "["
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{field}={value!r} is invalid: allowed range is {left}{lo}, {hi}]")


def check_spike_levels(levels, field="spike_levels"):
    """ValueError unless levels is an int >= 1 (D: spikes take the D + 1 values 0, 1/D, ..., 1)."""
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"{field}={levels!r} is invalid: it must be an integer >= 1 (D, the "
                         "spike values 0, 1/D, ..., 1; 1 = binary spikes), e.g. spike_levels=2")


def check_choice(field, value, choices):
    if value not in choices:
        raise ValueError(f"{field}={value!r} is invalid: choose one of {list(choices)}")


def check_rng(rng):
    """TypeError unless rng is a NumPy Generator (both backends draw their weights from one)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng={rng!r} is invalid: pass a numpy Generator, e.g. np.random.default_rng(0)"
        )


def check_token_ids(idx, block_size, vocab_size):
    """idx as a (B, L) integer NumPy array with 1 <= L <= block_size and ids < vocab_size."""
    idx = np.asarray(idx)
    if idx.ndim == 1:
        idx = idx[None]
    if idx.ndim != 2 or not 1 <= idx.shape[1] <= block_size:
        raise ValueError(f"idx must be (B, L) token ids with 1 <= L <= block_size="
                         f"{block_size}, got shape {idx.shape}; crop the context")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"idx must hold integer token ids, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size - 1}] "
                         f"(vocab_size), got {idx.min()}..{idx.max()}: is the tokenizer "
                         "the one this model was built for?")
    return idx


@dataclass
class LIFConfig:
    """A layer of leaky integrate-and-fire neurons (chapter 1).

    beta: membrane leak per timestep, in [0, 1] (0 forgets at once, 1 never leaks).
    threshold: firing threshold, > 0. num_steps: timesteps T, >= 1.
    reset: "subtract" (soft: mem -= threshold) or "zero" (hard: mem = 0) after a spike.
    surrogate / surrogate_scale: the backward pseudo-derivative and its one parameter (a
    sharpness for sigmoid, fast_sigmoid and arctan, the width for rectangular; see
    spike_lib.core.surrogate: at 2.0 the sigmoid and rectangle peak at 0.5, the others at 1).
    detach_reset: treat the reset as a constant in the backward pass (the usual choice).
    """

    beta: float = 0.9
    threshold: float = 1.0
    num_steps: int = 8
    reset: str = "subtract"
    surrogate: str = "arctan"
    surrogate_scale: float = 2.0
    detach_reset: bool = True

    def __post_init__(self):
        check_range("beta", self.beta, 0.0, 1.0)
        check_range("threshold", self.threshold, 0.0, low_open=True)
        check_range("num_steps", self.num_steps, 1, kind=int)
        check_choice("reset", self.reset, RESETS)
        check_choice("surrogate", self.surrogate, SURROGATES)
        check_range("surrogate_scale", self.surrogate_scale, 0.0, low_open=True)


@dataclass
class Config:
    """A spike-driven transformer (chapter 2 classifies with it; chapters 5-9 model language).

    Shapes are time-first (T, B, L, D): T = num_steps, B = batch, L = tokens, D = n_embd.
    """

    vocab_size: int = 64  # distinct tokens
    block_size: int = 16  # max tokens L per sequence
    n_layer: int = 1  # transformer blocks
    n_embd: int = 32  # width D
    n_head: int = 2  # attention heads; n_embd must divide evenly
    d_ff: int = 64  # hidden width of the MLP
    num_steps: int = 4  # timesteps T each token is presented for
    beta: float = 0.5  # LIF leak
    threshold: float = 1.0  # LIF threshold of every layer except attention
    attn_threshold: float = 0.5  # threshold of the neuron SN() applied to sum_L K*V
    reset: str = "subtract"  # LIF reset after a spike: "subtract" (soft) or "zero" (hard)
    surrogate: str = "arctan"
    surrogate_scale: float = 2.0
    detach_reset: bool = True
    attention: str = "sdsa"  # "sdsa" (spike-driven), "softmax" or a registered plug-in
    spiking: bool = True  # False: the non-spiking twin (smooth activations)
    dropout: float = 0.0
    seed: int = 0
    # per-layer-type thresholds (None: use `threshold`): the neuron in front of each branch,
    # the Q/K/V neurons of attention, and the hidden neuron of the MLP
    in_threshold: float | None = None
    qkv_threshold: float | None = None
    hidden_threshold: float | None = None
    mem_clamp: float | None = None  # clip every LIF membrane to [-mem_clamp, mem_clamp]; None: off
    tie_weights: bool = False  # True: the readout reuses the token embedding matrix (W_out = E^T)
    neuron: str = "lif"  # the spiking neuron: "lif" or a plug-in (spike_lib.train.registry)
    # D, the spike levels: a LIF fires (count of the level thresholds k threshold / D its
    # membrane crossed) / D, D + 1 values in [0, 1] (I-LIF of SpikeYOLO, Luo et al. 2024,
    # normalised to the binary range); 1: binary spikes. The non-spiking twin (spiking=False)
    # has no neurons and ignores it
    spike_levels: int = 1

    def __post_init__(self):
        for field in ("vocab_size", "block_size", "n_layer", "n_embd", "n_head", "d_ff"):
            check_range(field, getattr(self, field), 1, kind=int)
        check_range("num_steps", self.num_steps, 1, kind=int)
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd={self.n_embd} is invalid: it must be divisible by n_head={self.n_head}"
            )
        check_range("beta", self.beta, 0.0, 1.0)
        check_range("threshold", self.threshold, 0.0, low_open=True)
        check_range("attn_threshold", self.attn_threshold, 0.0, low_open=True)
        check_choice("reset", self.reset, RESETS)
        check_choice("surrogate", self.surrogate, SURROGATES)
        check_range("surrogate_scale", self.surrogate_scale, 0.0, low_open=True)
        plugins.check_name("attention", self.attention)  # built-in or registered plug-in
        plugins.check_name("neuron", self.neuron)
        if self.neuron != "lif" and (not self.spiking or self.mem_clamp is not None):
            what = "spiking=False (the twin has no neurons)" if not self.spiking else "mem_clamp"
            raise ValueError(f"neuron={self.neuron!r} is invalid with {what}: plug-in neurons "
                             "run in the spiking model without mem_clamp; use neuron='lif'")
        check_spike_levels(self.spike_levels)
        if self.spike_levels != 1 and self.neuron != "lif":
            raise ValueError(f"spike_levels={self.spike_levels} is invalid with neuron="
                             f"{self.neuron!r}: plug-in neurons fire binary spikes; use "
                             "neuron='lif' or spike_levels=1")
        check_range("dropout", self.dropout, 0.0, 1.0)
        if self.dropout >= 1.0:
            raise ValueError(f"dropout={self.dropout} is invalid: allowed range is [0.0, 1.0)")
        for field in ("in_threshold", "qkv_threshold", "hidden_threshold", "mem_clamp"):
            if getattr(self, field) is not None:
                check_range(field, getattr(self, field), 0.0, low_open=True)
        if self.mem_clamp is not None and self.mem_clamp <= max(self.thresholds().values()):
            raise ValueError(
                f"mem_clamp={self.mem_clamp} is invalid: it must exceed every threshold "
                f"({max(self.thresholds().values())}) or no neuron could ever fire"
            )

    def lif_kwargs(self, kind) -> dict:
        """Arguments of the LIF neuron of type kind ("in", "qkv", "attn", "hidden").

        Without spike_levels: plug-in neurons take these; the built-in LIF also gets
        levels=spike_levels (make_neuron, LIF.from_config)."""
        return {"beta": self.beta, "threshold": self.thresholds()[kind], "reset": self.reset,
                "surrogate": self.surrogate, "surrogate_scale": self.surrogate_scale,
                "detach_reset": self.detach_reset}

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def thresholds(self) -> dict:
        """The firing threshold of each neuron type: in, qkv, attn (the SN of SDSA), hidden."""
        t = self.threshold
        return {"in": t if self.in_threshold is None else self.in_threshold,
                "qkv": t if self.qkv_threshold is None else self.qkv_threshold,
                "attn": self.attn_threshold,
                "hidden": t if self.hidden_threshold is None else self.hidden_threshold}

    @classmethod
    def tiny(cls, **overrides):
        """Runs a whole chapter in seconds on a laptop CPU; used by the tests."""
        return dataclasses.replace(cls(), **overrides)

    @classmethod
    def small(cls, **overrides):
        """The reading-size language model: 4 blocks of width 256 (4 heads of 64), MLP 4x wide,
        T=4 timesteps (enough for the LIF to integrate, still 4x the cost of one ANN pass) and
        a 128-token context: 3.5 M weights with a 512-token vocabulary."""
        # vocab_size 512 is a stand-in: replace it by the tokenizer's tokenizer.vocab_size
        base = cls(vocab_size=512, block_size=128, n_layer=4, n_embd=256, n_head=4, d_ff=1024,
                   num_steps=4)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def book(cls, **overrides):
        """The published model, chosen by measurement (data/checkpoints/SWEEP.md): small() with
        T=2 timesteps, trained with the 2439-token BPE; 4.4 M weights, a 17.8 MB checkpoint."""
        # a sweep of 4-minute MLX runs on this 2-core CPU (data/checkpoints/SWEEP.md, val BPC):
        # BPE beat syllables and characters (3.2 characters per token: more text per step);
        # T=2 beat T=4 (2.51 vs 2.74: twice the updates, the same quality per update);
        # 4x256 beat 6x256 and 8x192 (more updates in the time) and block 256 (fewer windows)
        base = cls.small(num_steps=2)
        return dataclasses.replace(base, **overrides)

    def replace(self, **overrides):
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for field, default in LATER_FIELDS.items():
            if d[field] == default:
                del d[field]
        return d

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}; remove them or fix the spelling")
        return cls(**d)
