"""Keyword reading of an instruction: what the scripted expert understands of language.

Clauses are read separately, so "do not pick up the cheese, put the bread on the plate instead" (or "not the
cheese — put the bread on the white plate") means place bread: a positive request anywhere wins over a
prohibition, which the oracle already implies (placing one slice expects the other to stay). A slice may be named
by its colour ("the yellow slice") or with a light typo ("chese", one letter dropped, doubled or swapped).
"""

from __future__ import annotations

import re

from leisaac_tasks.intent import Intent
from leisaac_tasks.perturbations import ABSENT_ATTRIBUTE, ATTRIBUTES

# Words that name each ingredient; anything else the expert can't act on.
OBJECT_WORDS: dict[str, tuple[str, ...]] = {"cheese": ("cheese",), "bread": ("bread", "toast")}
OTHER_FOOD = ("tomato", "lettuce", "ham", "cucumber", "egg", "onion", "pickle", "bacon")
_NEGATION = re.compile(r"\b(do not|don't|dont|never|not|avoid|leave|keep away|keep (?:\w+ )*off|no)\b")
# "and" joins clauses only before a new verb, so "pick up the cheese and put it ..." stays one request.
_CLAUSE_BREAK = re.compile(r"[,;.:—]|\b(?:but|instead|then)\b|\band (?=(?:do not|don't|never|pick|put|place|move)\b)")
# A slice by what it looks like: "<colour> slice" (leisaac_tasks.perturbations.ATTRIBUTES, plus a colour no slice has).
_COLOURED = {colour: name for name, colour in ATTRIBUTES.items()} | {ABSENT_ATTRIBUTE[0]: ABSENT_ATTRIBUTE[1]}


def _one_typo_apart(word: str, name: str) -> bool:
    """A letter dropped, doubled, changed or two neighbours swapped (the first letter kept): one edit."""
    if word == name or word[:1] != name[:1] or abs(len(word) - len(name)) > 1 or len(name) < 4:
        return False
    if len(word) == len(name):
        diff = [k for k in range(len(word)) if word[k] != name[k]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and word[diff[0]] == name[diff[1]]
                                  and word[diff[1]] == name[diff[0]])
    short, long_ = sorted((word, name), key=len)
    return any(long_[:k] + long_[k + 1:] == short for k in range(len(long_)))


def _named_slices(text: str) -> list[tuple[int, str]]:
    """(position, slice) of every slice the text names by name."""
    return [(m.start(), name) for name, words in OBJECT_WORDS.items() for w in words
            for m in re.finditer(rf"\b{w}\b", text)]


def _mentions(clause: str) -> list[tuple[int, str]]:
    found = _named_slices(clause)
    found += [(m.start(), food) for food in OTHER_FOOD for m in re.finditer(rf"\b{food}\b", clause)]
    found += [(m.start(), _COLOURED[m.group(1)]) for m in re.finditer(rf"\b({'|'.join(_COLOURED)}) slice\b", clause)]
    if not found:  # only then: a misspelled name
        found = [(m.start(), name) for m in re.finditer(r"\b[a-z]+\b", clause) for name, words in OBJECT_WORDS.items()
                 if any(_one_typo_apart(m.group(0), w) for w in words)]
    return found


def _first_object(clause: str) -> str | None:
    mentions = _mentions(clause)
    return min(mentions)[1] if mentions else None


def first_named_slice(text: str) -> str | None:
    """The first slice the text names, whatever the words around it say: all a bag-of-words reader gets."""
    mentions = _named_slices(text.lower())
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
