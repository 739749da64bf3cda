"""SpikeLLM in NumPy: a causal spike-driven language model with a hand-written backward pass.

Taught in: notebooks/05_spikellm_forward.ipynb (forward), notebooks/06_spikellm_training.ipynb
"""

import numpy as np

from spike_lib.core.config import Config, check_token_ids
from spike_lib.core.energy import (  # noqa: F401 - forward_macs, train_step_flops stay here
    ATTENTION_CORES,
    EnergyReport,
    attention_core_ops,
    attention_rates,
    forward_macs,
    linear_flops,
    train_step_flops,
)
from spike_lib.numpy_impl.attention import SDSA
from spike_lib.numpy_impl.blocks import Block
from spike_lib.numpy_impl.layers import Embedding, LayerNorm, Linear
from spike_lib.numpy_impl.module import Module
from spike_lib.numpy_impl.neurons import LIF


class SpikeLLM(Module):
    """Token + position embedding, direct encoding over T, blocks, readout averaged over T.

        x0[b, l] = E_tok[idx[b, l]] + E_pos[l]              (B, L, D)
        x[t] = x0 for t = 1..T  (direct encoding)           (T, B, L, D)
        x = Block_n(... Block_1(x))                         (T, B, L, D)
        h = LN_f((1 / T) sum_t x[t])                        (B, L, D)
        logits = h W_out   (W_out = E_tok^T if tie_weights) (B, L, V)
    Every block is causal (SDSA with a cumulative sum over positions, or masked softmax), so
    logits[:, l] depend on idx[:, :l + 1] only. With cfg.spiking False (the non-spiking twin)
    every neuron is a smooth stateless function, all timesteps would be equal, and the model
    runs T = 1. Built on Spike-driven Transformer V2 (Yao et al. 2024) and SpikeGPT (Zhu et
    al. 2023).
    """

    def __init__(self, cfg, rng=None):
        super().__init__()
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a spike_lib.core.config.Config, got {type(cfg).__name__}")
        rng = np.random.default_rng(cfg.seed) if rng is None else rng
        self.cfg = cfg
        self.num_steps = cfg.num_steps if cfg.spiking else 1
        d = cfg.n_embd
        # a tied readout reads logits = h E^T with h of unit variance: keep E small then
        self.add_module("tok_emb", Embedding(cfg.vocab_size, d, rng,
                                             std=d**-0.5 if cfg.tie_weights else 1.0))
        self.add_module("pos_emb", Embedding(cfg.block_size, d, rng, std=0.5))
        self.blocks = [self.add_module(f"blocks.{i}", Block(cfg, rng)) for i in range(cfg.n_layer)]
        self.add_module("ln_f", LayerNorm(d))
        if not cfg.tie_weights:
            self.add_module("lm_head", Linear(d, cfg.vocab_size, rng, bias=False))

    def train(self, mode=True):
        """Dropout on (mode=True) or off; returns self."""
        for _, mod in self.named_modules():
            if hasattr(mod, "training"):
                mod.training = mode
        return self

    def check_idx(self, idx):
        return check_token_ids(idx, self.cfg.block_size, self.cfg.vocab_size)

    def hidden(self, idx):
        """The final hidden states h = LN_f(mean_t x[t]), (B, L, D); caches for backward."""
        idx = self.check_idx(idx)
        m = self.modules
        x0 = m["tok_emb"](idx) + m["pos_emb"](np.arange(idx.shape[1]))  # (B, L, D)
        x = np.broadcast_to(x0, (self.num_steps,) + x0.shape)  # (T, B, L, D), no copy
        for block in self.blocks:
            x = block(x)  # (T, B, L, D)
        return m["ln_f"](x.mean(axis=0))  # (B, L, D)

    def forward(self, idx):
        """Logits (B, L, V) of the next token at every position of idx (B, L)."""
        h = self.hidden(idx)
        if self.cfg.tie_weights:
            self.h = h
            return h @ self.modules["tok_emb"].params["W"].T
        return self.modules["lm_head"](h)

    def step(self, idx, state=None):
        """(logits (B, n, V), state) of new tokens idx (B, n) after those state has seen.

        Carried-state decoding (spike_lib.numpy_impl.generate.step); state=None starts anew.
        """
        from spike_lib.numpy_impl.generate import step

        return step(self, idx, state)

    def carries_state(self) -> bool:
        """True if every attention can be decoded with a carried state (see step)."""
        from spike_lib.numpy_impl.generate import supports_state

        return supports_state(self)

    def backward(self, dlogits):
        """Accumulate every parameter's gradient from dL/dlogits (B, L, V); returns None."""
        m = self.modules
        if self.cfg.tie_weights:
            emb = m["tok_emb"]
            v, d = emb.params["W"].shape
            emb.grads["W"] += dlogits.reshape(-1, v).T @ self.h.reshape(-1, d)
            dh = dlogits @ emb.params["W"]
        else:
            dh = m["lm_head"].backward(dlogits)
        dxm = m["ln_f"].backward(dh) / self.num_steps  # (B, L, D), the mean over T
        dx = np.broadcast_to(dxm, (self.num_steps,) + dxm.shape)  # (T, B, L, D)
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        dx0 = dx.sum(axis=0)  # direct encoding: the same x0 at every step
        m["tok_emb"].backward(dx0)
        m["pos_emb"].backward(dx0.sum(axis=0))

    # -- statistics --------------------------------------------------------------------------
    def firing_rates(self) -> dict:
        """Mean spike VALUE per neuron per timestep of every LIF in the last forward pass ({}
        for the twin), in [0, 1]: spikes per neuron per step for binary spikes; a spike j/D of
        cfg.spike_levels = D counts j/D (energy_report charges D x rate accumulates).

        Besides the neurons, "<block>.attn.kv" is the rate of K AND V and "<block>.attn.out_in"
        the rate of Q * SN(.), the spikes entering the output projection (products of two
        spikes, also in [0, 1]: D^2 x rate events).
        """
        rates = {}
        for name, mod in self.named_modules():
            if isinstance(mod, LIF) and mod.last_spk is not None:
                rates[name] = float(mod.last_spk.mean())
            if isinstance(mod, SDSA) and self.cfg.spiking:
                kv = mod.modules["k_lif"].last_spk * mod.modules["v_lif"].last_spk
                rates[f"{name}.kv"] = float(kv.mean())
                rates[f"{name}.out_in"] = float(mod.modules["out_proj"].x.mean())
        return rates

    def energy_report(self, n_batch, n_tok) -> EnergyReport:
        """Op counts and 45 nm energy of the last forward pass over n_batch x n_tok tokens.

        A Linear fed spikes pays one accumulate (0.9 pJ) per spike and weight (j of them for a
        spike j/D: D x the mean spike value; D^2 x for the products K V and Q SN(.)); one fed real
        values pays a MAC (4.6 pJ) per weight. SDSA's K*V sum counts one addition per K AND V
        spike; softmax attention pays 2 L^2 D MACs per sequence and step; the attentions of
        spike_lib.numpy_impl.context_attention report their core with
        spike_lib.core.energy.attention_core_ops (accumulates at measured rates, MACs, exps). The readout runs once
        on the mean over T, so its SNN energy is charged once, not T times. LayerNorm, the
        embedding lookup and residual adds are not counted (as in the papers).
        """
        cfg, rates = self.cfg, self.firing_rates()
        n, d = n_batch * n_tok, cfg.n_embd
        rep = EnergyReport(num_steps=self.num_steps, spike_levels=cfg.spike_levels)

        def rate(name):
            return rates.get(name) if cfg.spiking else None

        for i in range(cfg.n_layer):
            b = f"blocks.{i}"
            for p in ("q", "k", "v"):
                rep.add(f"{b}.attn.{p}_proj", linear_flops(d, d, n), rate(f"{b}.sn1"))
            if cfg.attention == "sdsa":
                rep.add(f"{b}.attn.kv_sum", n * d, rate(f"{b}.attn.kv"), spikes=2)  # K V
                rep.add(f"{b}.attn.out_proj", linear_flops(d, d, n), rate(f"{b}.attn.out_in"),
                        spikes=2)  # Q * SN(.)
            elif cfg.attention in ATTENTION_CORES and cfg.attention != "softmax":  # issue 13
                attn = self.blocks[i].modules["attn"]
                core_rates = (attention_rates(cfg.attention, cfg.n_head, **attn.last_spikes())
                              if cfg.spiking else {})
                rep.add_attention(f"{b}.attn", attention_core_ops(
                    cfg.attention, n_batch, n_tok, d, cfg.n_head, core_rates), cfg.spiking)
                spikes_out = cfg.spiking and cfg.attention != "softmax_shift"  # real A V there
                out_rate = float(attn.modules["out_proj"].x.mean()) if spikes_out else None
                # Q * SN(gate) for the SDSA gates (two spikes), SN_attn(.) alone otherwise
                gated = ATTENTION_CORES[cfg.attention][0] in ("mean", "decay")
                rep.add(f"{b}.attn.out_proj", linear_flops(d, d, n), out_rate,
                        spikes=2 if gated else 1)
            else:
                rep.add(f"{b}.attn.qk_av", 2 * n_batch * n_tok * n_tok * d, None)
                rep.add(f"{b}.attn.out_proj", linear_flops(d, d, n), None)
            rep.add(f"{b}.fc1", linear_flops(d, cfg.d_ff, n), rate(f"{b}.sn2"))
            rep.add(f"{b}.fc2", linear_flops(cfg.d_ff, d, n), rate(f"{b}.sn_hidden"))
        rep.add("lm_head", linear_flops(d, cfg.vocab_size, n), None)
        rep.rows[-1]["snn_pj"] = rep.rows[-1]["ann_pj"]  # once, on the mean over T
        return rep
