"""Keyword reading of an instruction: what the scripted expert understands of language.

Clauses are read separately, so "do not pick up the cheese, put the bread on the plate instead" means
place bread: a positive request anywhere wins over a prohibition, which the oracle already implies
(placing one slice expects the other to stay).
"""

from __future__ import annotations

import re

from leisaac_tasks.intent import Intent

# Words that name each ingredient; anything else the expert can't act on.
OBJECT_WORDS: dict[str, tuple[str, ...]] = {"cheese": ("cheese",), "bread": ("bread", "toast")}
OTHER_FOOD = ("tomato", "lettuce", "ham", "cucumber", "egg", "onion", "pickle", "bacon")
_NEGATION = re.compile(r"\b(do not|don't|dont|never|not|avoid|leave|keep away|keep (?:\w+ )*off|no)\b")
# "and" joins clauses only before a new verb, so "pick up the cheese and put it ..." stays one request.
_CLAUSE_BREAK = re.compile(r"[,;.]|\b(?:but|instead|then)\b|\band (?=(?:do not|don't|never|pick|put|place|move)\b)")


def _first_object(clause: str) -> str | None:
    mentions = [(m.start(), name) for name, words in OBJECT_WORDS.items() for w in words
                for m in re.finditer(rf"\b{w}\b", clause)]
    mentions += [(m.start(), food) for food in OTHER_FOOD for m in re.finditer(rf"\b{food}\b", clause)]
    return min(mentions)[1] if mentions else None


def first_named_slice(text: str) -> str | None:
    """The first slice the text names, whatever the words around it say: all a bag-of-words reader gets."""
    mentions = [(m.start(), name) for name, words in OBJECT_WORDS.items() for w in words
                for m in re.finditer(rf"\b{w}\b", text.lower())]
    return min(mentions)[1] if mentions else None


def parse_instruction(text: str) -> Intent:
    clauses = [c for c in _CLAUSE_BREAK.split(text.lower()) if c and c.strip()]
    avoided: str | None = None
    for clause in clauses:
        target = _first_object(clause)
        if target is None:
            continue
        if not _NEGATION.search(clause):
            return Intent("place", target)
        avoided = avoided or target
    return Intent("avoid", avoided) if avoided else Intent("none")
