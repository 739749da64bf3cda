"""Energy estimates the way spiking-transformer papers report them (45 nm CMOS figures).

An ANN layer does one multiply-accumulate (MAC) per weight per token; a spiking layer whose
inputs are binary spikes only *adds* a weight where a spike arrived (an accumulate, AC):
    E_ANN = FLOPs x E_MAC                    E_MAC = 4.6 pJ (32-bit float mult 3.7 + add 0.9)
    E_SNN = FLOPs x T x rate x E_AC          E_AC  = 0.9 pJ (32-bit float add)
FLOPs counts MACs of the layer for one timestep, T = num_steps, rate = the mean spike VALUE
per input neuron per timestep, in [0, 1]: for binary spikes, spikes per neuron per step.
Multi-level spikes (Config.spike_levels = D > 1; core.neurons) take the values j/D: a spike
j/D is j binary events of weight W/D on neuromorphic hardware (1/D folded into the weights),
so it costs j = D s accumulates, and a layer pays D x rate per weight:
    E_SNN = FLOPs x T x D x rate x E_AC
A product of two spikes (K V, Q SN(.), the coincidences Q K^T) has values (i/D)(j/D): i j
coincident events, so D^2 x its mean (the `spikes` argument of EnergyReport.add: how many
spikes the input is a product of; 0 for adds of counts or weights, which happen anyway).
Figures: Horowitz, "Computing's energy problem" (ISSCC 2014), used by
Spike-driven Transformer (Yao et al. 2023) and SpikeGPT (Zhu et al. 2023). They count
arithmetic only, not memory traffic, and hold for dedicated neuromorphic hardware, not a CPU.
Taught in: notebooks/02_sdsa_colors.ipynb
"""

from dataclasses import dataclass, field

import numpy as np

from spike_lib.core.config import check_range

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


def linear_flops(n_in, n_out, n_tokens=1) -> int:
    """MACs of y = x W for n_tokens tokens: n_tokens * n_in * n_out."""
    for name, v in (("n_in", n_in), ("n_out", n_out), ("n_tokens", n_tokens)):
        check_range(name, v, 0, kind=int)
    return n_tokens * n_in * n_out


def ann_energy_pj(flops) -> float:
    check_range("flops", flops, 0)
    return flops * E_MAC_PJ


def snn_energy_pj(flops, num_steps, firing_rate, spike_levels=1, spikes=1) -> float:
    """flops x T x D^spikes x rate x E_AC: rate is the mean spike value in [0, 1], D^spikes the
    events per unit of value (D = spike_levels; spikes = 1 for a spike, 2 for a product of two,
    0 for operations that are not spike-driven)."""
    check_range("flops", flops, 0)
    check_range("num_steps", num_steps, 1, kind=int)
    check_range("firing_rate", firing_rate, 0.0, 1.0)
    check_range("spike_levels", spike_levels, 1, kind=int)
    check_range("spikes", spikes, 0, 2, kind=int)
    return flops * num_steps * spike_levels**spikes * firing_rate * E_AC_PJ


