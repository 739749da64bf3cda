"""The span head: offsets from the tokenizer, hand-written backward, decoding, NumPy/MLX parity."""

import mlx.core as mx
import numpy as np
import pytest

from spike_lib.core.gradcheck import numerical_grad
from spike_lib.numpy_impl import span
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers.bpe import BPETokenizer
from spike_lib.tokenizers.char import CharTokenizer
from spike_lib.train.check import gradcheck_config, normwise_rel_error
from spike_lib.mlx_impl import span as mspan
from spike_lib.mlx_impl.model import SpikeLLM as MlxSpikeLLM

TEXT = "The capital of Algeria is Algiers. Zürich has 421,878 people; née Ölçek."


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(TEXT * 20 + " capital currency population", 320)


def test_offsets_spell_every_token(bpe):
    ids, offsets = span.token_offsets(bpe, TEXT)
    assert len(ids) == len(offsets) > 5
    assert offsets[0, 0] == 0 and offsets[-1, 1] == len(TEXT)
    for i, (c0, c1) in zip(ids, offsets):
        piece = bpe.token_bytes[i].decode("utf-8", errors="ignore").lstrip()
        if piece:  # a whole-character token spells its span, leading space left out
            assert TEXT[c0:c1] == piece
    assert (np.diff(offsets[:, 1]) >= 0).all()


def test_offsets_of_split_multibyte_characters():
    tok = CharTokenizer.train("ab")  # ü and ö fall back to their two UTF-8 bytes
    ids, offsets = span.token_offsets(tok, "aüb")
    assert len(ids) == 4  # a, 2 bytes of ü, b
    assert offsets.tolist() == [[0, 1], [1, 2], [1, 2], [2, 3]]


def test_gold_tokens_at_the_ends_and_cut(bpe):
    ctx = "Algiers is the capital. The answer is last"
    for answer in ("Algiers", "last", "capital"):
        rec = {"question": "Which?", "context": ctx, "answers": [answer]}
        ex = span.encode_span_example(bpe, rec, block_size=64)
        got = span.span_text(ctx, ex["offsets"], ex["start"], ex["end"])
        assert got == answer and ex["exact"]
        assert ex["ids"][ex["ctx_start"] + ex["start"]] in bpe.encode(" " + answer) + bpe.encode(answer)
    # cut the context so that "last" no longer fits: its gold tokens are None
    n_prefix = len(bpe.encode(span.SPAN_PROMPT.format(question="Which?")))
    rec = {"question": "Which?", "context": ctx, "answers": ["last"]}
    ex = span.encode_span_example(bpe, rec, block_size=n_prefix + 3)
    assert len(ex["ids"]) == n_prefix + 3 and ex["start"] is None
    assert ex["kept_chars"] < len(ctx)
    rec["answers"] = ["Algiers"]
    ex = span.encode_span_example(bpe, rec, block_size=n_prefix + 3)
    assert span.span_text(ctx, ex["offsets"], ex["start"], ex["end"]) == "Algiers"


def test_answer_inside_a_token_is_not_exact(bpe):
    rec = {"question": "Q?", "context": "The capital of Algeria is Algiers.", "answers": ["Alg"]}
    ex = span.encode_span_example(bpe, rec, 64)
    assert ex["start"] is not None and not ex["exact"]


def test_question_longer_than_window_and_empty_context(bpe):
    with pytest.raises(ValueError, match="no room is left for the context"):
        span.encode_span_input(bpe, "why " * 50, "Some context.", block_size=16)
    with pytest.raises(ValueError, match="context is empty"):
        span.encode_span_input(bpe, "Why?", "   ", block_size=16)
    mask = np.array([[False, False, True], [False, False, False]])
    with pytest.raises(ValueError, match="no possible span"):
        span.best_span(np.zeros((2, 3, 2)), mask)


def test_shift_window_by_hand():
    h = np.arange(6, dtype=np.float64).reshape(1, 3, 2)  # tokens (0,1), (2,3), (4,5)
    X = span.shift_window(h, 3)
    assert X[0].tolist() == [[0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5], [2, 3, 4, 5, 0, 0]]
    dh = span.unshift_window(np.ones((1, 3, 6)), 3)
    assert dh[0].tolist() == [[2, 2], [3, 3], [2, 2]]  # the ends feed one neighbour fewer


