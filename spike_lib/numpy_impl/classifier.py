"""A character-level spike-driven transformer classifier (and its softmax twin), with training.

Taught in: notebooks/02_sdsa_colors.ipynb
"""

import numpy as np

from spike_lib.core.config import Config, check_range
from spike_lib.core.energy import EnergyReport, linear_flops
from spike_lib.numpy_impl.attention import SDSA, SoftmaxAttention
from spike_lib.numpy_impl.layers import GELU, Dropout, Embedding, Linear, cross_entropy
from spike_lib.numpy_impl.module import Module
from spike_lib.numpy_impl.neurons import LIF
from spike_lib.numpy_impl.optim import AdamW, clip_grad_norm, cosine_lr


def make_activation(cfg, kind="in"):
    """A LIF layer with cfg.thresholds()[kind] and cfg.spike_levels when cfg.spiking, else GELU
    (the smooth twin)."""
    if not cfg.spiking:
        return GELU()
    return LIF(cfg.beta, cfg.thresholds()[kind], cfg.reset, cfg.surrogate, cfg.surrogate_scale,
               cfg.detach_reset, cfg.spike_levels)


class Block(Module):
    """Pre-activation block with membrane shortcuts (Spike-driven Transformer V2, Yao et al. 2024):

        x = x + Attn(SN(x))                    Attn = SDSA or softmax attention
        x = x + W_2 SN(W_1 SN(x))              the MLP
    SN is LIF (spiking) or GELU (non-spiking). The residual stream x carries real values
    (membrane potentials), never spikes, so adding two branches is never a spike count > 1.
    Non-spiking SDSA: Q, K, V and SN(.) are the soft steps G(u - threshold) of the surrogate.
    """

    def __init__(self, cfg, rng, causal=False):
        super().__init__()
        self.add_module("act1", make_activation(cfg))
        if cfg.attention == "sdsa":
            # the non-spiking SDSA keeps the formula with each spike H(u - threshold) replaced
            # by the surrogate's soft step G(u - threshold) in (0, 1): smooth mode, one step
            attn = SDSA.from_config(cfg, rng, causal=causal).set_smooth(not cfg.spiking)
        else:
            attn = SoftmaxAttention.from_config(cfg, rng, causal=causal)
        self.add_module("attn", attn)
        self.add_module("act2", make_activation(cfg))
        self.add_module("fc1", Linear(cfg.n_embd, cfg.d_ff, rng))
        self.add_module("act_mlp", make_activation(cfg, "hidden"))
        self.add_module("fc2", Linear(cfg.d_ff, cfg.n_embd, rng))

    def forward(self, x, mask=None):
        m = self.modules
        x = x + m["attn"](m["act1"](x), mask)  # (T, B, L, D)
        return x + m["fc2"](m["act_mlp"](m["fc1"](m["act2"](x))))

    def backward(self, dx):
        m = self.modules
        dh = m["act2"].backward(m["fc1"].backward(m["act_mlp"].backward(m["fc2"].backward(dx))))
        dx = dx + dh
        return dx + m["act1"].backward(m["attn"].backward(dx))


