"""Reference points for extractive QA: the context-free prior and the copy heuristic, by type.

`python -m spike_lib qa-baselines --qa-file data/qa/test.jsonl --json` prints exact match and
F1 (in %) of both baselines overall and per question type (capital, currency, ...). Every
choice (the copy heuristic's trigger words and end rule) is made on data/qa/val.jsonl.
Taught in: notebooks/09b_span_qa.ipynb
"""

import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from spike_lib.data.qa import QA_DIR

# the field of a generated record is the part of its id after the section: "...-government-capital-0"
SECTIONS = ("government", "people-and-society", "geography", "economy", "properties", "discovery")
ID_TYPE = re.compile(r"(?:%s)-([a-z]+(?:-point)?)-\d+$" % "|".join(SECTIONS))
TYPE_NAMES = {"number": "atomic number", "government": "government type",
              "highest-point": "highest point", "year": "discovery year",
              "place": "discovery place"}
# keywords of a question whose record has no generated id (paraphrases, files from elsewhere)
TYPE_WORDS = (("currency", "currency"), ("money", "currency"), ("capital", "capital"),
              ("symbol", "symbol"), ("abbreviat", "symbol"), ("proton", "atomic number"),
              ("atomic number", "atomic number"), ("people", "population"),
              ("population", "population"), ("inhabit", "population"), ("live", "population"),
              ("independen", "independence"), ("govern", "government type"),
              ("elevation", "elevation"), ("how high", "elevation"), ("tall", "elevation"),
              ("highest", "highest point"), ("summit", "highest point"),
              ("peak", "highest point"), ("area", "area"), ("big", "area"), ("size", "area"),
              ("who", "discoverer"), ("whom", "discoverer"), ("year", "discovery year"),
              ("when", "discovery year"), ("where", "discovery place"),
              ("country", "discovery place"), ("series", "series"), ("group", "series"),
              ("kind", "series"), ("family", "series"))
# the copy heuristic's grid; copy_rule() picks one on validation questions
TRIGGERS = {"is": r"is", "is/was/are": r"is|was|are", "is/was/uses/by": r"is|was|are|uses|by",
            "is/was/uses/by/on/in": r"is|was|are|uses|by|on|in"}
ENDS = {"sentence end": r"\.?$", "punctuation": r"(?:[.,;]| \(|$)", "full stop or (": r"(?:\.| \(|$)"}
STOPWORDS = {"what", "is", "the", "of", "which", "who", "how", "does", "in", "a", "was", "did",
             "an", "to", "by", "whom", "when", "where"}
SENTENCE = re.compile(r"(?<=[.!?]) (?=[A-Z])")


def answer_texts(rec) -> list:
    return [a["text"] if isinstance(a, dict) else a for a in rec["answers"]]


def question_type(rec) -> str:
    """The record's "type" field, else the field in its generated id, else a keyword guess."""
    if isinstance(rec.get("type"), str) and rec["type"]:
        return rec["type"]
    m = ID_TYPE.search(str(rec.get("id", "")))
    if m:
        return TYPE_NAMES.get(m.group(1), m.group(1))
    q = rec["question"].lower()
    return next((t for word, t in TYPE_WORDS if word in q), "other")


def template(rec) -> str:
    """The question with its article's name replaced by X: "What is the capital of X?"."""
    article = rec.get("article")
    return rec["question"].replace(article, "X") if article else rec["question"]


# ---------------------------------------------------------------- the context-free prior
class Prior:
    """Answers every question with the most frequent training answer of its template.

    A template never seen in training (a peak's name inside the question) falls back to the
    most frequent answer overall. Ties go to the answer seen first. It never reads the
    context: it measures how much of a score needs no reading at all.
    """

    def __init__(self, train_records):
        self.by_template, self.overall = defaultdict(Counter), Counter()
        for rec in train_records:
            ans = answer_texts(rec)[0]
            self.by_template[template(rec)][ans] += 1
            self.overall[ans] += 1
        if not self.overall:
            raise ValueError("the prior needs at least one training record")

    def __call__(self, rec) -> str:
        counts = self.by_template.get(template(rec)) or self.overall
        return counts.most_common(1)[0][0]


