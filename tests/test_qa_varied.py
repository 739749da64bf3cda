"""Varied QA records: facts read back from template records, retold and asked anew."""

import hashlib
import json
import random

import pytest

from spike_lib.data.qa import element_sections, factbook_sections, record_problem, section_records
from spike_lib.data.qa_decoys import EXTRA_QUESTIONS
from spike_lib.data.qa_varied import (
    FACT_TYPES,
    MORE_QUESTIONS,
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
    assert singular("noble gases") == "noble gas" and singular("halogens") == "halogen"
    assert singular("rupees") == "rupee" and singular("currencies") == "currency"
    assert singular("actinide series") == "actinide series"
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


# ---------------------------------------------------------------- hard=True: decoys
AUSTRIA = {"Mount Kenya 5,199 m": "Grossglockner 3,798 m", "Kenyan shillings (KES)": "euros (EUR)",
           "Kenya": "Austria", "Nairobi": "Vienna",  # in this order: "Kenya" is in the two above
           "presidential republic": "federal parliamentary republic",
           "12 December 1963": "12 November 1918", "55,751,717": "8,967,982",
           "580,367": "83,871", "a colony": "an empire"}
ELEMENTS = (("Hydrogen", "H", 1, "Nonmetals", "Henry Cavendish", 1766, "England", "Light gas."),
            ("Helium", "He", 2, "Noble gases", "William Ramsay", 1895, "Scotland", "Inert gas."),
            ("Neon", "Ne", 10, "Noble gases", "Morris Travers", 1898, "England", "Red glow."))


def two_of_each_records():
    profile = json.dumps(PROFILE)
    for old, new in AUSTRIA.items():
        profile = profile.replace(old, new)
    name, bg, sections = factbook_sections(json.loads(profile))
    recs = kenya_records() + [r for section, facts in sections.items()
                              for r in section_records(facts, bg, "geography", name, section)]
    for row in ELEMENTS:
        name, desc, sections = element_sections(row)
        recs += [r for s, f in sections.items()
                 for r in section_records(f, desc, "chemistry", name, s)]
    return recs


def digest(recs) -> str:
    return hashlib.sha256(json.dumps(recs, sort_keys=True).encode()).hexdigest()[:16]


def test_hard_false_output_is_unchanged():
    # count and sha256 of varied_records before the hard option existed
    plain = varied_records(kenya_records(), n_contexts=6, seed=1)
    rich = varied_records(kenya_records(), n_contexts=8, seed=2, rich=True)
    assert (len(plain), digest(plain)) == (16, "8e10df1fdda9da32")
    assert (len(rich), digest(rich)) == (27, "de540cc18217b2c1")
    assert varied_records(kenya_records(), n_contexts=6, seed=1, hard=False) == plain


def test_hard_records_have_a_same_type_decoy_that_is_not_the_answer():
    recs = two_of_each_records()
    facts = template_facts(recs)
    hard = varied_records(recs, n_contexts=8, seed=3, hard=True)
    assert len(hard) == 116 and {r["category"] for r in hard} == {"geography", "chemistry"}
    for rec in hard:
        assert record_problem(rec) == ""
        answer, start = rec["answers"][0]["text"], rec["answers"][0]["answer_start"]
        assert rec["context"][start : start + len(answer)] == answer
        same = [d for d in rec["decoys"] if d["type"] == rec["type"]]
        assert len(same) == 1 and same[0]["text"] != answer and same[0]["text"] in rec["context"]
        assert same[0]["article"] != rec["article"] and same[0]["article"] in rec["context"]
        fact = next(k for k, v in FACT_TYPES.items() if v == rec["type"])
        truth = facts[(rec["category"], same[0]["article"])]["facts"][fact]
        if fact in ("capital", "government", "independence", "point", "currency", "symbol",
                    "number", "series", "discoverer", "year", "place"):
            assert same[0]["text"] == truth  # the other article's own value, as stored
        sentence = next(s for s in rec["context"].split(". ")
                        if same[0]["text"] in s and same[0]["article"] in s)
        assert rec["article"] not in sentence  # the decoy names only the other article
    # every asked fact of a context has its decoy: as many decoys as questions on the context
    by_context = {}
    for rec in hard:
        by_context.setdefault(rec["context"], []).append(rec)
    assert all(len(rs[0]["decoys"]) == len(rs) for rs in by_context.values())


def test_hard_decoys_skip_values_equal_to_the_answer():
    # Helium and Neon are both noble gases: a Neon series question can only get Hydrogen's
    # nonmetals as its decoy, never Helium's noble gases
    hard = varied_records(two_of_each_records(), n_contexts=8, seed=3, hard=True)
    neon = [r for r in hard if r["article"] == "Neon" and r["type"] == "series"]
    assert len(neon) == 4
    assert {d["text"] for r in neon for d in r["decoys"] if d["type"] == "series"} == {"nonmetals"}
    # an H answer is not found inside "He": symbols match as whole words
    hydrogen = [r for r in hard if r["article"] == "Hydrogen" and r["type"] == "symbol"]
    assert hydrogen and all(d["text"] in ("He", "Ne") for r in hydrogen for d in r["decoys"]
                            if d["type"] == "symbol")


def test_hard_records_ask_in_the_extra_phrasings_too():
    hard = varied_records(two_of_each_records(), n_contexts=8, seed=3, hard=True)
    asked = 0
    for rec in hard:
        fact = next(k for k, v in FACT_TYPES.items() if v == rec["type"])
        bank = [q.format(N=rec["article"]) for q in QUESTIONS[fact] + EXTRA_QUESTIONS[fact]]
        assert rec["question"] in bank
        asked += rec["question"] in [q.format(N=rec["article"]) for q in EXTRA_QUESTIONS[fact]]
    assert asked == 57
    assert set(EXTRA_QUESTIONS) == set(QUESTIONS)
    for fact, bank in EXTRA_QUESTIONS.items():  # new phrasings, not the old ones again
        assert len(bank) >= 6 and not set(bank) & set(QUESTIONS[fact] + MORE_QUESTIONS[fact])
