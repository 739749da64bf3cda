"""QA baselines: question types, the context-free prior and the copy heuristic, by hand."""

import numpy as np
import pytest

from spike_lib.train import qa_baselines as qb


def rec(q, ctx, ans, rid="", article="Chad"):
    return {"id": rid, "question": q, "context": ctx, "answers": [ans], "article": article}


def test_question_type_from_id_field_and_keywords():
    assert qb.question_type(rec("x", "", "", "geography-chad-government-capital-2")) == "capital"
    assert qb.question_type(rec("x", "", "", "geography-chad-geography-highest-point-0")) == "highest point"
    assert qb.question_type(rec("x", "", "", "chemistry-iron-properties-number-1")) == "atomic number"
    assert qb.question_type({**rec("x", "", ""), "type": "currency"}) == "currency"
    assert qb.question_type(rec("Which money do they pay with?", "", "")) == "currency"
    assert qb.question_type(rec("Tell me a joke", "", "")) == "other"


def test_prior_is_the_most_frequent_answer_of_the_template():
    train = [rec("What is the capital of Chad?", "c", "N'Djamena"),
             rec("What is the capital of Mali?", "c", "Bamako", article="Mali"),
             rec("What is the capital of Peru?", "c", "Bamako", article="Peru"),
             rec("How big is Chad?", "c", "1 sq km")]
    prior = qb.Prior(train)
    assert prior(rec("What is the capital of Togo?", "c", "Lome", article="Togo")) == "Bamako"
    assert prior(rec("Unheard of template?", "c", "x")) == "Bamako"  # overall fallback


def test_copy_answer_takes_the_sentence_closest_to_the_question():
    r = rec("What is the capital of Chad?",
            "The area of Chad is 1 sq km. The capital of Chad is N'Djamena. Chad is hot.", "N'Djamena")
    assert qb.copy_answer(r) == "N'Djamena"
    assert qb.copy_answer(rec("Who?", "Nothing here", "x")) == ""
    r2 = rec("What currency does Chad use?", "Chad uses CFA francs (XAF) as its currency.", "CFA francs")
    assert qb.copy_answer(r2, qb.TRIGGERS["is/was/uses/by"], qb.ENDS["full stop or ("]) == "CFA francs"


def test_score_per_type_by_hand():
    recs = [rec("q", "c", "a", "x-chad-government-capital-0"), rec("q", "c", "b c", "x-chad-government-capital-1"),
            rec("q", "c", "d", "x-chad-economy-currency-0")]
    res = qb.score(["a", "b", "x"], recs)
    assert res["exact_match"] == pytest.approx(100 / 3)
    assert res["per_type"]["capital"]["exact_match"] == 50.0
    assert res["per_type"]["capital"]["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)  # P 1, R 1/2
    assert res["per_type"]["currency"] == {"exact_match": 0.0, "f1": 0.0, "n": 1}
    with pytest.raises(ValueError, match="2 predictions for 3 records"):
        qb.score(["a", "b"], recs)


def test_fixed_sample_is_chapter_9s():
    recs = list(range(513))
    idx = sorted(np.random.default_rng(0).choice(513, 200, replace=False))
    assert qb.test_sample(recs) == idx and qb.test_sample(recs[:50], 200) == recs[:50]
