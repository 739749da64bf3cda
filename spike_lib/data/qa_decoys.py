"""Hard negatives for the varied QA records: decoys and more question phrasings.

A decoy states a fact of the asked type about another article of the same category ("By
comparison, Austria is governed from Vienna."), so a passage holds two values of the type a
question asks for and only the question's words pick the answer; EXTRA_QUESTIONS adds phrasings
per fact type. Used by spike_lib.data.qa_varied with hard=True (measured in
data/checkpoints/CONTEXT.md, session 8: no gain on the paraphrase validation questions).
Taught in: notebooks/09b_span_qa.ipynb
"""

import re

from spike_lib.data.qa_varied import article_a, spelled_millions

EXTRA_QUESTIONS = {
    "capital": ("What is the seat of government of {N}?", "Which city is {N} governed from?",
                "What is the main city of {N}?", "In which city does {N}'s government sit?",
                "Where is the government of {N} based?", "What city houses the government of {N}?",
                "Where is {N} ruled from?", "What is the capital of {N}?"),
    "government": ("What form of government does {N} have?", "What type of state is {N}?",
                   "What kind of political system runs {N}?", "How is power organised in {N}?",
                   "What regime governs {N}?", "What system of rule is used in {N}?"),
    "independence": ("When did {N} gain its independence?",
                     "On what date did {N} become independent?",
                     "When did {N} achieve sovereignty?", "What day marks {N}'s independence?",
                     "When did {N} break free from colonial rule?",
                     "When did {N} win its freedom?",
                     "On which date did {N} become self-governing?"),
    "population": ("How many inhabitants live in {N}?", "How many residents does {N} have?",
                   "How many people live in {N}?", "What is the head count of {N}?",
                   "Roughly how many people live in {N}?", "About how many people does {N} have?",
                   "How many people is {N} home to?", "What is the size of {N}'s population?",
                   "What is the population of {N}?"),
    "area": ("How large is {N}?", "What is the land area of {N}?", "How much land does {N} cover?",
             "How many square kilometres does {N} cover?", "How big is the territory of {N}?",
             "What is the surface of {N} in square kilometres?", "What is the extent of {N}?"),
    "point": ("What is the highest mountain in {N}?", "Which is the tallest peak of {N}?",
              "What is the loftiest summit in {N}?", "Which mountain is the highest point of {N}?",
              "What is the highest peak in {N} called?",
              "Which hill or mountain is highest in {N}?"),
    "elevation": ("How high is the highest point of {N}?",
                  "What altitude does the top of {N} reach?",
                  "How many metres high is the highest peak in {N}?",
                  "What is the maximum elevation in {N}?",
                  "How far above sea level is {N}'s highest summit?",
                  "How high does the tallest mountain of {N} rise?"),
    "currency": ("Which currency is used in {N}?", "What money do people in {N} use?",
                 "What is the official currency of {N}?", "What do you pay with in {N}?",
                 "In what money are prices in {N} quoted?",
                 "What do the shops of {N} accept as payment?"),
    "symbol": ("What is the chemical sign of {N}?", "How is {N} abbreviated in formulas?",
               "What is the element symbol of {N}?", "Which letters are used for {N}?",
               "What short symbol does {N} have?", "How is {N} written in the periodic table?"),
    "number": ("What atomic number does {N} have?", "What is the proton number of {N}?",
               "How many protons does {N} have?", "Where does {N} stand in the periodic table?",
               "What number is {N} in the periodic table?", "What is the element number of {N}?"),
    "series": ("To which series of elements does {N} belong?", "What group of elements is {N} in?",
               "Which set of elements does {N} belong to?", "What type of element is {N}?",
               "Which chemical family is {N} a member of?",
               "{N} is classed as what kind of element?"),
    "discoverer": ("Who first found {N}?", "Who made the discovery of {N}?",
                   "Who first described {N}?", "Which chemist first isolated {N}?",
                   "Who is credited with discovering {N}?", "By whom was {N} first made?"),
    "year": ("In what year was {N} discovered?", "When was {N} first isolated?",
             "What year was {N} first made?", "When was {N} found?",
             "In which year did {N} become known?", "When was {N} first identified?"),
    "place": ("In which country was {N} discovered?", "Where was {N} first isolated?",
              "In what place was {N} first made?", "Where did the discovery of {N} take place?",
              "In which city or country was {N} found?", "Where was the discovery of {N} made?"),
}


