"""The hand-written paraphrase training questions: valid spans over template-train articles only."""

import json
import re

import pytest

from spike_lib.data.qa import QA_DIR, load_qa, record_problem

FILES = ("paraphrase_train.jsonl", "paraphrase_train2.jsonl")
ID_PREFIX = {"paraphrase_train.jsonl": "paraphrase-train-",
             "paraphrase_train2.jsonl": "paraphrase-train2-"}
EVAL_FILES = ("val.jsonl", "test.jsonl", "paraphrase.jsonl", "paraphrase_val.jsonl",
              "paraphrase_val2.jsonl")
TYPES = {"capital", "government type", "independence", "population", "area", "highest point",
         "elevation", "currency", "symbol", "atomic number", "series", "discoverer",
         "discovery year", "discovery place", "other"}


def _load(name):
    return [json.loads(line) for line in (QA_DIR / name).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("name", FILES)
def test_records_are_valid_spans_with_the_val2_format(name):
    recs = _load(name)
    assert len(recs) >= 250 and len({r["id"] for r in recs}) == len(recs)
    assert len(load_qa(QA_DIR / name)) == len(recs)
    fields = set(_load("paraphrase_val2.jsonl")[0])
    for r in recs:
        assert record_problem(r) == "", r["id"]
        assert set(r) == fields and len(r["answers"]) == 1, r["id"]
        a = r["answers"][0]
        assert r["context"][a["answer_start"]:a["answer_start"] + len(a["text"])] == a["text"]
        assert r["section"] == "paraphrase-train" and r["id"].startswith(ID_PREFIX[name])
        assert r["type"] in TYPES and r["category"] in ("geography", "chemistry")


@pytest.mark.parametrize("name", FILES)
def test_only_template_train_articles_and_no_template_text(name):
    recs = _load(name)
    train = _load("train.jsonl")
    train_articles = {(r["category"], r["article"]) for r in train}
    assert {(r["category"], r["article"]) for r in recs} <= train_articles
    eval_articles = {r["article"] for f in EVAL_FILES for r in _load(f)}
    assert not {r["article"] for r in recs} & eval_articles
    for r in {r["context"] for r in recs}:  # no evaluation article is even named in a passage
        assert not [a for a in eval_articles
                    if re.search(rf"(?<!\w){re.escape(a)}(?!\w)", r, re.I)], r[:60]
    assert not {r["question"] for r in recs} & {r["question"] for r in train}
    assert not {r["context"] for r in recs} & {r["context"] for r in train}
    evaluation_questions = {r["question"] for f in EVAL_FILES for r in _load(f)}
    assert not {r["question"] for r in recs} & evaluation_questions


def test_the_two_training_files_share_no_article_and_no_question():
    first, second = (_load(name) for name in FILES)
    assert not {r["article"] for r in first} & {r["article"] for r in second}
    assert not {r["question"] for r in first} & {r["question"] for r in second}
    assert not {r["id"] for r in first} & {r["id"] for r in second}
