"""The QA record format, the validating loader and the offline generator (Factbook, elements)."""

import json

import pytest

from spike_lib.data.qa import (
    QA_DIR,
    build_offline_qa,
    element_sections,
    excerpt,
    factbook_sections,
    load_qa,
    make_record,
    section_records,
    split_of,
    write_jsonl,
)

PROFILE = {
    "Introduction": {"Background": {"text": "Kenya has a long history. It was a colony. "
                                            "Nairobi grew fast."}},
    "Government": {"Country name": {"conventional short form": {"text": "Kenya"}},
                   "Capital": {"name": {"text": "Nairobi"}},
                   "Government type": {"text": "presidential republic"},
                   "Independence": {"text": "12 December 1963 (from the UK)"}},
    "People and Society": {"Population": {"total": {"text": "55,751,717 (2025 est.)"}}},
    "Geography": {"Area": {"total ": {"text": "580,367 sq km"}},
                  "Elevation": {"highest point": {"text": "Mount Kenya 5,199 m"}}},
    "Economy": {"Exchange rates": {"Currency": {"text": "Kenyan shillings (KES) per US dollar -"}}},
}


def test_factbook_facts_are_exact_spans():
    name, bg, sections = factbook_sections(PROFILE)
    assert name == "Kenya" and bg.startswith("Kenya has")
    answers = {f[2]: f[1] for facts in sections.values() for f in facts}
    assert answers == {"capital": "Nairobi", "government": "presidential republic",
                       "independence": "12 December 1963", "population": "55,751,717",
                       "area": "580,367 sq km", "highest-point": "Mount Kenya",
                       "elevation": "5,199 m", "currency": "Kenyan shillings"}
    recs = section_records(sections["Geography"], bg, "geography", "Kenya", "Geography")
    assert len(recs) == 9  # 3 facts x 3 phrasings
    ctx = recs[0]["context"]
    assert ctx.startswith("The total area of Kenya is 580,367 sq km. The highest point of Kenya "
                          "is Mount Kenya, at 5,199 m. Kenya has a long history.")
    height = next(r for r in recs if r["id"].endswith("elevation-2"))
    assert height["question"] == "How many metres high is Mount Kenya?"
    start = height["answers"][0]["answer_start"]
    assert ctx[start : start + 7] == "5,199 m" and start == 42 + 46  # len("The total ... sq km. ") + len("The highest ... at ")


def test_element_facts():
    row = ("Hydrogen", "H", 1, "Nonmetals", "Henry Cavendish", 1766, "England", "Light gas.")
    name, desc, sections = element_sections(row)
    recs = [r for s, f in sections.items()
            for r in section_records(f, desc, "chemistry", name, s)]
    by_id = {r["id"]: r for r in recs}
    sym = by_id["chemistry-hydrogen-properties-symbol-0"]
    assert sym["answers"] == [{"text": "H", "answer_start": 17}]  # len("Hydrogen (symbol "), not the first H
    year = by_id["chemistry-hydrogen-discovery-year-1"]
    assert year["context"].startswith("Hydrogen was discovered by Henry Cavendish in 1766 in "
                                      "England.")
    assert year["answers"][0]["text"] == "1766"
    ancient = element_sections(("Gold", "Au", 79, None, "Known to the ancients.", None, None, ""))
    assert "Discovery" not in ancient[2]


def test_excerpt_keeps_whole_sentences():
    assert excerpt("One. Two two. Three three three.", 14) == "One. Two two."
    assert excerpt("A long first sentence.", 5) == "A long first sentence."


def test_split_is_deterministic_and_roughly_80_10_10():
    splits = [split_of(f"geography:country {i}") for i in range(2000)]
    assert splits == [split_of(f"geography:country {i}") for i in range(2000)]
    assert abs(splits.count("train") / 2000 - 0.8) < 0.03
    assert abs(splits.count("test") / 2000 - 0.1) < 0.02


