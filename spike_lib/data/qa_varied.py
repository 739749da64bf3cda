"""Varied QA training pairs: the template facts retold in many sentence styles and asked in
many phrasings, in shuffled order with background and distractor sentences.

The template generator (spike_lib.data.qa) writes one sentence and three questions per fact,
always in the same order, so a span head can learn where answers sit instead of reading the
question. This module takes the facts of the template records and writes each context anew:
a random subset of an article's facts, each in one of several hand-written sentence styles
(pronouns, apposition, numbers rounded or spelled), shuffled, with sentences of the article's
background prose and generic distractors between them; questions come from a separate bank of
phrasings per fact type. Records keep the template split of their article. hard=True adds,
for every asked fact, a decoy: the same kind of fact about another article of the category
("By comparison, Austria has about 9 million people."), so only the question's entity and type
words pick the answer, and asks in more phrasings (spike_lib.data.qa_decoys).
Taught in: notebooks/09b_span_qa.ipynb
"""

import random
import re
from collections import defaultdict

from spike_lib.data.qa import load_qa, make_record

NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split()
FACT_TYPES = {"capital": "capital", "government": "government type", "independence":
              "independence", "population": "population", "area": "area", "point":
              "highest point", "elevation": "elevation", "currency": "currency", "symbol":
              "symbol", "number": "atomic number", "series": "series", "discoverer":
              "discoverer", "year": "discovery year", "place": "discovery place"}


# ---------------------------------------------------------------- facts from template records
def fact_name(rec) -> str:
    """The fact of a template record, from its id (...-capital-0 -> capital)."""
    return re.sub(r"-\d+$", "", rec["id"]).split("-")[-1]


def template_facts(records) -> dict:
    """{(category, article): {"facts": {fact: answer}, "background": [sentences]}}.

    The background is what is left of a context once its template fact sentences are removed.
    """
    out = defaultdict(lambda: {"facts": {}, "background": []})
    for rec in records:
        art = out[(rec["category"], rec["article"])]
        art["facts"][fact_name(rec)] = rec["answers"][0]["text"]
        rest = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", rec["context"])
                if not _is_template_sentence(s, rec["article"])]
        if len(rest) > len(art["background"]):
            art["background"] = rest
    return dict(out)


def _is_template_sentence(sentence, name) -> bool:
    starts = (f"The capital of {name} is", f"The government type of {name} is",
              f"{name} became independent", f"The population of {name} is",
              f"The total area of {name} is", f"The highest point of {name} is",
              f"{name} uses ", f"{name} (symbol", "It belongs to the", f"{name} was discovered")
    return sentence.startswith(starts)


# ---------------------------------------------------------------- rendering values
def spelled_millions(n: int, rnd) -> tuple:
    """(phrase, answer) for a population: the digits, or rounded millions, or words."""
    if n < 1_000_000 or rnd.random() < 0.4:
        return f"{n:,}", f"{n:,}"
    m = n / 1e6
    if m < 20.5 and rnd.random() < 0.4:
        words = f"{NUMBER_WORDS[round(m)]} million"
        return rnd.choice(("about ", "roughly ", "some ", "close to ")) + words, words
    num = f"{m:.1f} million" if m < 100 else f"{round(m)} million"
    return rnd.choice(("about ", "around ", "nearly ", "", "an estimated ")) + num, num


def singular(plural: str) -> str:
    """'Cuban pesos' -> 'Cuban peso', 'euros' -> 'euro', 'noble gases' -> 'noble gas' (the last
    word only; -ases drops "es", -ies becomes -y, -ss and "series" stay)."""
    head, _, last = plural.rpartition(" ")
    if last.endswith("ases"):
        last = last[:-2]
    elif last in ("series", "species"):
        pass
    elif last.endswith("ies") and len(last) > 4:
        last = last[:-3] + "y"
    elif last.endswith("s") and not last.endswith("ss"):
        last = last[:-1]
    return f"{head} {last}".strip()


