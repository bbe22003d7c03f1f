"""The one registry of instruction perturbation families, plus user-supplied instruction files.

A family turns a base instruction into variants whose intents are stated, not inferred:
``paraphrase`` keeps the meaning, ``object_swap`` and ``negation`` change it, and ``empty``,
``nonsense`` and ``absent_object`` ask for nothing the scene allows. A policy that follows
language must change its behaviour exactly where the intent changes.

The harder families tell words from meaning: ``attribute`` names a slice by its colour, not its name;
``contrast`` says which slice not to take and then which to take, so the first slice named is the wrong one;
``distractor`` wraps the request in an irrelevant clause; ``typo`` misspells the object word. Every variant is
deterministic: the same base and scene always give the same texts.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import yaml

from leisaac_tasks.instructions import SEED_FAMILY, SEED_INSTRUCTIONS, Instruction
from leisaac_tasks.intent import Intent
from leisaac_tasks.scenarios import INGREDIENTS, Scenario

Family = Callable[[Instruction, Scenario], list[Instruction]]
FAMILIES: dict[str, Family] = {}

# Colour words belong to their noun: the seed says "yellow cheese" but plain "bread".
_COLOUR = {"cheese": "yellow"}
PLACE_TEMPLATE = "pick up the {} and put it into the white plate"  # the seed's own phrasing
AVOID_TEMPLATE = "do not pick up the {}"
NEVER_PRESENT = "tomato"  # an ingredient no scenario contains
# Families that reword the instruction in a style of their own (synonyms, colours, contrasts, asides, typos), as
# opposed to a minimal edit of the seed's wording (a word swapped, a "do not" added, the text removed). A change of
# meaning is read within one style (eval.metrics.same_wording_style), so reacting to the style can't pass for it.
REWORDING_FAMILIES: set[str] = set()


def register_family(name: str, rewords: bool = False) -> Callable[[Family], Family]:
    """Register a family under ``name``; its variants are stamped with that family and deduplicated. ``rewords``:
    its variants have a wording style of their own (see ``REWORDING_FAMILIES``)."""

    def decorate(fn: Family) -> Family:
        if name in FAMILIES or name == SEED_FAMILY:
            raise ValueError(f"perturbation family {name!r} is already registered")
        if rewords:
            REWORDING_FAMILIES.add(name)

        # Stamping here keeps each generator free of bookkeeping and the family label always truthful.
        @functools.wraps(fn)
        def family(base: Instruction, scenario: Scenario) -> list[Instruction]:
            return _dedupe(replace(v, family=name) for v in fn(base, scenario))

        FAMILIES[name] = family
        return family

    return decorate


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def _noun(ingredient: str, coloured: bool = True) -> str:
    return f"{_COLOUR[ingredient]} {ingredient}" if coloured and ingredient in _COLOUR else ingredient


def _dedupe(instructions: Iterable[Instruction]) -> list[Instruction]:
    """First instruction with a given text wins, so the seed and earlier families keep their labels."""
    seen: dict[str, Instruction] = {}
    for ins in instructions:
        seen.setdefault(ins.text, ins)
    return list(seen.values())


_PARAPHRASES = {
    "place": ("put the {plain} on the white plate", "place the {coloured} onto the plate",
              "move the {plain} to the white plate"),
    "avoid": ("leave the {plain} alone", "don't touch the {coloured}", "keep away from the {plain}"),
}


@register_family("paraphrase", rewords=True)
def paraphrase(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """Same intent, new words; an intent of ``none`` has nothing to reword."""
    target = base.intent.target
    if target is None:
        return []
    return [Instruction(t.format(plain=_noun(target, coloured=False), coloured=_noun(target)), base.intent)
            for t in _PARAPHRASES[base.intent.verb]]


_SWAP = {"cheese": "bread", "bread": "cheese"}
# The optional colour word is swallowed with "cheese" so bread never becomes yellow.
_SWAP_RE = re.compile(r"\b(?:yellow\s+)?(cheese|bread)\b", re.IGNORECASE)


@register_family("object_swap")
def object_swap(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """Swap cheese and bread in text and intent: a minimal edit that must flip the target."""
    if base.intent.target not in _SWAP:
        return []
    text = _SWAP_RE.sub(lambda m: _SWAP[m.group(1).lower()], base.text)
    if text == base.text:  # the text never named the object, so there is nothing to swap
        return []
    return [Instruction(text, Intent(base.intent.verb, _SWAP[base.intent.target]))]


@register_family("negation")
def negation(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """``place X`` becomes "do not pick up the X"; ``avoid X`` becomes the affirmative request."""
    target = base.intent.target
    if base.intent.verb == "place":
        return [Instruction(AVOID_TEMPLATE.format(_noun(target)), Intent("avoid", target))]
    if base.intent.verb == "avoid":
        return [Instruction(PLACE_TEMPLATE.format(_noun(target)), Intent("place", target))]
    return []


@register_family("empty")
def empty(base: Instruction, scenario: Scenario) -> list[Instruction]:
    return [Instruction("", Intent("none"))]


NONSENSE_TEXTS = ("what a lovely day for a walk", "blorp fizzle wug")


@register_family("nonsense")
def nonsense(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """Unrelated English and gibberish: neither asks for anything, so nothing should move."""
    return [Instruction(t, Intent("none")) for t in NONSENSE_TEXTS]


@register_family("absent_object")
def absent_object(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """Ask for ingredients this scene lacks: the ones absent here, and one that is never present."""
    missing = [i for i in INGREDIENTS if not scenario.present(i)] + [NEVER_PRESENT]
    return [Instruction(PLACE_TEMPLATE.format(_noun(i)), Intent("place", i)) for i in missing]


# --- words vs meaning -----------------------------------------------------------------------------------------
# What the scene shows of each slice (SceneSpec's colours: cheese (1.0, 0.80, 0.10), bread (0.80, 0.58, 0.33)), and
# a colour no slice in any scene has.
ATTRIBUTES: dict[str, str] = {"cheese": "yellow", "bread": "tan"}
ABSENT_ATTRIBUTE = ("red", NEVER_PRESENT)


@register_family("attribute", rewords=True)
def attribute(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """The slice named by its colour ("the yellow slice" is the cheese, "the tan slice" the bread), and a colour
    no slice has (nothing to place). A policy that grounded names but not what they look like fails it."""
    target = base.intent.target
    if target not in ATTRIBUTES:
        return []
    if base.intent.verb == "avoid":
        return [Instruction(f"do not pick up the {ATTRIBUTES[target]} slice", base.intent)]
    colour, missing = ABSENT_ATTRIBUTE
    return [Instruction(PLACE_TEMPLATE.format(f"{ATTRIBUTES[target]} slice"), base.intent),
            Instruction(PLACE_TEMPLATE.format(f"{colour} slice"), Intent("place", missing))]


_CONTRAST = ("not the {avoid} — put the {take} on the white plate", "leave the {avoid}, take the {take} instead")


@register_family("contrast", rewords=True)
def contrast(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """A negation with its alternative: "not the cheese — put the bread on the white plate". The first slice named
    is the one to leave, so a word matcher picks the wrong one. ``place X`` leaves the other slice for X;
    ``avoid X`` asks for the other slice instead."""
    target = base.intent.target
    if target not in _SWAP or base.intent.verb not in ("place", "avoid"):
        return []
    take, avoid = (target, _SWAP[target]) if base.intent.verb == "place" else (_SWAP[target], target)
    return [Instruction(t.format(avoid=_noun(avoid, coloured=False), take=_noun(take, coloured=False)),
                        Intent("place", take)) for t in _CONTRAST]


DISTRACTORS = ("it's lunchtime; {}", "{}, and then wait", "while the kettle boils, {}")


@register_family("distractor", rewords=True)
def distractor(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """The request with an irrelevant clause before or after it: the meaning must not change."""
    if base.intent.verb == "none":
        return []
    return [Instruction(t.format(base.text), base.intent) for t in DISTRACTORS]


TYPO_VARIANTS = 2


def misspell(word: str, rng) -> str:
    """One light typo, as speech-to-text or a hurried hand makes it: a letter dropped, doubled or two swapped."""
    k = int(rng.integers(1, len(word) - 1))  # never the first letter, never the last: k + 1 is in the word
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:k] + word[k + 1:]
    if kind == 1:
        return word[:k] + word[k] + word[k:]
    return word[:k] + word[k + 1] + word[k] + word[k + 2:]


@register_family("typo", rewords=True)
def typo(base: Instruction, scenario: Scenario) -> list[Instruction]:
    """The object word misspelled (``TYPO_VARIANTS`` different typos, seeded by the text): the same meaning."""
    import numpy as np

    target = base.intent.target
    match = re.search(rf"\b{target}\b", base.text) if target else None
    if match is None:
        return []
    rng = np.random.default_rng(sum(base.text.encode()))  # deterministic across runs and processes
    out, tries = [], 0
    while len(out) < TYPO_VARIANTS and tries < 20:
        tries += 1
        wrong = misspell(target, rng)
        text = base.text[:match.start()] + wrong + base.text[match.end():]
        if wrong != target and text not in [o.text for o in out]:
            out.append(Instruction(text, base.intent))
    return out


def check_families(families: Sequence[str] | str) -> list[str]:
    if isinstance(families, str):  # tolerate the raw "--families a,b" string
        families = families.split(",")
    names = list(dict.fromkeys(f.strip() for f in families if f.strip() and f.strip() != SEED_FAMILY))
    unknown = [f for f in names if f not in FAMILIES]
    if unknown:
        raise ValueError(
            f"unknown perturbation famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; "
            f"valid families are: {', '.join(family_names())}. "
            f"Pass a comma-separated subset of those, e.g. --families paraphrase,negation"
        )
    return names


def build_instructions(scenario: Scenario, families: Sequence[str] | str,
                       base: Sequence[Instruction] = SEED_INSTRUCTIONS,
                       extra: Sequence[Instruction] = ()) -> list[Instruction]:
    """Base instructions, then each family's variants of each base (in the order given), then extras.

    Deduplicated by text, first occurrence kept, so the order is deterministic. ``families`` may
    also be a comma-separated string; "seed" in it is accepted and adds nothing (bases always come).
    """
    names = check_families(families)
    variants = [v for name in names for b in base for v in FAMILIES[name](b, scenario)]
    return _dedupe([*base, *variants, *extra])


class InstructionFileError(ValueError):
    """A user instruction file could not be used; the message says where and how to fix it."""


_FILE_KEYS = ("text", "family", "intent")
_FILE_EXAMPLE = ("instructions:\n  - text: \"grab the cheese and drop it on the plate\"\n"
                 "    family: paraphrase\n    intent: place cheese")


def load_instruction_file(path: str | Path) -> list[Instruction]:
    """Read user instructions from YAML (see ``eval/instructions.example.yaml``)."""
    path = Path(path)

    def fail(where: str, problem: str, fix: str) -> InstructionFileError:
        return InstructionFileError(f"{path}: {where}: {problem}. Fix: {fix}")

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail("file", "not found", "check the path, or copy eval/instructions.example.yaml") from None
    except (OSError, UnicodeDecodeError) as e:
        raise fail("file", f"cannot be read ({e})", "pass a readable UTF-8 YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(e, "problem", None) or "not valid YAML"
        raise fail(where, f"invalid YAML ({problem})",
                   "correct the YAML syntax; quote texts that contain ':' or '#'") from None
    if not isinstance(data, dict) or not isinstance(data.get("instructions"), list):
        raise fail("top level", "expected a mapping with an 'instructions' list",
                   f"write the file in the form\n{_FILE_EXAMPLE}")

    valid_families = (SEED_FAMILY, *family_names())
    out = []
    for i, entry in enumerate(data["instructions"]):
        where = f"instructions[{i}]"
        if not isinstance(entry, dict):
            raise fail(where, f"expected a mapping, got {entry!r}", "give each entry text, family and intent keys")
        missing = [k for k in _FILE_KEYS if k not in entry]
        extra = [k for k in entry if k not in _FILE_KEYS]
        if missing or extra:
            problem = "; ".join(filter(None, [missing and f"missing key(s) {', '.join(missing)}",
                                              extra and f"unknown key(s) {', '.join(map(str, extra))}"]))
            raise fail(where, problem, f"use exactly the keys {', '.join(_FILE_KEYS)}")
        text, family, intent = entry["text"], entry["family"], entry["intent"]
        if not isinstance(text, str):
            raise fail(where, f"text must be a string, got {text!r}", "quote the text, e.g. text: \"...\"")
        if family not in valid_families:
            raise fail(where, f"unknown family {family!r}", f"use one of {', '.join(valid_families)}")
        try:
            parsed = Intent.parse(intent) if isinstance(intent, str) else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise fail(where, f"bad intent {intent!r}", "write 'place <ingredient>', 'avoid <ingredient>' or 'none'")
        out.append(Instruction(text, parsed, family))
    return out
