"""QA evaluation: SQuAD normalisation, exact match and F1 by hand, batched greedy decoding."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from spike_lib.train import finetune as ft
from spike_lib.train import qa_eval as qe
from spike_lib.core.config import Config
from spike_lib.numpy_impl.model import SpikeLLM
from spike_lib.tokenizers import get_tokenizer

TOK = get_tokenizer("char")


def test_normalisation():
    assert qe.normalize_answer("The  Capital, of France!") == "capital of france"
    assert qe.normalize_answer("an Apple a day") == "apple day"
    assert qe.normalize_answer("semi-presidential") == "semipresidential"


def test_exact_match_and_f1_by_hand():
    assert qe.exact_match("the Paris.", ["Paris"]) == 1.0
    assert qe.exact_match("Lyon", ["Paris", "Marseille"]) == 0.0
    # 'semi presidential republic' vs 'semipresidential republic': 1 common token, P 1/3, R 1/2
    assert math.isclose(qe.token_f1("semi presidential republic", "semi-presidential republic"),
                        2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert math.isclose(qe.token_f1("26 June 1960", "June 1960"), 0.8)  # P 2/3, R 1
    assert qe.token_f1("", "June") == 0.0 and qe.token_f1("the", "a") == 1.0  # both empty
    assert qe.token_f1("1 1 2", "1 2 2") == pytest.approx(2 / 3)  # counts, not sets
    assert qe.f1_score("June 1960", ["1960", "June 1960"]) == 1.0


class TableModel:
    """A stand-in LM: the next token depends only on the current one, via a table."""

    def __init__(self, table, block_size=64):
        self.cfg = SimpleNamespace(block_size=block_size)
        self.table = {TOK.encode(a)[0]: TOK.encode(b)[0] for a, b in table.items()}

    def train(self, mode=True):
        return self

    def firing_rates(self):
        return {}

    def __call__(self, x):
        nxt = np.vectorize(lambda t: self.table.get(int(t), TOK.eot_id))(x)
        return np.eye(TOK.vocab_size, dtype=np.float32)[nxt]  # (B, L, V) one-hot logits


def test_greedy_answers_stop_at_newline_end_or_budget():
    prompts = [TOK.encode("Q?\nAnswer:"), TOK.encode("Answer:"), TOK.encode("Answer")]
    answers = qe.greedy_answers(TableModel({":": " ", " ": "x", "x": "y", "y": "\n"}), TOK,
                                prompts, max_new_tokens=8, batch_size=2)
    assert answers == ["xy", "xy", ""]  # 'r' -> end of text: an empty answer
    loop = TableModel({":": " ", " ": "x", "x": "y", "y": "x"})
    assert qe.greedy_answers(loop, TOK, prompts[:1], max_new_tokens=4) == ["xyx"]
    with pytest.raises(ValueError, match="exceeds block_size=8"):
        qe.greedy_answers(TableModel({}, block_size=8), TOK, prompts[:1], max_new_tokens=4)


def test_evaluate_scores_a_known_answerer():
    recs = [{"context": "It is xy.", "question": "Where?", "answers": ["xy"]},
            {"context": "It is xy z.", "question": "Where?", "answers": ["xy z"]},
            {"context": "It is ab.", "question": "Where?", "answers": ["ab"]}]
    model = TableModel({":": " ", " ": "x", "x": "y", "y": "\n"}, block_size=64)
    res = qe.evaluate_qa(model, TOK, recs, answer_tokens=4)
    assert res["predictions"] == ["xy", "xy", "xy"]
    assert math.isclose(res["exact_match"], 100 / 3)
    assert math.isclose(res["f1"], 100 * (1 + 2 / 3 + 0) / 3)  # 'xy' vs 'xy z': P 1, R 1/2
    assert res["n"] == 3 and res["answer_cut"] == 0 and res["firing_rate"] is None
    # answer loss (Eq. 9.1): one-hot logits put e / (e + V - 1) on the table's token; the
    # first record's 4 answer tokens ' xy\n' are all the table's, the third's ' ab\n' none
    right, wrong = math.log(math.e + TOK.vocab_size - 1) - 1, math.log(math.e + TOK.vocab_size - 1)
    assert math.isclose(qe.answer_loss(model, TOK, recs[:1], 4), right, rel_tol=1e-6)
    assert math.isclose(qe.answer_loss(model, TOK, recs[2:], 4), (right + 3 * wrong) / 4, rel_tol=1e-6)
    assert qe.answer_loss(model, TOK, recs[1:2], 4) is None  # ' xy z\n' is 6 > 4 tokens


def test_batched_greedy_equals_one_at_a_time():
    cfg = Config.tiny(vocab_size=TOK.vocab_size, block_size=48, n_embd=16, d_ff=32)
    model = SpikeLLM(cfg)
    prompts = [TOK.encode(t) for t in ("Answer:", "Q: where?\nAnswer:", "Hi\nAnswer:",
                                       "Context: abc\nAnswer:")]
    one = [qe.greedy_answers(model, TOK, [p], 6)[0] for p in prompts]
    assert qe.greedy_answers(model, TOK, prompts, 6, batch_size=3) == one  # padding is harmless
    rate = qe.firing_rate(model, prompts)
    assert 0.0 < rate < 1.0
    ex = ft.encode_example(TOK, {"context": "abc", "question": "q", "answers": ["b"]}, 48, 6)
    assert len(ex["prompt"]) + 6 <= 48 + 1