def test_build_small_factbook(tmp_path):
    data = tmp_path / "fb" / "data" / "africa"
    data.mkdir(parents=True)
    (data / "ke.json").write_text(json.dumps(PROFILE))
    world = tmp_path / "fb" / "data" / "world"
    world.mkdir()
    (world / "xx.json").write_text(json.dumps(PROFILE))  # the World profile is skipped
    db = tmp_path / "none.db"
    with pytest.raises(ValueError, match="elements.db not found"):
        build_offline_qa(tmp_path / "out", factbook_dir=tmp_path / "fb", elements_db=db)
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("create table series (id integer, name text)")
    con.execute("create table elements (atomic_number integer, name text, symbol text, "
                "series_id integer, discoverers text, discovery_year integer, "
                "discovery_location text, description text)")
    con.execute("insert into elements values (1, 'Hydrogen', 'H', 1, 'Henry Cavendish', 1766, "
                "'England', 'Light.')")
    con.execute("insert into series values (1, 'Nonmetals')")
    con.commit()
    con.close()
    counts = build_offline_qa(tmp_path / "out", factbook_dir=tmp_path / "fb", elements_db=db,
                              phrasings=2)
    assert sum(counts.values()) == 2 * 8 + 2 * 6  # Kenya 8 facts, Hydrogen 6 facts
    assert split_of("geography:Kenya") in counts
    summary = json.loads((tmp_path / "out" / "counts.json").read_text())
    assert summary["records"] == counts
    for split in counts:
        assert len(load_qa(tmp_path / "out" / f"{split}.jsonl")) == counts[split]


def test_shipped_qa_files_are_valid_and_disjoint_by_article():
    summary = json.loads((QA_DIR / "counts.json").read_text())
    articles = {}
    for split in ("train", "val", "test"):
        recs = load_qa(QA_DIR / f"{split}.jsonl")
        assert len(recs) == summary["records"][split] > 0
        articles[split] = {(r["category"], r["article"]) for r in recs}
    assert not articles["train"] & articles["test"] and not articles["train"] & articles["val"]


GOOD = {"id": "a", "context": "Paris is big.", "question": "What is big?",
        "answers": [{"text": "Paris", "answer_start": 0}], "category": "geography",
        "article": "France", "section": "Government"}


@pytest.mark.parametrize("change, message", [
    ({"question": None}, r"line 2: missing field 'question'"),
    ({"context": ""}, r"line 2: field 'context' must be a non-empty string"),
    ({"answers": []}, r"line 2: field 'answers' must be a non-empty list"),
    ({"answers": [{"text": "Paris"}]}, r"line 2: field 'answers'\[0\] needs an integer"),
    ({"answers": [{"text": "London", "answer_start": 0}]},
     r"line 2: field 'answers'\[0\] 'London' is not a span .* does not occur"),
    ({"answers": [{"text": "big", "answer_start": 0}]},
     r"line 2: field 'answers'\[0\] 'big' is not a span .*answer_start=0 \(it occurs at 9\)"),
    ({"answers": [{"text": "big", "answer_start": -4}]},  # context[-4:-1] == "big": must not pass
     r"line 2: field 'answers'\[0\] answer_start=-4 lies outside the context \(0 to 10"),
    ({"answers": [{"text": "big", "answer_start": 11}]},
     r"answer_start=11 lies outside the context"),
    ({"id": "a"}, r"line 2: field 'id' 'a' is a duplicate"),
])
def test_load_qa_names_line_and_field(tmp_path, change, message):
    bad = {**GOOD, "id": "b", **change}
    if change.get("question", 1) is None:
        del bad["question"]
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=message):
        load_qa(path)


def test_load_qa_bad_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_qa(tmp_path / "missing.jsonl")
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps(GOOD) + "\n{truncated\n")
    with pytest.raises(ValueError, match=r"qa.jsonl line 2: not valid JSON"):
        load_qa(path)
    path.write_bytes(b'{"id": "\xff"}\n')
    with pytest.raises(ValueError, match=r"qa.jsonl line 1: not UTF-8"):
        load_qa(path)


def test_make_record_refuses_non_span_and_write_is_atomic(tmp_path):
    with pytest.raises(ValueError, match="not a span"):
        make_record("x", "Paris is big.", "Q?", "Paris", 1, "geography", "France", "Gov")
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [GOOD])
    assert load_qa(path) == [GOOD] and [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_qa_command(tmp_path, capsys, monkeypatch):
    from spike_lib.cli import main

    path = tmp_path / "qa.jsonl"
    write_jsonl(path, [GOOD])
    assert main(["qa", "check", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"articles": 1, "records": 1}
    path.write_text(json.dumps({**GOOD, "answers": [{"text": "Rome", "answer_start": 0}]}))
    assert main(["qa", "check", str(path)]) == 2
    assert "qa.jsonl line 1: field 'answers'[0] 'Rome' is not a span" in capsys.readouterr().err
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert main(["qa", "claude", str(tmp_path / "c.jsonl")]) == 2
    assert "set the environment variable ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "c.jsonl").exists()