def test_span_loss_by_hand():
    logits = np.zeros((1, 4, 2))
    logits[0, 2, 0] = np.log(2.0)  # start: context positions 1..3, weights 1, 2, 1
    mask = np.array([[False, True, True, True]])
    loss, dlogits = span.span_loss(logits, mask, np.array([2]), np.array([3]))
    assert np.isclose(loss, (-np.log(2 / 4) - np.log(1 / 3)) / 2)
    assert np.allclose(dlogits[0, :, 0], [0, 0.125, -0.25, 0.125])
    assert np.allclose(dlogits[0, :, 1], [0, 1 / 6, 1 / 6, -1 / 3])
    skipped, _ = span.span_loss(np.stack([logits[0]] * 2), np.vstack([mask] * 2),
                                np.array([2, -1]), np.array([3, -1]))
    assert np.isclose(skipped, loss)  # a row whose answer was cut away counts for nothing


def test_best_span_by_hand():
    logits = np.zeros((1, 5, 2))
    logits[0, :, 0] = [9, 1, 0, 3, 0]  # start: position 0 is the question
    logits[0, :, 1] = [9, 0, 2, 0, 1]
    mask = np.array([[False, True, True, True, True]])
    s, e, sc = span.best_span(logits, mask, max_len=16)
    assert (s[0], e[0], sc[0]) == (3, 4, 4.0)  # 3 + 1 beats 1 + 2; end before start not allowed
    s, e, _ = span.best_span(logits, mask, max_len=1)
    assert (s[0], e[0]) == (3, 3)


def _gradcheck_model(window, question=False):
    rng = np.random.default_rng(0)
    cfg = gradcheck_config()
    model = span.SpanQA(SpikeLLM(cfg), window=window, question=question)
    for name, p in model.modules["head"].params.items():
        model.modules["head"].params[name] = rng.normal(0, 0.5, p.shape)
    model.astype(np.float64).set_smooth(True)
    x = rng.integers(0, cfg.vocab_size, (2, 5))
    mask = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 1, 0]], dtype=bool)
    valid = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=bool)
    start, end = np.array([2, 1]), np.array([4, 2])
    return model, x, valid, mask, start, end


@pytest.mark.parametrize("window, question", [(1, False), (3, False), (3, True)])
def test_span_model_gradcheck_float64(window, question):
    model, x, valid, mask, start, end = _gradcheck_model(window, question)

    def loss():
        return span.span_loss(model(x, valid, mask), mask, start, end)[0]

    model.zero_grad()
    model.backward(span.span_loss(model(x, valid, mask), mask, start, end)[1])
    worst = max(normwise_rel_error(g, numerical_grad(loss, p, 1e-5))
                for _, p, g in model.named_parameters())
    assert worst < 1e-6


@pytest.mark.parametrize("question", [False, True])
def test_numpy_mlx_parity_logits_loss_grads(question):
    from mlx.utils import tree_flatten

    from spike_lib.core.config import Config

    cfg = Config.tiny(n_layer=2, vocab_size=30, block_size=8, n_embd=16, d_ff=32)
    rng = np.random.default_rng(3)
    ref = span.SpanQA(SpikeLLM(cfg), question=question)
    for p in ref.modules["head"].params.values():
        p[...] = rng.normal(0, 0.3, p.shape)
    port = mspan.SpanQA(MlxSpikeLLM(cfg), question=question)
    port.load_weights(list({k: mx.array(v) for k, v in ref.state_dict().items()}.items()))
    x = rng.integers(0, 30, (3, 8))
    valid = np.ones((3, 8), dtype=bool)
    valid[2, 6:] = False
    mask = valid & (np.arange(8) >= np.array([3, 2, 4])[:, None])  # prompts of 3, 2, 4 tokens
    start, end = np.array([3, 5, 4]), np.array([4, 7, 5])
    logits = ref(x, valid, mask)
    assert np.allclose(np.array(port(mx.array(x), mx.array(valid), mx.array(mask))), logits,
                       atol=1e-4)
    loss, dlogits = span.span_loss(logits, mask, start, end)
    ref.zero_grad()
    ref.backward(dlogits)
    args = [mx.array(a) for a in (x, valid, mask, start, end)]
    from mlx import nn

    mloss, mgrads = nn.value_and_grad(port, mspan.loss_fn)(port, *args)
    assert abs(mloss.item() - loss) < 1e-5
    mgrads = dict(tree_flatten(mgrads))
    errs = {n: normwise_rel_error(np.array(mgrads[n]), g) for n, _, g in ref.named_parameters()}
    assert max(errs.values()) < 1e-4, errs


