"""Varied QA records: facts read back from template records, retold and asked anew."""

import random

import pytest

from spike_lib.data.qa import factbook_sections, record_problem, section_records
from spike_lib.data.qa_varied import (
    FACT_TYPES,
    QUESTIONS,
    article_a,
    fact_name,
    singular,
    spelled_millions,
    template_facts,
    varied_records,
)
from tests.test_qa import PROFILE


def kenya_records():
    name, bg, sections = factbook_sections(PROFILE)
    return [r for section, facts in sections.items()
            for r in section_records(facts, bg, "geography", name, section)]


def test_template_facts_recover_every_answer_and_the_background():
    facts = template_facts(kenya_records())[("geography", "Kenya")]
    assert facts["facts"] == {"capital": "Nairobi", "government": "presidential republic",
                              "independence": "12 December 1963", "population": "55,751,717",
                              "area": "580,367 sq km", "point": "Mount Kenya",
                              "elevation": "5,199 m", "currency": "Kenyan shillings"}
    assert facts["background"] == ["Kenya has a long history.", "It was a colony.",
                                   "Nairobi grew fast."]
    assert fact_name({"id": "geography-kenya-geography-highest-point-2"}) == "point"


def test_value_forms():
    assert singular("Kenyan shillings") == "Kenyan shilling" and singular("euros") == "euro"
    assert singular("Swiss franc") == "Swiss franc" and singular("lats") == "lat"
    assert article_a("emirate") == "an emirate" and article_a("republic") == "a republic"
    seen = set()
    for seed in range(40):
        phrase, answer = spelled_millions(10_223_150, random.Random(seed))
        assert answer in phrase
        seen.add(answer)
    assert seen == {"10,223,150", "ten million", "10.2 million"}
    assert spelled_millions(794_099, random.Random(0)) == ("794,099", "794,099")
    assert spelled_millions(125_000_000, random.Random(3))[1] in {"125 million", "125,000,000"}


def test_varied_records_are_valid_spans_in_new_phrasings():
    recs = varied_records(kenya_records(), n_contexts=6, seed=1)
    assert len(recs) >= 12 and len({r["id"] for r in recs}) == len(recs)
    for rec in recs:
        assert record_problem(rec) == ""
        assert rec["type"] in FACT_TYPES.values() and rec["section"] == "varied"
        assert "The capital of Kenya is" not in rec["context"]  # no template sentence survives
        fact = next(k for k, v in FACT_TYPES.items() if v == rec["type"])
        assert rec["question"] in [q.format(N="Kenya") for q in QUESTIONS[fact]]
    starts = {r["context"].index(r["context"].split(". ")[1]) for r in recs}
    assert len(starts) > 1  # the facts are shuffled, not always in the same place
    assert varied_records(kenya_records(), seed=1) == varied_records(kenya_records(), seed=1)


def test_excluded_articles_are_skipped():
    assert varied_records(kenya_records(), exclude=("Kenya",)) == []


@pytest.mark.parametrize("fact", sorted(QUESTIONS))
def test_every_fact_type_has_several_phrasings(fact):
    assert len(set(QUESTIONS[fact])) >= 4 and fact in FACT_TYPES


def test_rich_records_are_valid_spans_with_more_prose_and_phrasings():
    from spike_lib.data.qa_varied import MORE_QUESTIONS

    plain = varied_records(kenya_records(), n_contexts=8, seed=2)
    rich = varied_records(kenya_records(), n_contexts=8, seed=2, rich=True)
    background = ("Kenya has a long history.", "It was a colony.", "Nairobi grew fast.")
    for rec in rich:
        assert record_problem(rec) == ""
        assert any(b in rec["context"] for b in background)  # 1-3 background sentences each
        fact = next(k for k, v in FACT_TYPES.items() if v == rec["type"])
        assert rec["question"] in [q.format(N="Kenya") for q in QUESTIONS[fact] + MORE_QUESTIONS[fact]]
    assert any(rec["context"].startswith(background) for rec in rich)  # prose first, sometimes
    assert {r["question"] for r in rich} & {q.format(N="Kenya") for v in MORE_QUESTIONS.values()
                                            for q in v}
    prose = lambda recs: sum(sum(b in r["context"] for b in background) for r in recs) / len(recs)
    assert prose(rich) > prose(plain)
    assert set(MORE_QUESTIONS) == set(QUESTIONS)
