"""SpikeLLM in MLX: the NumPy model's forward and parameter names, autodiff gradients, checkpoints.

Taught in: notebooks/07_mlx_port.ipynb
"""

import mlx.core as mx
import numpy as np
from mlx import nn
from mlx.utils import tree_flatten, tree_unflatten

from spike_lib.core import checkpoint_format as fmt
from spike_lib.core.blas import warn_if_slow
from spike_lib.core.config import Config, check_token_ids
from spike_lib.mlx_impl.attention import SDSA
from spike_lib.mlx_impl.blocks import Block
from spike_lib.mlx_impl.layers import Embedding, LayerNorm, Linear
from spike_lib.mlx_impl.neurons import LIF

_warned = []  # the slow-BLAS warning is given once per process


def warn_if_slow_once():
    """spike_lib.core.blas.warn_if_slow, the first time an MLX model is built in this process."""
    if not _warned:
        _warned.append(True)
        warn_if_slow()


class SpikeLLM(nn.Module):
    """Token + position embedding, direct encoding over T, blocks, readout averaged over T.

        x0[b, l] = E_tok[idx[b, l]] + E_pos[l]              (B, L, D)
        x[t] = x0 for t = 1..T  (direct encoding)           (T, B, L, D)
        x = Block_n(... Block_1(x))                         (T, B, L, D)
        h = LN_f((1 / T) sum_t x[t])                        (B, L, D)
        logits = h W_out   (W_out = E_tok^T if tie_weights) (B, L, V)
    The port of spike_lib.numpy_impl.model.SpikeLLM (Yao et al. 2024; Zhu et al. 2023): the
    same rng draws give the same weights, and tree_flatten(model.parameters()) gives the NumPy
    names ("blocks.0.attn.q_proj.W"), so checkpoints load both ways.
    """

    def __init__(self, cfg, rng=None):
        super().__init__()
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a spike_lib.core.config.Config, got {type(cfg).__name__}")
        warn_if_slow_once()
        rng = np.random.default_rng(cfg.seed) if rng is None else rng
        self.cfg = cfg
        self.num_steps = cfg.num_steps if cfg.spiking else 1
        d = cfg.n_embd
        self.tok_emb = Embedding(cfg.vocab_size, d, rng, std=d**-0.5 if cfg.tie_weights else 1.0)
        self.pos_emb = Embedding(cfg.block_size, d, rng, std=0.5)
        self.blocks = [Block(cfg, rng) for _ in range(cfg.n_layer)]
        self.ln_f = LayerNorm(d)
        if not cfg.tie_weights:
            self.lm_head = Linear(d, cfg.vocab_size, rng, bias=False)

    def check_idx(self, idx):
        """Token ids (B, L) as an mx.array, checked as the NumPy model checks them.

        An mx.array input has only its shape and dtype checked: inside mx.compile its values
        cannot be read (train_step checks the batch before the compiled step instead).
        """
        if not isinstance(idx, mx.array):
            return mx.array(check_token_ids(idx, self.cfg.block_size, self.cfg.vocab_size))
        if idx.ndim == 1:
            idx = idx[None]
        if idx.ndim != 2 or not 1 <= idx.shape[1] <= self.cfg.block_size:
            raise ValueError(f"idx must be (B, L) token ids with 1 <= L <= block_size="
                             f"{self.cfg.block_size}, got shape {tuple(idx.shape)}")
        if not mx.issubdtype(idx.dtype, mx.integer):
            raise ValueError(f"idx must hold integer token ids, got dtype {idx.dtype}")
        return idx

    def hidden(self, idx):
        """The final hidden states h = LN_f(mean_t x[t]), (B, L, D)."""
        idx = self.check_idx(idx)
        x0 = self.tok_emb(idx) + self.pos_emb(mx.arange(idx.shape[1]))  # (B, L, D)
        x = mx.broadcast_to(x0, (self.num_steps, *x0.shape))  # (T, B, L, D)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x.mean(axis=0))  # (B, L, D)

    def __call__(self, idx):
        """Logits (B, L, V) of the next token at every position of idx (B, L)."""
        h = self.hidden(idx)
        return h @ self.tok_emb.W.T if self.cfg.tie_weights else self.lm_head(h)

    def step(self, idx, state=None):
        """(logits (B, n, V), state) of new tokens idx (B, n) after those state has seen.

        Carried-state decoding (spike_lib.mlx_impl.generate.step); state=None starts anew.
        """
        from spike_lib.mlx_impl.generate import step

        return step(self, idx, state)

    def carries_state(self) -> bool:
        """True if every attention can be decoded with a carried state (see step)."""
        from spike_lib.mlx_impl.generate import supports_state

        return supports_state(self)

    # -- the NumPy Module's interface ---------------------------------------------------------
    def named_parameters(self):
        """(dotted name, array) pairs: the same names as the NumPy model's."""
        return tree_flatten(self.parameters())

    def num_params(self) -> int:
        return sum(p.size for _, p in self.named_parameters())

    def set_smooth(self, smooth=True):
        """Every neuron's spike becomes the surrogate's antiderivative (for gradient checks)."""
        for _, mod in self.named_modules():
            if isinstance(mod, LIF):
                mod.smooth = smooth
        return self

    def astype(self, dtype):
        """Cast every parameter (mx.float64 for gradient checks; float32 to train)."""
        self.set_dtype(dtype, predicate=lambda _: True)
        return self

    def state_dict(self) -> dict:
        """{dotted name: NumPy array}: what spike_lib.train.checkpoint.save_checkpoint writes."""
        return {name: np.array(p) for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict):
        """Copy arrays in by name; a missing, extra or mis-shaped tensor raises ValueError."""
        own = dict(self.named_parameters())
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(
                f"state dict does not fit this model: missing {missing}, unexpected {extra}; "
                "was it saved from a model with another config?")
        new = []
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != tuple(p.shape):
                raise ValueError(
                    f"tensor {name!r} has shape {value.shape} in the state dict but "
                    f"{tuple(p.shape)} in the model; check the config you loaded")
            new.append((name, mx.array(value).astype(p.dtype)))
        self.update(tree_unflatten(new))
        mx.eval(self.parameters())
        return self

    @classmethod
    def from_numpy(cls, np_model):
        """An MLX SpikeLLM with the config and weights of a NumPy SpikeLLM."""
        return cls(np_model.cfg).load_state_dict(np_model.state_dict())

    # -- statistics ---------------------------------------------------------------------------
    def firing_rates(self) -> dict:
        """Mean spike value per neuron per timestep of every LIF in the last (eager) forward pass
        (in [0, 1]: a spike j/D of cfg.spike_levels = D counts j/D), as the NumPy SpikeLLM."""
        rates = {}
        for name, mod in self.named_modules():
            if isinstance(mod, LIF) and mod.last_spk is not None:
                rates[name] = float(mod.last_spk.mean())
            if isinstance(mod, SDSA) and self.cfg.spiking:
                kv = mod.k_lif.last_spk * mod.v_lif.last_spk
                rates[f"{name}.kv"] = float(kv.mean())
        return rates


def load_checkpoint(path, optimizer=None):
    """(model, tokenizer, meta) of a checkpoint folder, with an MLX SpikeLLM built from config.json.

    optimizer: an MLX AdamW to receive the checkpoint's optimizer.npz (a NumPy AdamW's moments
    load too: the names are the same), so training resumes where either port stopped.
    """
    from spike_lib.tokenizers import load_tokenizer

    fmt.load_meta(path)  # a clear error for a missing or foreign folder before building
    cfg = fmt.load_config(path)  # a tokenizer of another vocabulary size is refused at load
    model, tokenizer, meta = fmt.load_into(
        path, SpikeLLM(cfg), load_tokenizer=lambda f: load_tokenizer(f, vocab_size=cfg.vocab_size))
    if optimizer is not None:
        optimizer.init(model.trainable_parameters())
        optimizer.load_state_dict(fmt.read_npz(fmt.check_folder(path) / fmt.OPTIMIZER))
    return model, tokenizer, meta


def save_checkpoint(path, model, tokenizer=None, optimizer=None, meta=None):
    """Save an MLX SpikeLLM (and its AdamW) in the shared checkpoint format."""
    return fmt.save_checkpoint(path, model, tokenizer, optimizer, meta, backend="mlx")