def test_question_head_by_hand():
    """q = the mean of h over the prompt; logits_i[k] = X_i W[:, k] + h_i^T U_k q."""
    head = span.SpanHead(2, window=1, question=True)
    head.params["W"][...] = [[1.0, 0.0], [0.0, 1.0]]
    head.params["U"][...] = [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 2.0]]]
    h = np.array([[[2.0, 0.0], [0.0, 4.0], [1.0, 1.0], [3.0, 0.0]]])  # 2 prompt, 2 context
    context = np.array([[False, False, True, True]])
    q = [1.0, 2.0]  # mean of (2, 0) and (0, 4)
    want = h[0] + np.stack([h[0, :, 0] * q[0], h[0, :, 1] * 2 * q[1]], axis=1)
    np.testing.assert_allclose(head(h, None, context)[0], want)
    port = mspan.SpanHead(2, window=1, question=True)
    port.W, port.U = mx.array(head.params["W"]), mx.array(head.params["U"])
    np.testing.assert_allclose(np.array(port(mx.array(h), None, mx.array(context)))[0], want,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="context"):
        head(h)
    with pytest.raises(ValueError, match="no question before"):
        head(h, None, np.array([[True, True, True, True]]))


def test_head_for_another_base_model():
    head = span.SpanHead(16)
    with pytest.raises(ValueError, match="another base model"):
        head(np.zeros((1, 4, 8)))
    with pytest.raises(ValueError, match="another base model"):
        mspan.SpanHead(16)(mx.zeros((1, 4, 8)))


def test_span_windows_cover_a_long_context(bpe):
    ctx = TEXT * 3
    n_prefix = len(bpe.encode(span.SPAN_PROMPT.format(question="Which?")))
    n_ctx = len(bpe.encode(" " + ctx))
    room = 10
    wins = span.span_windows(bpe, "Which?", ctx, n_prefix + room)
    firsts = [w["first"] for w in wins]
    assert firsts[0] == 0 and firsts[-1] == n_ctx - room  # the last window ends at the end
    assert all(0 < b - a <= room // 2 for a, b in zip(firsts, firsts[1:]))
    seen = np.zeros(n_ctx, dtype=bool)
    for w in wins:
        assert len(w["ids"]) == n_prefix + room and w["ctx_start"] == n_prefix
        seen[w["first"]: w["first"] + len(w["offsets"])] = True
        assert ctx[w["offsets"][0, 0]: w["offsets"][-1, 1]].strip()  # real characters
    assert seen.all()
    assert len(span.span_windows(bpe, "Which?", "Short.", 64)) == 1  # a context that fits
    with pytest.raises(ValueError, match="stride"):
        span.span_windows(bpe, "Which?", ctx, n_prefix + room, stride=0)


def test_windows_find_an_answer_the_first_window_cut(bpe):
    ctx = "Algiers is the capital. The answer is last"
    n_prefix = len(bpe.encode(span.SPAN_PROMPT.format(question="Which?")))
    rec = {"question": "Which?", "context": ctx, "answers": ["last"]}
    assert span.encode_span_example(bpe, rec, n_prefix + 3)["start"] is None
    ex = span.encode_span_example(bpe, rec, n_prefix + 3, windows=True)
    assert ex["first"] > 0 and span.span_text(ctx, ex["offsets"], ex["start"], ex["end"]) == "last"


def test_answer_spans_take_the_best_window(bpe):
    """answer_spans over a long context = the best of best_span over each window by hand."""
    from spike_lib.core.config import Config

    cfg = Config.tiny(n_layer=1, vocab_size=bpe.vocab_size, block_size=24, n_embd=16, d_ff=32)
    model = span.SpanQA(SpikeLLM(cfg))
    model.modules["head"].params["W"][...] = np.random.default_rng(0).normal(0, 1, (48, 2))
    ctx = TEXT * 2
    got = span.answer_spans(model, bpe, ["Which?"], [ctx], max_len=4)[0]
    wins = span.span_windows(bpe, "Which?", ctx, 24)
    assert got["windows"] == len(wins) > 2
    best = None
    for w in wins:
        x, mask, _, _ = span.span_batch([w], bpe.eot_id)
        s, e, sc = span.best_span(model(x, np.ones_like(mask)), mask, 4)
        if best is None or sc[0] > best[2]:
            best = (s[0] - w["ctx_start"], e[0] - w["ctx_start"], sc[0], w)
    s, e, sc, w = best
    assert got["answer"] == span.span_text(ctx, w["offsets"], s, e)
    assert abs(got["score"] - sc) < 1e-4
