"""Probes of context use: sliding-window evaluation (context gain), perturbation KL, gate statistics.

Any model that maps token ids (B, L) to next-token logits (B, L, V) and has cfg.block_size and
cfg.vocab_size can be probed: a SpikeLLM, its twins, or a count n-gram (baselines.NGramModel).
Taught in: notebooks/05b_spikellm_context.ipynb
"""

import math

import numpy as np

GATE_ON = 0.5  # a gate entry is "on" above this: spikes are 0/1 (or j/D), the twin's in (0, 1)
SATURATED = 1e-3  # a position is saturated when fewer than this fraction of gate entries change


def log_softmax(logits):
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _nll(model, rows, targets, batch_rows, last_only=False):
    """-log p(target) for rows (R, m): (R, m) at every position, or (R,) at the last one only."""
    out = []
    for b in range(0, len(rows), batch_rows):
        lp = log_softmax(np.asarray(model(rows[b: b + batch_rows]), dtype=np.float64))
        if last_only:
            lp = lp[:, -1]
        out.append(-np.take_along_axis(lp, targets[b: b + batch_rows, ..., None], -1)[..., 0])
    return np.concatenate(out)


def evaluate_context(model, ids, context_tokens=None, n_chars=None, batch_size=16,
                     per_window=False) -> dict:
    """`evaluate`'s numbers when each prediction sees at most context_tokens previous tokens.

    eval's windows of L = block_size tokens give target ids[i] the tokens ids[s .. i - 1] of its
    window (s = L floor((i - 1) / L)). Here it reads only the last N = context_tokens of them:
    targets with i - s <= N come from a forward pass over the first N tokens of their window,
    the others each from their own window ids[i - N .. i - 1] (a sliding window, which starts
    again at position 0, as `generate` does past block_size). N >= L (or None) is `evaluate`.
    per_window=True adds "window_nats": the nats of each of eval's windows (window_nats's
    order), so a context gain can be bootstrapped over the same windows as the full context.
    """
    from spike_lib.core.config import check_range
    from spike_lib.core.scoring import as_ids, bits_per_char, evaluate

    n_ctx = model.cfg.block_size
    if context_tokens is None or context_tokens >= n_ctx:
        out = evaluate(model, ids, n_chars=n_chars, batch_size=batch_size)
        if per_window:
            out["window_nats"] = window_nats(model, ids, batch_size)[0]
        return out
    check_range("context_tokens", context_tokens, 1, kind=int)
    ids = as_ids(ids, model.cfg.vocab_size)
    if len(ids) < 2:
        raise ValueError("evaluate_context needs at least 2 tokens: one to read, one to predict")
    big = context_tokens
    model.train(False)
    nats = np.zeros(len(ids))  # nats[i]: the cost of target ids[i] (i >= 1)
    starts = np.arange(0, len(ids) - 1, n_ctx)
    prefix = np.minimum(big, len(ids) - 1 - starts)  # targets of each window within N tokens
    for m in np.unique(prefix):  # the first m tokens of each window (the last may be shorter)
        rows = starts[prefix == m][:, None] + np.arange(m)
        nats[rows + 1] = _nll(model, ids[rows], ids[rows + 1], batch_size * n_ctx // m)
    i = np.arange(1, len(ids))
    far = i[i - ((i - 1) // n_ctx) * n_ctx > big]  # targets that read more than N tokens in eval
    if far.size:
        rows = far[:, None] - big + np.arange(big)  # ids[i - N .. i - 1]
        nats[far] = _nll(model, ids[rows], ids[far], batch_size * n_ctx // big, last_only=True)
    total, count = float(nats.sum()), len(ids) - 1
    loss = total / count
    out = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
           "bits_per_token": loss / math.log(2), "total_nats": total, "n_tokens": count}
    if n_chars is not None:
        out["bpc"] = bits_per_char(total, n_chars)
    if per_window:
        out["window_nats"] = np.bincount((i - 1) // n_ctx, weights=nats[1:])
    return out


def context_gain(model, ids, n_chars, context_tokens=8, batch_size=16) -> dict:
    """{bpc_full, bpc_short, gain = bpc_short - bpc_full}: the BPC that context beyond N buys."""
    full = evaluate_context(model, ids, None, n_chars, batch_size)["bpc"]
    short = evaluate_context(model, ids, context_tokens, n_chars, batch_size)["bpc"]
    return {"context_tokens": context_tokens, "bpc_full": full, "bpc_short": short,
            "gain": short - full}


def eval_windows(ids, block_size, n_windows):
    """The first n_windows full windows of eval's protocol, (n_windows, block_size)."""
    ids = np.asarray(ids)
    n = min(n_windows, (len(ids) - 1) // block_size)
    if n < 1:
        raise ValueError(f"need at least {block_size + 1} tokens for one window, got {len(ids)}")
    return ids[np.arange(n)[:, None] * block_size + np.arange(block_size)]


def replacements(rows, rng, vocab_size=None):
    """A token for every entry of rows, never equal to it: drawn from the tokens of rows (their
    unigram distribution), or uniformly from range(vocab_size) when vocab_size is given."""
    pool = rows.ravel() if vocab_size is None else np.arange(vocab_size)
    if np.unique(pool).size < 2:
        raise ValueError("there is one distinct token: nothing to replace it with")
    out = pool[rng.integers(0, pool.size, rows.shape)]
    while np.any(same := out == rows):
        out[same] = pool[rng.integers(0, pool.size, int(same.sum()))]
    return out


def perturbation_kl(model, rows, positions=None, rng=None, replace="text") -> dict:
    """Mean KL(p || p') in nats of the next-token distribution at position j + 1 when input
    token j is replaced, for each j in positions: by another token of the windows
    (replace="text") or by a uniformly drawn token of the vocabulary (replace="uniform").

    rows: (B, L) windows. p is the model's distribution at j + 1 on the original window, p' on
    the changed one (only the first j + 2 tokens are run: the model is causal). A model that
    reads only its current token (a bigram) gives 0; one that reads token j gives more.
    """
    rows = np.asarray(rows)
    rng = np.random.default_rng(0) if rng is None else rng
    n_tok = rows.shape[1]
    positions = np.arange(n_tok - 1) if positions is None else np.asarray(positions)
    if positions.size and (positions.min() < 0 or positions.max() > n_tok - 2):
        raise ValueError(f"positions must lie in [0, {n_tok - 2}] for windows of {n_tok} tokens")
    from spike_lib.core.config import check_choice

    check_choice("replace", replace, ["text", "uniform"])
    model.train(False)
    repl = replacements(rows, rng, None if replace == "text" else model.cfg.vocab_size)
    lp = log_softmax(np.asarray(model(rows), dtype=np.float64))  # (B, L, V)
    kls = []
    for j in positions:
        x = rows[:, : j + 2].copy()
        x[:, j] = repl[:, j]
        lq = log_softmax(np.asarray(model(x), dtype=np.float64))[:, j + 1]
        p = lp[:, j + 1]
        kls.append(float((np.exp(p) * (p - lq)).sum(axis=-1).mean()))
    return {"position": positions.tolist(), "kl": kls, "replace": replace}


def _gates(model):
    """{attention name: its gate SN(.) (T, B, L, D)} from the model's last forward pass: the
    output of the `attn_lif` neuron of SDSA and its variants (spikes, or the twin's smooth gate)."""
    from spike_lib.numpy_impl.attention import merge_heads

    out = {}
    for name, mod in model.named_modules():
        if not type(mod).__name__.endswith("SDSA"):  # SDSA, MeanSDSA, DecaySDSA: gated Q
            continue
        neuron = mod.modules["attn_lif"]
        if getattr(neuron, "last_spk", None) is not None:
            gate = neuron.last_spk
        elif getattr(neuron, "x", None) is not None:  # SmoothGate keeps its input
            gate = neuron.surrogate.smooth(neuron.x - neuron.threshold)
        else:
            continue
        out[name] = merge_heads(gate) if gate.ndim == 5 else gate  # (T, B, L, D)
    return out


def _dead_inputs(mod) -> dict:
    """Fraction of channels of Q, K, V and K AND V that never spiked in the last forward pass."""
    spk = {n: getattr(mod.modules.get(f"{n}_lif"), "last_spk", None) for n in "qkv"}
    if any(v is None for v in spk.values()):
        return {}
    spk["kv"] = spk["k"] * spk["v"]
    return {n: float((~(a > GATE_ON).any(axis=tuple(range(a.ndim - 1)))).mean())
            for n, a in spk.items()}


def gate_statistics(model, rows) -> dict:
    """How the attention gate SN(sum_{l' <= l} K AND V) moves along the positions of rows.

    For every SDSA-like attention (SDSA, MeanSDSA, DecaySDSA) after model(rows): `on`, the
    fraction of gate entries above GATE_ON at each position; `changed`, the fraction whose on/off
    state differs from the position before (positions 1 .. L-1); `dead`, the fraction of channels
    never on at any timestep, window or position; `saturated_from`, the first position after
    which fewer than SATURATED of the entries change (None if none); `mean_abs_change`, the mean
    |g[l] - g[l - 1]| (the twin's smooth gate moves without flipping); `dead_inputs`, the
    fraction of channels of Q, K, V and K AND V that never fire (spiking models).
    """
    model.train(False)
    model(np.asarray(rows))
    gates = _gates(model)
    if not gates:
        raise ValueError("the model has no SDSA gate to inspect (softmax attention has none)")
    blocks = {}
    mods = dict(model.named_modules())
    for name, g in gates.items():
        on = g > GATE_ON  # (T, B, L, D)
        changed = (on[:, :, 1:] != on[:, :, :-1]).mean(axis=(0, 1, 3))  # (L - 1,)
        still = np.flatnonzero(changed >= SATURATED)
        sat = int(still[-1]) + 2 if still.size else 1
        blocks[name] = {
            "on": on.mean(axis=(0, 1, 3)).tolist(),
            "changed": changed.tolist(),
            "mean_abs_change": np.abs(np.diff(g, axis=2)).mean(axis=(0, 1, 3)).tolist(),
            "dead": float((~on.any(axis=(0, 1, 2))).mean()),
            "saturated_from": sat if sat < g.shape[2] else None,
            "dead_inputs": _dead_inputs(mods[name]),
        }
    return blocks


def probe_report(model, tok, ids, context_tokens=8, n_windows=16, positions=None,
                 batch_size=16, seed=0) -> dict:
    """All three probes of one model on held-out ids: what `python -m spike_lib probe` prints.

    context gain on every token of ids; perturbation KL and gate statistics on the first
    n_windows windows of block_size tokens (replacement tokens drawn with default_rng(seed)).
    """
    n_chars = max(1, len(tok.decode(np.asarray(ids[1:]).tolist())))
    out = {"tokens": int(len(ids) - 1), "chars": n_chars,
           **context_gain(model, ids, n_chars, context_tokens, batch_size)}
    rows = eval_windows(ids, model.cfg.block_size, n_windows)
    out["kl"] = perturbation_kl(model, rows, positions, np.random.default_rng(seed))
    try:
        out["gates"] = gate_statistics(model, rows)
    except ValueError:  # no SDSA gate (softmax attention, an n-gram)
        out["gates"] = None
    return out


def summary(report) -> dict:
    """The headline numbers of a probe_report: gain, KL at a few positions, gate saturation."""
    kl = dict(zip(report["kl"]["position"], report["kl"]["kl"]))
    out = {"bpc_full": report["bpc_full"], "bpc_short": report["bpc_short"],
           "context_gain": report["gain"], "context_tokens": report["context_tokens"]}
    for j in (2, 10, 30, 60, 100):
        if j in kl:
            out[f"kl_j{j}"] = kl[j]
    if report["gates"]:
        g = report["gates"]
        out["dead_channels"] = [b["dead"] for b in g.values()]
        out["saturated_from"] = [b["saturated_from"] for b in g.values()]
        out["changed_after_32"] = float(np.mean([np.mean(b["changed"][31:]) for b in g.values()]))
    return out


# -- python -m spike_lib probe -------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder or run folder")
    parser.add_argument("--split", choices=["val", "test"], default="val",
                        help="held-out split (val)")
    parser.add_argument("--slice", choices=["mixed", "first"], default="mixed",
                        help="mixed: an equal share of every source (default); first: the "
                             "split's first tokens")
    parser.add_argument("--max-tokens", type=int, default=8192, help="tokens to predict (8192)")
    parser.add_argument("--context-tokens", type=int, default=8,
                        help="N of the context gain BPC(N) - BPC(full) (8)")
    parser.add_argument("--windows", type=int, default=16,
                        help="windows of block_size tokens for the KL and gate probes (16)")
    parser.add_argument("--out", help="also write the whole report (every position) as JSON")


def run(args) -> dict:
    from spike_lib.core.config import check_range
    from spike_lib.train.evaluation import load_for_use
    from spike_lib.train.heldout import heldout_ids

    check_range("context_tokens", args.context_tokens, 1, kind=int)
    check_range("windows", args.windows, 1, kind=int)
    model, tok, _ = load_for_use(args.checkpoint)
    ids = heldout_ids(tok, args.max_tokens, args.split, args.slice)
    report = probe_report(model, tok, ids, args.context_tokens, args.windows)
    report["summary"] = summary(report)
    if args.out:
        from spike_lib.core.atomic import write_json

        write_json(args.out, report)
    return report["summary"]


# -- the noise level of a BPC difference ---------------------------------------------------------
def window_nats(model, ids, batch_size=16):
    """(nats, first, last) of each of `evaluate`'s windows: window w predicts ids[first[w] + 1 ..
    last[w]] and pays nats[w] for them."""
    from spike_lib.core.scoring import as_ids

    ids = as_ids(ids, model.cfg.vocab_size)
    n_ctx = model.cfg.block_size
    starts = np.arange(0, len(ids) - 1, n_ctx)
    ends = np.minimum(starts + n_ctx, len(ids) - 1)
    model.train(False)
    nats = np.zeros(len(starts))
    for m in np.unique(ends - starts):  # full windows batched, then the shorter last one
        sel = np.flatnonzero(ends - starts == m)
        for b in range(0, sel.size, batch_size):
            rows = starts[sel[b: b + batch_size], None] + np.arange(m)
            lp = log_softmax(np.asarray(model(ids[rows]), dtype=np.float64))
            nats[sel[b: b + batch_size]] = -np.take_along_axis(
                lp, ids[rows + 1][..., None], -1)[..., 0].sum(axis=1)
    return nats, starts, ends


def paired_gap(model_a, model_b, tok, ids, n_boot=2000, seed=0, batch_size=16) -> dict:
    """BPC(a) - BPC(b) on the same windows of ids, and its noise level: the standard error of a
    paired bootstrap over windows (resampled with default_rng(seed)). The noise of the
    evaluation sample only: two training seeds can differ by more."""
    na, starts, ends = window_nats(model_a, ids, batch_size)
    nb, _, _ = window_nats(model_b, ids, batch_size)
    ids = np.asarray(ids)
    chars = np.array([len(tok.decode(ids[s + 1: e + 1].tolist())) for s, e in zip(starts, ends)])
    diff = na - nb
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, diff.size, (n_boot, diff.size))
    boot = diff[pick].sum(axis=1) / (math.log(2) * chars[pick].sum(axis=1))
    return {"gap": float(diff.sum() / (math.log(2) * chars.sum())),
            "se": float(boot.std(ddof=1)), "windows": int(diff.size)}