def decoy_sentence(fact, w, other, rnd) -> tuple:
    """(sentence, value as written) stating fact value w of another article; the sentence
    names the other article, never the article the passage is about."""
    ph = w
    if fact == "population":
        ph, w = spelled_millions(int(w.replace(",", "")), rnd)
    elif fact == "area":
        w = f"{w.replace(' sq km', '')} {rnd.choice(('square kilometres', 'sq km', 'km2'))}"
        ph = w
    elif fact == "elevation":
        w = ph = rnd.choice((w, f"{w.replace(' m', '')} metres"))
    styles = {
        "capital": (f"{w}, the capital of {other}, lies further away.",
                    f"By comparison, {other} is governed from {w}.",
                    f"{other}, by contrast, has its capital at {w}.",
                    f"The seat of government of {other} is {w}."),
        "government": (f"{other}, by contrast, is {article_a(w)}.",
                       f"Unlike it, {other} is governed as {article_a(w)}.",
                       f"The government of {other} is {article_a(w)}."),
        "independence": (f"{other} became independent on {w}.",
                         f"By comparison, {other} gained independence on {w}.",
                         f"Independence came to {other} on {w}."),
        "population": (f"{other}, by comparison, has {ph} people.",
                       f"{other} is home to {ph} residents.",
                       f"The population of {other} stands at {ph}."),
        "area": (f"{other} covers {w}.", f"By comparison, {other} spans {w}.",
                 f"The area of {other} is {w}."),
        "point": (f"The highest point of {other} is {w}.",
                  f"{w} is the tallest summit of {other}.",
                  f"In {other}, by contrast, the land peaks at {w}."),
        "elevation": (f"The highest peak of {other} rises to {w}.",
                      f"At its top, {other} reaches {w} above sea level.",
                      f"By comparison, the summit of {other} is {w} high."),
        "currency": (f"{other} uses {w}.", f"In {other}, by contrast, people pay with {w}.",
                     f"Prices in {other} are given in {w}."),
        "symbol": (f"The symbol of {other} is {w}.", f"Chemists write {other} as {w}.",
                   f"{other}, by contrast, has the symbol {w}."),
        "number": (f"{other} has atomic number {w}.",
                   f"By comparison, {other} is element number {w}.",
                   f"An atom of {other} holds {w} protons."),
        "series": (f"{other}, by contrast, is one of the {w}.", f"{other} belongs to the {w}.",
                   f"Unlike it, {other} counts among the {w}."),
        "discoverer": (f"{other} was first identified by {w}.",
                       f"{w}, by contrast, discovered {other}.",
                       f"The discovery of {other} is credited to {w}."),
        "year": (f"{other} was discovered in {w}.",
                 f"By comparison, {other} became known in {w}.",
                 f"The year {w} saw the first report of {other}."),
        "place": (f"{other} was discovered in {w}.",
                  f"The discovery of {other}, by contrast, was made in {w}."),
    }
    return rnd.choice(styles[fact]), w


def word_in(part, text) -> bool:
    return re.search(rf"(?<!\w){re.escape(part)}(?!\w)", text) is not None


def decoys_for(article, chosen, answers, pool, rnd) -> list:
    """[(sentence, fact, value, other article)]: one decoy per asked fact, from another article
    of the category whose value is not the article's (as stored or as written: "transition
    metals" is no decoy for "transition metal"), nor inside the answer, nor around it."""
    out = []
    for (fact, value), (_, answer, _) in zip(chosen, answers):
        others = [(o, w) for o, w in pool.get(fact, ())
                  if w != value and o != article and o not in article and article not in o]
        for _ in range(20):
            if not others:
                break
            other, w = rnd.choice(others)
            sentence, written = decoy_sentence(fact, w, other, rnd)
            if (written.lower() != answer.lower() and not word_in(answer, sentence)
                    and not word_in(written, answer) and article not in sentence):
                out.append((sentence[:1].upper() + sentence[1:], fact, written, other))
                break
    return out