# ---------------------------------------------------------------- the copy heuristic
def copy_answer(rec, triggers=TRIGGERS["is"], end=ENDS["sentence end"]) -> str:
    """The words after the first trigger word ("is") of the context sentence that shares the
    most words with the question, up to the end rule ('' if no trigger occurs)."""
    words = set(re.findall(r"\w+", rec["question"].lower())) - STOPWORDS
    sentences = SENTENCE.split(rec["context"])
    best = max(sentences, key=lambda s: len(words & set(re.findall(r"\w+", s.lower()))))
    m = re.search(rf"\b(?:{triggers}) (.+?){end}", best)
    return m.group(1) if m else ""


def copy_rule(val_records) -> dict:
    """The (triggers, end) of the grid with the best exact match (then F1) on val_records."""
    best = None
    for tname, triggers in TRIGGERS.items():
        for ename, end in ENDS.items():
            res = score([copy_answer(r, triggers, end) for r in val_records], val_records)
            key = (res["exact_match"], res["f1"])
            if best is None or key > best[0]:
                best = (key, {"triggers": tname, "end": ename})
    return best[1]


# ---------------------------------------------------------------- scoring
def score(predictions, records) -> dict:
    """Exact match and F1 in % overall and per question type, plus n (SQuAD metrics)."""
    from spike_lib.train.qa_eval import exact_match, f1_score

    if len(predictions) != len(records):
        raise ValueError(f"{len(predictions)} predictions for {len(records)} records")
    em = np.array([exact_match(p, answer_texts(r)) for p, r in zip(predictions, records)])
    f1 = np.array([f1_score(p, answer_texts(r)) for p, r in zip(predictions, records)])
    types = np.array([question_type(r) for r in records], dtype=object)
    per_type = {t: {"exact_match": 100.0 * float(em[types == t].mean()),
                    "f1": 100.0 * float(f1[types == t].mean()), "n": int((types == t).sum())}
                for t in sorted(set(types.tolist()))}
    return {"exact_match": 100.0 * float(em.mean()), "f1": 100.0 * float(f1.mean()),
            "n": len(records), "per_type": per_type}


def test_sample(records, n=200, seed=0) -> list:
    """The fixed sample of chapter 9 (and of issue 14): n records drawn without replacement."""
    if n >= len(records):
        return list(records)
    idx = np.random.default_rng(seed).choice(len(records), n, replace=False)
    return [records[i] for i in sorted(idx)]


def baselines(records, train_records, val_records) -> dict:
    """{prior, copy}: each the score() of one baseline on records; copy's rule chosen on val."""
    prior = Prior(train_records)
    rule = copy_rule(val_records)
    copy = [copy_answer(r, TRIGGERS[rule["triggers"]], ENDS[rule["end"]]) for r in records]
    return {"prior": score([prior(r) for r in records], records),
            "copy": {**score(copy, records), "rule": rule}}


# ---------------------------------------------------------------- `python -m spike_lib qa-baselines`
def add_arguments(parser) -> None:
    parser.add_argument("--qa-file", default=str(QA_DIR / "test.jsonl"),
                        help="JSONL of {context, question, answers} (data/qa/test.jsonl)")
    parser.add_argument("--train-file", default=str(QA_DIR / "train.jsonl"),
                        help="the prior's answers come from here (data/qa/train.jsonl)")
    parser.add_argument("--val-file", default=str(QA_DIR / "val.jsonl"),
                        help="the copy rule is chosen here (data/qa/val.jsonl)")
    parser.add_argument("--sample", type=int,
                        help="score chapter 9's fixed random sample of N questions (seed 0)")


def run(args) -> dict:
    from spike_lib.core.config import check_range
    from spike_lib.train.finetune import load_qa_file

    records = load_qa_file(Path(args.qa_file))
    if args.sample is not None:
        check_range("sample", args.sample, 1, kind=int)
        records = test_sample(records, args.sample)
    return baselines(records, load_qa_file(args.train_file), load_qa_file(args.val_file))