class SpikeClassifier(Module):
    """Token + position embedding, direct encoding over T, blocks, masked mean, linear head.

        x0 = E_tok[c_l] + E_pos[l];  x[t] = x0 for t = 1..T       (B, L, D) -> (T, B, L, D)
        z = W_h (1 / (T n)) sum_t sum_{l real} x_L[t, l]          n = real characters
    With cfg.spiking False the model runs one step (T = 1): without spikes every step is equal;
    SDSA then uses soft steps in (0, 1) where the spiking model has spikes (see Block).
    Architecture after the Spike-driven Transformer (Yao et al. 2023; V2, Yao et al. 2024).
    """

    def __init__(self, cfg, n_classes, rng):
        super().__init__()
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a spike_lib.core.config.Config, got {type(cfg).__name__}")
        check_range("n_classes", n_classes, 2, kind=int)
        if cfg.mem_clamp is not None:
            raise ValueError(f"mem_clamp={cfg.mem_clamp}: the classifier's LIFs have no clamp; "
                             "leave mem_clamp=None")
        self.cfg, self.n_classes = cfg, n_classes
        self.num_steps = cfg.num_steps if cfg.spiking else 1
        self.add_module("tok_emb", Embedding(cfg.vocab_size, cfg.n_embd, rng))
        self.add_module("pos_emb", Embedding(cfg.block_size, cfg.n_embd, rng, std=0.5))
        for i in range(cfg.n_layer):
            self.add_module(f"block{i}", Block(cfg, rng))
        self.add_module("drop", Dropout(cfg.dropout, rng))
        self.add_module("head", Linear(cfg.n_embd, n_classes, rng))

    def train(self, mode=True):
        self.modules["drop"].training = mode
        return self

    def forward(self, idx, mask=None):
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"idx must be (B, L) with L <= block_size={self.cfg.block_size}, "
                             f"got shape {idx.shape}")
        mask = np.ones(idx.shape, bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != idx.shape or not mask.any(axis=1).all():
            raise ValueError("mask must have idx's shape (B, L) and at least one True per row")
        n_tok = int(np.flatnonzero(mask.any(axis=0))[-1]) + 1  # drop all-padding tail columns:
        idx, mask = idx[:, :n_tok], mask[:, :n_tok]  # exact (padding is masked), and cheaper
        m = self.modules
        x0 = m["tok_emb"](idx) + m["pos_emb"](np.arange(n_tok))  # (B, L, D)
        x = np.broadcast_to(x0, (self.num_steps,) + x0.shape).copy()  # (T, B, L, D)
        for i in range(self.cfg.n_layer):
            x = m[f"block{i}"](x, mask)
        self.mask = mask
        self.w = mask / mask.sum(axis=1, keepdims=True) / self.num_steps  # (B, L) pooling weights
        pooled = np.einsum("tbld,bl->bd", x, self.w.astype(x.dtype))  # (B, D)
        return m["head"](m["drop"](pooled))  # (B, n_classes)

    def backward(self, dlogits):
        m = self.modules
        dpooled = m["drop"].backward(m["head"].backward(dlogits))  # (B, D)
        dx = dpooled[None, :, None, :] * self.w[None, :, :, None].astype(dpooled.dtype)
        dx = np.broadcast_to(dx, (self.num_steps,) + dx.shape[1:])  # (T, B, L, D)
        for i in reversed(range(self.cfg.n_layer)):
            dx = m[f"block{i}"].backward(dx)
        dx0 = dx.sum(axis=0)  # direct encoding: the same x0 fed at every step
        m["tok_emb"].backward(dx0)
        m["pos_emb"].backward(dx0.sum(axis=0))

    # -- statistics --------------------------------------------------------------------------
    def _masked_rate(self, spk):
        """Mean spikes per neuron per step over real tokens only (padding excluded)."""
        if spk.ndim == 4 and spk.shape[1:3] == self.mask.shape:
            w = self.mask[None, :, :, None]
            return float((spk * w).sum() / (w.sum() * spk.shape[0] * spk.shape[-1]))
        return float(spk.mean())  # e.g. SN over the token sum, which has no token axis

    def firing_rates(self) -> dict:
        """Per-layer firing rates of the last forward pass; empty for the non-spiking twin.

        Besides every LIF, "attn.kv" is the rate of K*V (K AND V) and "attn.out_in" the rate
        of Q * SN(.), the spikes that enter the output projection. A rate is the mean spike
        value, in [0, 1] (spikes j/D of cfg.spike_levels = D, and products of two, included).
        """
        rates = {}
        if not self.cfg.spiking:
            return rates  # non-spiking SDSA's neurons emit soft steps, not spikes
        for name, mod in self.named_modules():
            if isinstance(mod, LIF):
                rates[name] = self._masked_rate(mod.last_spk)
            if isinstance(mod, SDSA):
                kv = mod.modules["k_lif"].last_spk * mod.modules["v_lif"].last_spk
                rates[f"{name}.kv"] = self._masked_rate(kv)
                rates[f"{name}.out_in"] = self._masked_rate(mod.modules["out_proj"].x)
        return rates

    def energy_report(self) -> EnergyReport:
        """Op counts and energy of the last forward pass (every real token of the batch).

        A Linear fed spikes pays an accumulate (0.9 pJ) per spike x weight; one fed real
        values pays a MAC (4.6 pJ) per weight, every step. SDSA's K*V sum counts one addition
        per K AND V spike; the Q mask costs nothing. Softmax attention pays 2 L^2 D MACs per
        sequence (exps not counted). Embedding lookups and residual adds are not counted.
        """
        cfg, rates = self.cfg, self.firing_rates()
        n_tok = int(self.mask.sum())
        rep = EnergyReport(num_steps=self.num_steps, spike_levels=cfg.spike_levels)
        d = cfg.n_embd

        def rate(name):
            return rates.get(name) if cfg.spiking else None

        for i in range(cfg.n_layer):
            b = f"block{i}"
            for p in ("q", "k", "v"):
                rep.add(f"{b}.attn.{p}_proj", linear_flops(d, d, n_tok), rate(f"{b}.act1"))
            if cfg.attention == "sdsa":
                rep.add(f"{b}.attn.kv_sum", n_tok * d, rate(f"{b}.attn.kv"), spikes=2)  # K V
                rep.add(f"{b}.attn.out_proj", linear_flops(d, d, n_tok), rate(f"{b}.attn.out_in"),
                        spikes=2)  # Q * SN(.)
            else:
                sq = int((self.mask.sum(axis=1) ** 2).sum())  # sum of L^2 over sequences
                rep.add(f"{b}.attn.qk_av", 2 * sq * d, None)
                rep.add(f"{b}.attn.out_proj", linear_flops(d, d, n_tok), None)
            rep.add(f"{b}.fc1", linear_flops(d, cfg.d_ff, n_tok), rate(f"{b}.act2"))
            rep.add(f"{b}.fc2", linear_flops(cfg.d_ff, d, n_tok), rate(f"{b}.act_mlp"))
        rep.add("head", linear_flops(d, self.n_classes, self.mask.shape[0]), None)
        return rep


def batches(n, batch_size, rng):
    """Endless shuffled mini-batch index arrays over n examples (reshuffled every epoch)."""
    while True:
        perm = rng.permutation(n)
        for s in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield perm[s: s + batch_size]


def evaluate(model, idx, mask, labels, batch_size=256):
    """(accuracy, predictions) of the model on a whole split, in eval mode."""
    model.train(False)
    preds = np.concatenate([model(idx[s: s + batch_size], mask[s: s + batch_size]).argmax(1)
                            for s in range(0, len(idx), batch_size)])
    model.train(True)
    return float((preds == np.asarray(labels)).mean()), preds


def train_classifier(model, train, val=None, steps=300, batch_size=32, lr=3e-3,
                     weight_decay=0.01, warmup=20, clip=1.0, rng=None, eval_every=50,
                     lr_mult=None):
    """Train with AdamW, warmup + cosine schedule and gradient clipping.

    train, val: (idx, mask, labels) tuples. Returns a history dict of lists: step, loss,
    train_acc (of each batch), and val_step, val_acc every eval_every steps and at the end.
    """
    check_range("steps", steps, 1, kind=int)
    check_range("batch_size", batch_size, 1, kind=int)
    check_range("eval_every", eval_every, 1, kind=int)
    if not isinstance(rng, np.random.Generator):
        raise TypeError("pass rng=np.random.default_rng(seed): batches are drawn from it")
    idx, mask, labels = train
    opt = AdamW(model, lr=lr, weight_decay=weight_decay, lr_mult=lr_mult)
    hist = {"step": [], "loss": [], "train_acc": [], "val_step": [], "val_acc": []}
    stream = batches(len(idx), min(batch_size, len(idx)), rng)
    model.train(True)
    for step in range(steps):
        b = next(stream)
        logits = model(idx[b], mask[b])
        loss, dlogits = cross_entropy(logits, labels[b])
        model.zero_grad()
        model.backward(dlogits)
        if clip:
            clip_grad_norm(model, clip)
        opt.step(cosine_lr(step, lr, warmup, steps, lr * 0.1))
        hist["step"].append(step)
        hist["loss"].append(loss)
        hist["train_acc"].append(float((logits.argmax(1) == labels[b]).mean()))
        if val is not None and ((step + 1) % eval_every == 0 or step == steps - 1):
            hist["val_step"].append(step)
            hist["val_acc"].append(evaluate(model, *val)[0])
    return hist


class CharNgramNB:
    """Multinomial naive Bayes over a word's character n-grams: the simple baseline of chapter 2.

        features(w) = every n-gram of "^" + w + "$" for n in orders (single letters without
                      the boundary marks); with orders=(1,) a bag of letters
        predict(w) = argmax_c log(N_c + 1) + sum_f log((n_cf + alpha) / (n_c + alpha |F|))
    N_c: training words of class c, n_cf: count of feature f in them, n_c: all their features,
    F: every feature seen in training (an unseen feature adds the same to every class).
    """

    def __init__(self, orders=(1, 2, 3), alpha=1.0):
        if not orders or any(not isinstance(n, int) or n < 1 for n in orders):
            raise ValueError(f"orders={orders!r} is invalid: give n-gram lengths >= 1, e.g. (1, 2, 3)")
        check_range("alpha", alpha, 0.0, low_open=True)
        self.orders, self.alpha = tuple(orders), alpha

    def features(self, word) -> list:
        s = "^" + word + "$"
        return [s[i: i + n] for n in self.orders for i in range(len(s) - n + 1)
                if not (n == 1 and s[i] in "^$")]

    def fit(self, words, labels, n_classes):
        labels = np.asarray(labels)
        self.vocab = {f: i for i, f in enumerate(sorted({f for w in words for f in self.features(w)}))}
        counts = np.zeros((n_classes, len(self.vocab)))
        for w, y in zip(words, labels):
            for f in self.features(w):
                counts[y, self.vocab[f]] += 1
        self.log_prior = np.log(np.bincount(labels, minlength=n_classes) + 1.0)
        self.log_p = np.log((counts + self.alpha) / (counts.sum(1, keepdims=True)
                                                      + self.alpha * len(self.vocab)))
        return self

    def predict(self, words) -> np.ndarray:
        scores = [self.log_prior + sum((self.log_p[:, self.vocab[f]] for f in self.features(w)
                                        if f in self.vocab), np.zeros_like(self.log_prior))
                  for w in words]
        return np.argmax(scores, axis=1)