@dataclass
class EnergyReport:
    """Per-layer op counts and energies. Add layers with .add(); read .ann_pj, .snn_pj.

    uncosted: {name: count} of operations the 45 nm table has no figure for (exps).
    spike_levels: D, the spikes' levels j/D; a rate is a mean spike value in [0, 1] either
    way, and a row pays D (D^2 for a product of two spikes) accumulates per unit of it.
    """

    num_steps: int
    rows: list = field(default_factory=list)
    uncosted: dict = field(default_factory=dict)
    spike_levels: int = 1

    def __post_init__(self):
        check_range("spike_levels", self.spike_levels, 1, kind=int)

    def add(self, name, flops, firing_rate=None, ann_flops=None, spikes=1):
        """firing_rate=None: the layer's input is real-valued, so it pays MACs even in an SNN.

        ann_flops: the MACs the ANN does instead, where it computes the layer otherwise
        (default flops; token shift: an ANN mixes x, the SNN runs a second spike product).
        spikes: the input is one spike (1), a product of two (2: K V, Q SN(.)) or adds that are
        not spike-driven (0): each unit of mean value is spike_levels**spikes events.
        """
        snn = (ann_energy_pj(flops) * self.num_steps if firing_rate is None
               else snn_energy_pj(flops, self.num_steps, firing_rate, self.spike_levels, spikes))
        ann = ann_energy_pj(flops if ann_flops is None else ann_flops)
        self.rows.append({"layer": name, "flops": flops, "firing_rate": firing_rate,
                          "spikes": spikes, "ann_pj": ann, "snn_pj": snn})
        return self

    def add_attention(self, prefix, rows, spiking=True):
        """Add attention_core_ops rows as f"{prefix}.{op}": an "ac" row at its rate (every op
        a MAC when spiking=False, the twin), a "mac" row as real multiplications, an "exp" row
        to .uncosted (times num_steps: its count is per timestep)."""
        for r in rows:
            name = f"{prefix}.{r['op']}"
            if r["kind"] == "exp":
                self.uncosted[name] = self.uncosted.get(name, 0) + r["ops"] * self.num_steps
            else:
                self.add(name, r["ops"], r["rate"] if spiking and r["kind"] == "ac" else None,
                         r.get("ann_ops"), r.get("spikes", 1))
        return self

    @property
    def ann_pj(self) -> float:
        return sum(r["ann_pj"] for r in self.rows)

    @property
    def snn_pj(self) -> float:
        return sum(r["snn_pj"] for r in self.rows)

    @property
    def ratio(self) -> float:
        """SNN energy / ANN energy (below 1 means the spiking model is estimated cheaper)."""
        return self.snn_pj / self.ann_pj if self.ann_pj else float("nan")

    def table(self) -> str:
        lines = [f"{'layer':<18}{'MACs':>12}{'rate':>8}{'ANN pJ':>12}{'SNN pJ':>12}"]
        for r in self.rows:
            rate = "real" if r["firing_rate"] is None else f"{r['firing_rate']:.3f}"
            lines.append(f"{r['layer']:<18}{r['flops']:>12,}{rate:>8}{r['ann_pj']:>12,.0f}"
                         f"{r['snn_pj']:>12,.0f}")
        lines.append(f"{'total':<18}{'':>12}{'':>8}{self.ann_pj:>12,.0f}{self.snn_pj:>12,.0f}")
        lines += [f"not costed: {name} {count:,} exp" for name, count in self.uncosted.items()]
        return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--flops", type=float, required=True, help="MACs per timestep")
    parser.add_argument("--num-steps", type=int, default=4, help="timesteps T")
    parser.add_argument("--rate", type=float, required=True,
                        help="mean input spike value per neuron and step, in [0, 1]")
    parser.add_argument("--spike-levels", type=int, default=1,
                        help="D: spikes take the values j/D, a spike j/D costs j accumulates "
                        "(1: binary spikes)")


def run(args) -> dict:
    ann = ann_energy_pj(args.flops)
    snn = snn_energy_pj(args.flops, args.num_steps, args.rate, getattr(args, "spike_levels", 1))
    return {"ann_pj": ann, "snn_pj": snn, "ratio": snn / ann if ann else float("nan")}


# multiply-accumulates of an attention's own matmuls per sequence and timestep (L tokens, width D,
# head width d_h), as the dense code computes them (the masked half of an L x L map included)
ATTENTION_MATMUL_MACS = {
    **{name: lambda n_tok, d, hd: 2 * n_tok * n_tok * d  # Q K^T and A V
       for name in ("softmax", "softmax_shift", "hybrid", "hybrid_relu", "hybrid_shift",
                    "spike_matrix", "spike_matrix_shift", "spike_matrix_decay",
                    "spike_matrix_decay_shift")},
    "sdsa_decay": lambda n_tok, d, hd: n_tok * n_tok * d,  # the (L x L) decay matrix times K V
    "sdsa_decay_shift": lambda n_tok, d, hd: n_tok * n_tok * d,
    "spike_matrix_running": lambda n_tok, d, hd: 2 * n_tok * d * hd}  # K^T V state, Q S read


