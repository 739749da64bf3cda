"""The second paraphrase validation set and its stored scores (chapter 9c.5)."""

import json

import pytest

from spike_lib.data.qa import QA_DIR, record_problem


def _load(name):
    return [json.loads(line) for line in (QA_DIR / name).read_text().splitlines() if line.strip()]


def test_val2_records_are_valid_spans_over_new_articles():
    recs = _load("paraphrase_val2.jsonl")
    assert len(recs) == 115 and len({r["id"] for r in recs}) == 115
    assert all(record_problem(r) == "" for r in recs)
    for r in recs:
        a = r["answers"][0]
        assert r["context"][a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
    used = {r["article"] for name in ("paraphrase.jsonl", "paraphrase_val.jsonl", "test.jsonl")
            for r in _load(name)}
    assert not {r["article"] for r in recs} & used  # no article of the tests or of val (43)
    template_questions = {r["question"] for name in ("train.jsonl", "val.jsonl") for r in _load(name)}
    assert not {r["question"] for r in recs} & template_questions


def test_stored_scores_add_up_over_the_two_halves():
    scores = json.loads((QA_DIR / "val2_scores.json").read_text())
    val_articles = {r["article"] for r in _load("val.jsonl")}
    n_val = sum(r["article"] in val_articles for r in _load("paraphrase_val2.jsonl"))
    assert len(scores["runs"]) >= 3
    for name, run in scores["runs"].items():
        whole, a, b = run["pval2"], run["pval2_val_articles"], run["pval2_train_articles"]
        assert (a["n"], b["n"], whole["n"]) == (n_val, 115 - n_val, 115), name
        # exact match of the whole set = the question-weighted mean of its halves
        assert whole["exact_match"] == pytest.approx(
            (a["exact_match"] * a["n"] + b["exact_match"] * b["n"]) / whole["n"], abs=1e-9), name
        assert run["pval"]["n"] == 43