def article_a(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


# ---------------------------------------------------------------- sentence styles
# each style: (fact, value) -> (sentence, answer); the answer is a substring of the sentence.
# N is the article's name, or a pronoun phrase once the name has been used.
def _geo_sentences(fact, v, N, rnd):
    if fact == "capital":
        return rnd.choice((
            (f"{v} is where the government of {N} meets.", v),
            (f"The national government has its seat in {v}.", v),
            (f"Ministries and parliament are based in {v}, the capital.", v),
            (f"{N} is run from {v}.", v),
            (f"Its capital city, {v}, is also its busiest.", v),
            (f"Most official business in {N} happens in {v}.", v),
        ))
    if fact == "government":
        return rnd.choice((
            (f"Politically, {N} is {article_a(v)}.", v),
            (f"{N} is organised as {article_a(v)}.", v),
            (f"The state is governed as {article_a(v)}.", v),
            (f"Its system of government: {v}.", v),
        ))
    if fact == "independence":
        d, mon, y = v.split(" ")
        return rnd.choice((
            (f"{N} has been independent since {v}.", v),
            (f"Independence came on {v}.", v),
            (f"On {v}, {N} became a sovereign state.", v),
            (f"Its independence day falls on {d} {mon}, the anniversary of {v}.", v),
        ))
    if fact == "population":
        phrase, ans = spelled_millions(int(v.replace(",", "")), rnd)
        return rnd.choice((
            (f"{phrase[:1].upper() + phrase[1:]} people live in {N}.", ans),
            (f"{N} is home to {phrase} inhabitants.", ans),
            (f"Its population stands at {phrase}.", ans),
            (f"A census counted {phrase} residents.", ans),
        ))
    if fact == "area":
        km = v.replace(" sq km", "")
        unit = rnd.choice(("square kilometres", "sq km", "km2"))
        ans = f"{km} {unit}"
        return rnd.choice((
            (f"{N} covers {ans}.", ans),
            (f"Its land and water add up to {ans}.", ans),
            (f"The territory spans {ans} in total.", ans),
            (f"With {ans}, {N} is not a small place.", ans),
        ))
    if fact == "point":
        return rnd.choice((
            (f"No place in {N} is higher than {v}.", v),
            (f"{v} is the tallest summit of {N}.", v),
            (f"Climbers come to {v}, the highest ground in the country.", v),
            (f"The landscape peaks at {v}.", v),
        ))
    if fact == "elevation":
        num = v.replace(" m", "")
        ans = rnd.choice((v, f"{num} metres"))
        return rnd.choice((
            (f"The top of the country reaches {ans} above sea level.", ans),
            (f"Its highest summit rises to {ans}.", ans),
            (f"At {ans}, the highest peak is often covered in cloud.", ans),
        ))
    if fact == "currency":
        one = singular(v)
        return rnd.choice((
            (f"Prices in {N} are given in {v}.", v),
            (f"People there pay with the {one}.", one),
            (f"The {one} is the money of {N}.", one),
            (f"Shops and banks deal in {v}.", v),
            (f"You will need {v} to buy anything in {N}.", v),
        ))
    return None


def _chem_sentences(fact, v, N, rnd):
    if fact == "symbol":
        return rnd.choice((
            (f"Chemists write {N} as {v}.", v),
            (f"In formulas, {N} appears as {v}.", v),
            (f"Its one- or two-letter sign is {v}.", v),
            (f"The letters {v} stand for {N}.", v),
        ))
    if fact == "number":
        return rnd.choice((
            (f"Each atom of {N} holds {v} protons.", v),
            (f"{N} sits at position {v} in the periodic table.", v),
            (f"Its nucleus carries {v} positive charges.", v),
            (f"It is element number {v}.", v),
        ))
    if fact == "series":
        one = singular(v)
        return rnd.choice((
            (f"{N} counts among the {v}.", v),
            (f"Chemists class {N} with the {v}.", v),
            (f"Like the other {v}, it has a typical set of properties.", v),
            (f"{N} is one of the {v}.", v),
            (f"As {article_a(one)}, {N} behaves like its neighbours.", one),
        ))
    if fact == "discoverer":
        return rnd.choice((
            (f"{v} first identified {N}.", v),
            (f"The discovery is credited to {v}.", v),
            (f"{N} was first isolated by {v}.", v),
            (f"Credit for finding it goes to {v}.", v),
        ))
    if fact == "year":
        return rnd.choice((
            (f"{N} became known to science in {v}.", v),
            (f"It was found in {v}.", v),
            (f"The year {v} saw the first report of {N}.", v),
        ))
    if fact == "place":
        return rnd.choice((
            (f"The work that revealed {N} was done in {v}.", v),
            (f"It was first found in {v}.", v),
            (f"{N} was discovered in a laboratory in {v}.", v),
        ))
    return None


# ---------------------------------------------------------------- question phrasings
QUESTIONS = {
    "capital": ("Where is the seat of government of {N}?", "Which city governs {N}?",
                "What city is {N} run from?", "Name the capital city of {N}.",
                "Where do the ministries of {N} sit?", "Which city serves as the capital of {N}?",
                "{N}'s capital is which city?", "Where is {N}'s capital?"),
    "government": ("What political system does {N} have?", "What kind of state is {N}?",
                   "Under what form of government does {N} operate?",
                   "What is the political system of {N}?", "How is the state of {N} organised?"),
    "independence": ("Since when has {N} been independent?", "What date did {N} become sovereign?",
                     "When did independence come to {N}?", "Which day did {N} gain independence?",
                     "When was {N} granted independence?"),
    "population": ("How many inhabitants does {N} have?", "How many people does {N} have?",
                   "What number of people live in {N}?", "How populous is {N}?",
                   "About how many residents does {N} count?", "What is {N}'s population?"),
    "area": ("How much territory does {N} cover?", "What area does {N} span?",
             "How many square kilometres is {N}?", "How large is {N} in area?",
             "What is the size of {N}?"),
    "point": ("What is the tallest summit of {N}?", "Which peak is the highest in {N}?",
              "Where is the highest ground in {N}?", "Name {N}'s highest mountain.",
              "What is the top of {N} called?"),
    "elevation": ("How tall is the highest peak of {N}?", "To what height does {N} rise?",
                  "How many metres above sea level is the top of {N}?",
                  "How high does the land of {N} reach?", "What is the height of {N}'s summit?"),
    "currency": ("What money is used in {N}?", "What do people pay with in {N}?",
                 "Which money do shops in {N} take?", "What is the money of {N} called?",
                 "In what currency are prices in {N} given?", "What is {N}'s currency?"),
    "symbol": ("What letters stand for {N}?", "How do chemists write {N}?",
               "What is the symbol for {N}?", "Which abbreviation denotes {N}?",
               "What sign represents {N} in formulas?"),
    "number": ("How many protons are in {N}?", "What position does {N} hold in the periodic table?",
               "What is {N}'s atomic number?", "Which element number is {N}?",
               "How many protons does {N}'s nucleus hold?"),
    "series": ("Which family of elements includes {N}?", "What class of element is {N}?",
               "Among which elements is {N} counted?", "What category does {N} fall into?",
               "Which group is {N} part of?"),
    "discoverer": ("Who first identified {N}?", "Who found {N}?", "Who isolated {N} first?",
                   "Whom is the discovery of {N} credited to?", "Which scientist discovered {N}?"),
    "year": ("In what year was {N} first found?", "When did {N} become known to science?",
             "What year was {N} identified?", "When was {N} first reported?"),
    "place": ("In which country was {N} first found?", "Where was {N} first identified?",
              "In what country did the discovery of {N} take place?", "Where was {N} found?"),
}

# rich=True adds these phrasings and the sentence styles of _rich_sentence (a clause of
# description around the fact, as encyclopaedia prose has), and more of the article's background
MORE_QUESTIONS = {
    "capital": ("Which city is the centre of government in {N}?", "What is the main administrative "
                "city of {N}?", "Where does the parliament of {N} meet?", "Which city hosts the "
                "government of {N}?", "What is the political centre of {N}?"),
    "government": ("How is {N} governed?", "What type of government rules {N}?",
                   "What sort of political order does {N} have?", "What is {N}'s form of rule?"),
    "independence": ("When did {N} become an independent state?", "On what day did {N} win "
                     "self-rule?", "What is the date of {N}'s independence?",
                     "When did {N} stop being a colony?"),
    "population": ("How many people call {N} home?", "What is the number of inhabitants of {N}?",
                   "How big is the population of {N}?", "How many citizens and residents does "
                   "{N} have?", "How many live in {N}?"),
    "area": ("How big is {N}?", "What is the total area of {N}?", "How much ground does {N} "
             "take up?", "What is {N}'s extent in square kilometres?"),
    "point": ("What is the highest place in {N}?", "Which mountain tops {N}?", "What is the "
              "loftiest point of {N}?", "Name the summit that is highest in {N}."),
    "elevation": ("What is the elevation of {N}'s highest point?", "How high is the top of "
                  "{N}?", "What height does the summit of {N} reach?"),
    "currency": ("What currency does {N} use?", "What is the legal tender of {N}?",
                 "Which money circulates in {N}?", "What do people in {N} spend?"),
    "symbol": ("What is the chemical symbol of {N}?", "How is {N} written in a formula?",
               "What short form is used for {N}?"),
    "number": ("What is the atomic number of {N}?", "How many protons does an atom of {N} have?",
               "What number does {N} carry in the periodic table?"),
    "series": ("What kind of element is {N}?", "To which group of elements does {N} belong?",
               "In which family is {N} placed?"),
    "discoverer": ("Who discovered {N}?", "Who was the first to isolate {N}?",
                   "By whom was {N} first identified?"),
    "year": ("When was {N} discovered?", "In which year was {N} isolated?",
             "What year saw the discovery of {N}?"),
    "place": ("Where was {N} discovered?", "In which country was {N} isolated?",
              "Where did the discovery of {N} happen?"),
}


def _rich_sentence(category, fact, v, N, rnd):
    """A fact inside a clause of description (None: use the plain styles)."""
    styles = {
        "capital": ((f"{v}, its largest city, has been the capital for a long time.", v),
                    (f"Set on a river, {v} became the capital of {N}.", v),
                    (f"The government sits in {v}, a city of old streets and markets.", v)),
        "population": (lambda ph, a: ((f"Today {ph} people live in {N}, most of them in towns.", a),
                                      (f"With {ph} inhabitants, {N} is busy and young.", a))),
        "currency": ((f"Shoppers in {N} pay in {v}, and banks change other money.", v),
                     (f"The {singular(v)}, printed by the central bank, is used everywhere.",
                      singular(v))),
        "point": ((f"{v}, often covered in snow, is the highest point.", v),
                  (f"Walkers climb {v}, the highest mountain, in summer.", v)),
        "discoverer": ((f"Working in a small laboratory, {v} first isolated {N}.", v),
                       (f"It was {v} who, after long experiments, identified {N}.", v)),
        "series": ((f"Like the rest of the {v}, {N} shares many of its properties.", v),),
        "year": ((f"In {v}, after careful experiments, {N} was first described.", v),),
        "place": ((f"The discovery was made in {v}, in a university laboratory.", v),),
    }
    choice = styles.get(fact)
    if choice is None or rnd.random() < 0.5:
        return None
    if fact == "population":
        phrase, ans = spelled_millions(int(v.replace(",", "")), rnd)
        return rnd.choice(choice(phrase, ans))
    return rnd.choice(choice)


# hard=True adds these phrasings: the synonyms a reader uses (inhabitants, seat of government,
# first isolated, ...)
DISTRACTORS = {
    "geography": ("Tourism has grown steadily since 1990.", "The largest port handles 3 million "
                  "containers a year.", "Winters in the north are cold and dry.",
                  "About 40 percent of the land is farmed.", "The main river is 1,200 km long.",
                  "Its second city is an old trading town.", "Football is the most popular sport.",
                  "Elections are held every 5 years.", "The coastline runs for 800 km."),
    "chemistry": ("It reacts slowly with water at room temperature.", "Small amounts are used in "
                  "industry.", "Its compounds have many colours.", "The pure element melts at "
                  "several hundred degrees.", "It has 2 stable isotopes.", "Traces occur in sea "
                  "water.", "Its name comes from a Greek word."),
}


# ---------------------------------------------------------------- records
def varied_records(records, n_contexts=3, max_facts=4, seed=0, exclude=(), rich=False,
                   hard=False) -> list:
    """Varied records from template records: n_contexts contexts per article, each with up to
    max_facts facts (shuffled, with background and distractor sentences) and a question on each
    fact in a random phrasing; articles named in exclude are skipped. rich=True: more question
    phrasings (MORE_QUESTIONS), facts inside descriptive clauses half the time, and 1-3 of the
    article's background sentences, one of them often first (prose that is not an answer).
    hard=True: a decoy for every asked fact (the same fact of another, not excluded, article of
    the category; rec["decoys"] lists them) and the phrasings of EXTRA_QUESTIONS too."""
    rnd = random.Random(seed)
    out = []
    arts = template_facts(records)
    pool = defaultdict(lambda: defaultdict(list))  # {category: {fact: [(article, value)]}}
    for (category, article), art in sorted(arts.items()):
        if article not in exclude:
            for fact, value in sorted(art["facts"].items()):
                pool[category][fact].append((article, value))
    for (category, article), art in sorted(arts.items()):
        if article in exclude:
            continue
        facts = sorted(art["facts"].items())
        for c in range(n_contexts):
            chosen = rnd.sample(facts, min(len(facts), rnd.randint(2, max_facts)))
            out += _one_context(category, article, chosen, art["background"], rnd, c, rich,
                                pool[category] if hard else None)
    return out


def _one_context(category, article, chosen, background, rnd, c, rich=False, pool=None) -> list:
    """The records of one context; pool ({fact: [(article, value)]}) turns on hard mode."""
    write = _geo_sentences if category == "geography" else _chem_sentences
    pronoun = "the country" if category == "geography" else "the element"
    sentences, answers = [], []
    for k, (fact, value) in enumerate(chosen):
        name = article if k == 0 or rnd.random() < 0.6 else pronoun
        rich_one = _rich_sentence(category, fact, value, name, rnd) if rich else None
        sentence, answer = rich_one or write(fact, value, name, rnd)
        if sentence.startswith(answer):  # the capital letter below becomes part of the answer
            answer = answer[:1].upper() + answer[1:]
        sentences.append(sentence[:1].upper() + sentence[1:])
        answers.append((fact, answer, len(sentences) - 1))
    order = list(range(len(sentences)))
    rnd.shuffle(order)
    if rich:
        extra = rnd.sample(background, min(len(background), rnd.randint(1, 3)))
    else:
        extra = rnd.sample(background[:3], min(len(background[:3]), rnd.randint(0, 1)))
    lead = extra[:1] if rich and rnd.random() < 0.5 else []
    if pool is None:
        extra = extra[len(lead):] + rnd.sample(DISTRACTORS[category], rnd.randint(0, 2))
    else:  # the decoys take the generic distractors' place: the passage must fit a window
        extra = extra[len(lead):]
    body = [sentences[i] for i in order]
    for s in extra:
        body.insert(rnd.randint(0, len(body)), s)
    body = lead + body
    if not any(article in s for s in body[:1]):
        body.insert(0, rnd.choice((f"This note is about {article}.", f"{article} in brief.",
                                   f"Some facts about {article}.")))
    from spike_lib.data.qa_decoys import EXTRA_QUESTIONS, decoys_for

    decoys = decoys_for(article, chosen, answers, pool, rnd) if pool is not None else []
    for d in decoys:  # near its fact (so a window that holds the answer holds the decoy too),
        # never just before a sentence that names no one ("Its ...")
        spots = [p for p in range(1, len(body) + 1) if p == len(body) or article in body[p]]
        j = body.index(next(sentences[i] for f, _, i in answers if f == d[1]))
        near = [p for p in spots if j - 1 <= p <= j + 2]
        body.insert(rnd.choice(near or [min(spots, key=lambda p: abs(p - j))]), d[0])
    context = " ".join(body)
    out = []
    for fact, answer, i in answers:
        where = context.index(sentences[i]) + sentences[i].index(answer)
        bank = QUESTIONS[fact] + (MORE_QUESTIONS[fact] if rich else ())
        bank += EXTRA_QUESTIONS[fact] if pool is not None else ()
        question = rnd.choice(bank).format(N=article)
        slug = re.sub(r"[^a-z0-9]+", "-", f"{category} {article}".lower()).strip("-")
        rec = make_record(f"varied-{slug}-{c}-{fact}", context, question, answer, where,
                          category, article, "varied")
        rec["type"] = FACT_TYPES[fact]
        if pool is not None:
            rec["decoys"] = [{"text": w, "article": o, "type": FACT_TYPES[f]}
                             for _, f, w, o in decoys]
        out.append(rec)
    return out


def build_varied(train_path, out_path, n_contexts=3, seed=0, exclude=(), rich=False,
                 hard=False) -> int:
    """Write the varied records of a template split to out_path; return their number."""
    from spike_lib.data.qa import write_jsonl

    recs = varied_records(load_qa(train_path), n_contexts, seed=seed, exclude=exclude, rich=rich,
                          hard=hard)
    write_jsonl(out_path, recs)
    return len(recs)