def forward_macs(cfg, n_batch, n_tok) -> int:
    """Multiply-accumulates of the matmuls of one forward pass over n_batch x n_tok tokens.

    Per timestep and token: 4 D^2 (Q, K, V, O) + 2 D d_ff (MLP) per block; an attention with
    its own matmuls adds ATTENTION_MATMUL_MACS per sequence (softmax and the other quadratic
    ones 2 L^2 D: Q K^T and A V, the masked half included). The readout (D V per token) runs
    once. The twin runs T = 1. SDSA's attention core has no MACs.
    """
    t = cfg.num_steps if cfg.spiking else 1
    n, d = n_batch * n_tok, cfg.n_embd
    per_block = n * (4 * d * d + 2 * d * cfg.d_ff)
    if cfg.attention in ATTENTION_MATMUL_MACS:
        per_block += n_batch * ATTENTION_MATMUL_MACS[cfg.attention](n_tok, d, d // cfg.n_head)
    return t * cfg.n_layer * per_block + n * d * cfg.vocab_size


def train_step_flops(cfg, batch, n_tok=None) -> int:
    """Model FLOPs of one training step: three MAC passes (forward, dX, dW) at 2 FLOPs per MAC.

    = 6 x forward_macs. batch: sequences per step; n_tok: tokens per sequence (default
    cfg.block_size). Elementwise work (LIF, LayerNorm, the cumulative sums) is not counted: it
    is what the step pays on top.
    """
    return 6 * forward_macs(cfg, batch, cfg.block_size if n_tok is None else n_tok)


# -- attention cores: which products are accumulates on spikes, which are multiplications ---------
# the arithmetic of each attention core (projections not included): "mean" and "decay" are the
# SDSA gates of issue 13, "matrix" the (Q K^T) V form, "running" its K^T V state form
ATTENTION_CORES = {"sdsa": ("sdsa", False), "softmax": ("softmax", False),
                   "sdsa_mean": ("mean", False), "sdsa_shift": ("mean", True),
                   "sdsa_decay": ("decay", False), "sdsa_decay_shift": ("decay", True),
                   "spike_matrix": ("matrix", False), "spike_matrix_shift": ("matrix", True),
                   "spike_matrix_decay": ("matrix_decay", False),
                   "spike_matrix_decay_shift": ("matrix_decay", True),
                   "spike_matrix_running": ("running", False), "hybrid": ("hybrid", False),
                   "hybrid_shift": ("hybrid", True), "hybrid_relu": ("hybrid_relu", False),
                   "softmax_shift": ("softmax", True)}


# how many spikes each rate of attention_rates is a product of: a unit of mean value is D or
# D^2 events with spike_levels D
PRODUCTS = {"kv": 2, "qk": 2, "kv_outer": 2, "q": 1, "k": 1, "v_pairs": 1, "prev": 1}


def _core(name):
    if name not in ATTENTION_CORES:
        raise ValueError(f"attention={name!r} has no energy accounting: choose one of "
                         f"{sorted(ATTENTION_CORES)}")
    return ATTENTION_CORES[name]


def attention_core_ops(name, n_batch, n_tok, n_embd, n_head=1, rates=None) -> list:
    """The arithmetic of one attention core for one timestep, as rows (causal, as the models).

    Each row is {"op", "kind", "ops", "rate", "spikes"}: kind "ac" is an addition, done only
    where a spike arrived (ops x rate happen, rate the mean spike value in [0, 1]; "spikes" = 1
    where one spike triggers it, 2 where a coincidence of two does (K AND V, Q AND K), so with
    spike_levels D EnergyReport charges D x rate or D^2 x rate events; rate 1.0 and spikes 0:
    adds of counts or weights, every one done);
    "mac" a real multiplication (with its add), rate None; "exp" an exponential (counted, not
    costed: the 45 nm table has none). With n = B L tokens, P = B L (L + 1) / 2 causal pairs,
    D = n_embd, H heads of d_h = D / H:
        sdsa      kv_sum: n D AC at rate(K AND V)
        mean      kv_sum as SDSA; scale: n D MAC (a / (l + 1), which could fold into SN's threshold)
        decay     kv_sum; decay: n D MAC (lambda s, the running form); scale: n D MAC
        matrix    scores: P D AC at rate(Q AND K over pairs); score_sum: P H AC;
                  mix: P D AC at rate(V over pairs); divide: n D MAC
        matrix_decay  as matrix, and decay: P H MAC (each score times lambda^(l - j)); the
                  carried state's form would pay n (H d_h^2 + D) MAC instead, more at L = 128
        running   state: n H d_h^2 AC at rate(K_i AND V_j); key_sum: n D AC at rate(K);
                  read: n H d_h^2 AC at rate(Q); den: n D AC at rate(Q); divide: n D MAC
        hybrid    scores: P D MAC; exp: P H; score_sum: P H AC; mix: P D AC at rate(V over
                  pairs); divide: n D MAC     (hybrid_relu: no exp; softmax: mix is P D MAC)
        *_shift   k_shift, v_shift: n D^2 AC at rate(previous token's input spikes), the second
                  product of x_k W_K = x (mu W_K) + x[l-1] ((1 - mu) W_K); "ann_ops" 2 n D:
                  the ANN mixes x_k = mu x + (1 - mu) x[l-1] and keeps one product
    rates: {"kv", "qk", "v_pairs", "kv_outer", "q", "k", "prev"} as measured by
    attention_rates (a missing key counts every operation, rate 1.0); the softmax scale
    1 / sqrt(d_h) folds into W_Q and is not counted.
    """
    core, shift = _core(name)
    for arg, v in (("n_batch", n_batch), ("n_tok", n_tok), ("n_embd", n_embd),
                   ("n_head", n_head)):
        check_range(arg, v, 1, kind=int)
    if n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} is invalid: it must be divisible by n_head={n_head}")
    rates = rates or {}
    n, d, h, hd = n_batch * n_tok, n_embd, n_head, n_embd // n_head
    pairs = n_batch * n_tok * (n_tok + 1) // 2

    def ac(op, ops, key=None):
        return {"op": op, "kind": "ac", "ops": ops, "rate": 1.0 if key is None
                else float(rates.get(key, 1.0)), "spikes": 0 if key is None else PRODUCTS[key]}

    def mac(op, ops):
        return {"op": op, "kind": "mac", "ops": ops, "rate": None}

    rows = {"sdsa": lambda: [ac("kv_sum", n * d, "kv")],
            "mean": lambda: [ac("kv_sum", n * d, "kv"), mac("scale", n * d)],
            "decay": lambda: [ac("kv_sum", n * d, "kv"), mac("decay", n * d),
                              mac("scale", n * d)],
            "matrix": lambda: [ac("scores", pairs * d, "qk"), ac("score_sum", pairs * h),
                               ac("mix", pairs * d, "v_pairs"), mac("divide", n * d)],
            "matrix_decay": lambda: [ac("scores", pairs * d, "qk"), mac("decay", pairs * h),
                                     ac("score_sum", pairs * h), ac("mix", pairs * d, "v_pairs"),
                                     mac("divide", n * d)],
            "running": lambda: [ac("state", n * h * hd * hd, "kv_outer"),
                                ac("key_sum", n * d, "k"), ac("read", n * h * hd * hd, "q"),
                                ac("den", n * d, "q"), mac("divide", n * d)],
            "hybrid": lambda: [mac("scores", pairs * d),
                               {"op": "exp", "kind": "exp", "ops": pairs * h, "rate": None},
                               ac("score_sum", pairs * h), ac("mix", pairs * d, "v_pairs"),
                               mac("divide", n * d)],
            "hybrid_relu": lambda: [mac("scores", pairs * d), ac("score_sum", pairs * h),
                                    ac("mix", pairs * d, "v_pairs"), mac("divide", n * d)],
            "softmax": lambda: [mac("scores", pairs * d),
                                {"op": "exp", "kind": "exp", "ops": pairs * h, "rate": None},
                                ac("score_sum", pairs * h), mac("mix", pairs * d),
                                mac("divide", n * d)]}[core]()
    if shift:  # an ANN mixes instead: mu x + (1 - mu) x[l-1], 2 n D multiplications each
        rows += [{**ac(op, n * d * d, "prev"), "ann_ops": 2 * n * d}
                 for op in ("k_shift", "v_shift")]
    return rows


