"""Sampling text from a SpikeLLM of either backend: temperature, top-k, top-p, stops, streaming.

The model is read only through check_idx, train, cfg and model(ctx) (whose logits are converted
with np.asarray), which both ports provide. Works with any tokenizer object that has
encode(str) -> ids and decode(ids) -> str (and, optionally, eot_id: the end-of-text token,
which also starts an empty prompt).
Taught in: notebooks/06_spikellm_training.ipynb
"""

import numpy as np

from spike_lib.core.config import check_range


def sample_logits(logits, rng, temperature=1.0, top_k=None, top_p=None) -> int:
    """Draw one token id from logits (V,).

        p = softmax(logits / temperature), restricted to the top_k largest and then to the
        smallest set of most likely tokens whose probability sums to >= top_p; renormalised.
    temperature=0 is greedy (argmax), whatever top_k and top_p say.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1:
        raise ValueError(f"logits must be 1-D (V,), got shape {logits.shape}")
    check_range("temperature", temperature, 0.0)
    if top_k is not None:
        check_range("top_k", top_k, 1, kind=int)
    if top_p is not None:
        check_range("top_p", top_p, 0.0, 1.0, low_open=True)
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    if top_k is not None and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        keep_n = int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1  # first prefix >= top_p
        mask = np.zeros(p.size, bool)
        mask[order[:keep_n]] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    # rng.choice(p.size, p=p)'s own draw (cdf, one uniform, searchsorted right) without its
    # checks of p, which cost twice the rest at a 2,439-token vocabulary
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


def _start_ids(prompt_ids, bos_id):
    ids = [int(i) for i in np.asarray(prompt_ids, dtype=np.int64).reshape(-1)]
    if not ids:
        if bos_id is None:
            raise ValueError("the prompt is empty: pass bos_id (e.g. the tokenizer's eot_id) to "
                             "start from the end-of-text token, or give a prompt")
        ids = [int(bos_id)]
    return ids


def generate_ids(model, prompt_ids, max_new_tokens, rng, temperature=1.0, top_k=None,
                 top_p=None, stop_ids=(), bos_id=None, carry_state=True):
    """Yield new token ids one at a time (a generator); stops after a token in stop_ids.

    The model reads the last block_size tokens of prompt + generated. An empty prompt starts
    from [bos_id] (bos_id itself is not yielded); without bos_id it is a ValueError.
    carry_state: a model with step(idx, state) and carries_state() True (both SpikeLLMs)
    runs only the new token each time; the same tokens while the text fits in block_size,
    and a running-state model then carries on past it (spike_lib.numpy_impl.generate).
    carry_state=False re-runs the window for every token.
    """
    check_range("max_new_tokens", max_new_tokens, 0, kind=int)
    ids = _start_ids(prompt_ids, bos_id)
    model.check_idx(np.array(ids[-model.cfg.block_size:])[None])  # ids in range, fail early
    model.train(False)  # dropout off while sampling
    if carry_state and getattr(model, "carries_state", lambda: False)():
        yield from _generate_carried(model, ids, max_new_tokens, rng, temperature, top_k, top_p,
                                     stop_ids)
        return
    for _ in range(max_new_tokens):
        ctx = np.array(ids[-model.cfg.block_size:])[None]  # (1, L)
        nxt = sample_logits(model(ctx)[0, -1], rng, temperature, top_k, top_p)
        ids.append(nxt)
        yield nxt
        if nxt in stop_ids:
            return


def _generate_carried(model, ids, max_new_tokens, rng, temperature, top_k, top_p, stop_ids):
    state = None
    nxt_ids = ids[-model.cfg.block_size:]
    for _ in range(max_new_tokens):
        logits, state = model.step(np.array(nxt_ids)[None], state)
        nxt = sample_logits(np.asarray(logits)[0, -1], rng, temperature, top_k, top_p)
        nxt_ids = [nxt]
        yield nxt
        if nxt in stop_ids:
            return


def _held_back(text, stops) -> int:
    """How many trailing characters of text could still grow into a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


def stream_text(model, tokenizer, prompt="", max_new_tokens=200, rng=None, temperature=1.0,
                top_k=None, top_p=None, stop=()):
    """Yield the generated text piece by piece, as soon as each piece is certain.

    A piece is held back while it ends in an unfinished UTF-8 character (decoded as U+FFFD) or
    could be the start of a stop string. Generation ends at max_new_tokens, at the tokenizer's
    end-of-text token (not shown), or just before the first stop string (not shown).
    An empty prompt starts from the end-of-text token, i.e. the start of a new document.
    """
    if rng is None:
        raise ValueError("pass rng=np.random.default_rng(seed): sampling draws from it")
    stop = [stop] if isinstance(stop, str) else [s for s in stop if s]
    eot = getattr(tokenizer, "eot_id", None)
    prompt_ids = tokenizer.encode(prompt)
    out, emitted = [], 0
    for nxt in generate_ids(model, prompt_ids, max_new_tokens, rng, temperature, top_k, top_p,
                            stop_ids=() if eot is None else (eot,), bos_id=eot):
        if nxt == eot:
            break
        out.append(nxt)
        text = tokenizer.decode(out)
        hits = [i for i in (text.find(s, max(0, emitted - len(s))) for s in stop) if i >= 0]
        if hits:
            yield text[emitted:max(min(hits), emitted)]
            return
        safe = len(text.rstrip("\ufffd"))
        safe -= _held_back(text[:safe], stop)
        if safe > emitted:
            yield text[emitted:safe]
            emitted = safe
    text = tokenizer.decode(out)
    if len(text) > emitted:
        yield text[emitted:]


def generate_text(model, tokenizer, prompt="", max_new_tokens=200, rng=None, **kwargs) -> str:
    """The whole continuation of prompt as one string (stream_text joined)."""
    return "".join(stream_text(model, tokenizer, prompt, max_new_tokens, rng, **kwargs))
