"""Energy estimates the way spiking-transformer papers report them (45 nm CMOS figures).

An ANN layer does one multiply-accumulate (MAC) per weight per token; a spiking layer whose
inputs are binary spikes only *adds* a weight where a spike arrived (an accumulate, AC):
    E_ANN = FLOPs x E_MAC                    E_MAC = 4.6 pJ (32-bit float mult 3.7 + add 0.9)
    E_SNN = FLOPs x T x rate x E_AC          E_AC  = 0.9 pJ (32-bit float add)
FLOPs counts MACs of the layer for one timestep, T = num_steps, rate = spikes per input
neuron per timestep. Figures: Horowitz, "Computing's energy problem" (ISSCC 2014), used by
Spike-driven Transformer (Yao et al. 2023) and SpikeGPT (Zhu et al. 2023). They count
arithmetic only, not memory traffic, and hold for dedicated neuromorphic hardware, not a CPU.
Taught in: notebooks/02_sdsa_colors.ipynb
"""

from dataclasses import dataclass, field

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


def snn_energy_pj(flops, num_steps, firing_rate) -> float:
    check_range("flops", flops, 0)
    check_range("num_steps", num_steps, 1, kind=int)
    check_range("firing_rate", firing_rate, 0.0, 1.0)
    return flops * num_steps * firing_rate * E_AC_PJ


@dataclass
class EnergyReport:
    """Per-layer op counts and energies. Add layers with .add(); read .ann_pj, .snn_pj."""

    num_steps: int
    rows: list = field(default_factory=list)

    def add(self, name, flops, firing_rate=None):
        """firing_rate=None: the layer's input is real-valued, so it pays MACs even in an SNN."""
        snn = (ann_energy_pj(flops) * self.num_steps if firing_rate is None
               else snn_energy_pj(flops, self.num_steps, firing_rate))
        self.rows.append({"layer": name, "flops": flops, "firing_rate": firing_rate,
                          "ann_pj": ann_energy_pj(flops), "snn_pj": snn})
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
        return "\n".join(lines)


def add_arguments(parser) -> None:
    parser.add_argument("--flops", type=float, required=True, help="MACs per timestep")
    parser.add_argument("--num-steps", type=int, default=4, help="timesteps T")
    parser.add_argument("--rate", type=float, required=True, help="input firing rate in [0, 1]")


def run(args) -> dict:
    ann = ann_energy_pj(args.flops)
    snn = snn_energy_pj(args.flops, args.num_steps, args.rate)
    return {"ann_pj": ann, "snn_pj": snn, "ratio": snn / ann if ann else float("nan")}


def forward_macs(cfg, n_batch, n_tok) -> int:
    """Multiply-accumulates of the matmuls of one forward pass over n_batch x n_tok tokens.

    Per timestep and token: 4 D^2 (Q, K, V, O) + 2 D d_ff (MLP) per block; softmax attention adds
    2 L^2 D per sequence (Q K^T and A V, the masked half included). The readout (D V per token)
    runs once. The twin runs T = 1. SDSA's attention core has no MACs.
    """
    t = cfg.num_steps if cfg.spiking else 1
    n, d = n_batch * n_tok, cfg.n_embd
    per_block = n * (4 * d * d + 2 * d * cfg.d_ff)
    if cfg.attention == "softmax":
        per_block += 2 * n_batch * n_tok * n_tok * d
    return t * cfg.n_layer * per_block + n * d * cfg.vocab_size


def train_step_flops(cfg, batch, n_tok=None) -> int:
    """Model FLOPs of one training step: forward 2 x MACs plus backward 4 x MACs = 6 x MACs.

    batch: sequences per step; n_tok: tokens per sequence (default cfg.block_size). Elementwise
    work (LIF, LayerNorm, the cumulative sums) is not counted: it is what the step pays on top.
    """
    return 6 * forward_macs(cfg, batch, cfg.block_size if n_tok is None else n_tok)