def attention_rates(name, n_head=1, x=None, q=None, k=None, v=None) -> dict:
    """The rates attention_core_ops needs, measured exactly from one forward's spikes.

    x: the attention's input spikes, q, k, v its Q, K, V spikes, NumPy arrays (T, B, L, D)
    (None where the attention has none, e.g. hybrid's real Q and K). Each rate is the share of
    the counted operations that a spike triggers, from spike VALUES in [0, 1]: a spike j/D (a
    product (i/D)(j/D)) counts j/D (i j / D^2), so every rate stays in [0, 1] and
    EnergyReport multiplies by D (D^2 for kv, qk, kv_outer: PRODUCTS) to count events:
        kv = mean(K V);  q, k = mean(Q), mean(K);  prev = mean(x[l-1]) over l (0 at l = 0)
        qk = sum_{l' <= l} Q[l] K[l'] / (T P D),   v_pairs = sum_l' (L - l') V[l'] / (T P D)
        kv_outer = sum over tokens and heads of |K_head| |V_head| / (T n H d_h^2)
    """
    _, shift = _core(name)
    x, q, k, v = (None if a is None else np.asarray(a, dtype=np.float64) for a in (x, q, k, v))
    rates = {}
    if k is not None and v is not None:
        rates["kv"] = float(np.mean(k * v))
    for key, a in (("q", q), ("k", k)):
        if a is not None:
            rates[key] = float(np.mean(a))
    if q is not None and k is not None:  # coincidences over causal pairs, channel by channel
        n_tok = q.shape[-2]
        pairs_per_seq = n_tok * (n_tok + 1) // 2
        rates["qk"] = float(np.sum(q * np.cumsum(k, axis=-2)) / (q.size / n_tok * pairs_per_seq))
    if v is not None:
        n_tok = v.shape[-2]
        later = np.arange(n_tok, 0, -1, dtype=np.float64)[:, None]  # L - l': queries that read l'
        pairs_per_seq = n_tok * (n_tok + 1) // 2
        rates["v_pairs"] = float(np.sum(v * later) / (v.size / n_tok * pairs_per_seq))
        if k is not None:
            d = k.shape[-1]
            ks = k.reshape(*k.shape[:-1], n_head, d // n_head).sum(-1)
            vs = v.reshape(*v.shape[:-1], n_head, d // n_head).sum(-1)
            rates["kv_outer"] = float(np.sum(ks * vs) / (k.size * d / n_head))
    if x is not None and shift:
        rates["prev"] = float(np.sum(x[..., :-1, :]) / x.size)
    return rates
