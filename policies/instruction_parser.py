"""Keyword reading of an instruction: what the scripted expert understands of language."""

from __future__ import annotations

import re

from leisaac_tasks.intent import Intent

# Words that name each ingredient; anything else the expert can't act on.
OBJECT_WORDS: dict[str, tuple[str, ...]] = {"cheese": ("cheese",), "bread": ("bread", "toast")}
OTHER_FOOD = ("tomato", "lettuce", "ham", "cucumber", "egg", "onion", "pickle", "bacon")
_NEGATION = re.compile(r"\b(do not|don't|dont|never|not|avoid|leave|keep away|keep (?:\w+ )*off|no)\b")


def parse_instruction(text: str) -> Intent:
    lowered = text.lower()
    mentions = [(m.start(), name) for name, words in OBJECT_WORDS.items() for w in words
                for m in re.finditer(rf"\b{w}\b", lowered)]
    mentions += [(m.start(), food) for food in OTHER_FOOD for m in re.finditer(rf"\b{food}\b", lowered)]
    if not mentions:
        return Intent("none")
    target = min(mentions)[1]
    return Intent("avoid" if _NEGATION.search(lowered) else "place", target)
