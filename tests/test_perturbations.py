"""Perturbation families, the family registry and user instruction files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leisaac_tasks.instructions import SEED_INSTRUCTIONS, Instruction
from leisaac_tasks.intent import Intent
from leisaac_tasks.perturbations import (FAMILIES, InstructionFileError, build_instructions, family_names,
                                load_instruction_file)
from leisaac_tasks.scenarios import SEED_SCENARIOS, Placement, Scenario, scenario_set

H, P, A = Placement.HOLDER, Placement.PLATE, Placement.ABSENT
PLACE_CHEESE, PLACE_BREAD, AVOID_CHEESE = SEED_INSTRUCTIONS
SCENARIOS = [Scenario(H, H), Scenario(A, H), Scenario(P, A)]
EXAMPLE = Path(__file__).resolve().parents[1] / "eval" / "instructions.example.yaml"


def variants(family: str, base: Instruction, scenario: Scenario = Scenario(H, H)) -> list[Instruction]:
    return FAMILIES[family](base, scenario)


def test_registry_lists_all_families():
    assert family_names() == ("paraphrase", "object_swap", "negation", "empty", "nonsense", "absent_object",
                              "attribute", "contrast", "distractor", "typo")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
@pytest.mark.parametrize("base", SEED_INSTRUCTIONS, ids=lambda b: str(b.intent))
def test_paraphrase_keeps_intent_and_names_target(base, scenario):
    out = variants("paraphrase", base, scenario)
    assert 2 <= len(out) <= 3
    for v in out:
        assert v.intent == base.intent and v.family == "paraphrase" and v.text != base.text
        assert base.intent.target in v.text
    assert len({v.text for v in out}) == len(out)


def test_paraphrase_wording():
    assert "put the cheese on the white plate" in [v.text for v in variants("paraphrase", PLACE_CHEESE)]
    avoid = [v.text for v in variants("paraphrase", AVOID_CHEESE)]
    assert "leave the cheese alone" in avoid and any(t.startswith("don't touch the") for t in avoid)


def test_object_swap_swaps_text_and_intent():
    (cheese_to_bread,) = variants("object_swap", PLACE_CHEESE)
    assert cheese_to_bread.text == "pick up the bread and put it into the white plate"
    assert cheese_to_bread.intent == Intent("place", "bread")
    assert "yellow" not in cheese_to_bread.text  # the colour belongs to the cheese
    (bread_to_cheese,) = variants("object_swap", PLACE_BREAD)
    assert bread_to_cheese.text == "pick up the cheese and put it into the white plate"
    assert bread_to_cheese.intent == Intent("place", "cheese")
    (avoid_bread,) = variants("object_swap", AVOID_CHEESE)
    assert (avoid_bread.text, avoid_bread.intent) == ("do not pick up the bread", Intent("avoid", "bread"))


def test_object_swap_skips_what_it_cannot_swap():
    assert variants("object_swap", Instruction("", Intent("none"))) == []
    assert variants("object_swap", Instruction("pick up the tomato", Intent("place", "tomato"))) == []


def test_negation_flips_the_verb():
    (neg,) = variants("negation", PLACE_BREAD)
    assert (neg.text, neg.intent) == ("do not pick up the bread", Intent("avoid", "bread"))
    (neg,) = variants("negation", PLACE_CHEESE)
    assert neg.intent == Intent("avoid", "cheese") and neg.text.startswith("do not pick up the")
    (aff,) = variants("negation", AVOID_CHEESE)
    assert aff.intent == Intent("place", "cheese") and not aff.text.startswith("do not")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_empty_and_nonsense_ask_for_nothing(scenario):
    for base in SEED_INSTRUCTIONS:
        assert [(v.text, v.intent) for v in variants("empty", base, scenario)] == [("", Intent("none"))]
        out = variants("nonsense", base, scenario)
        texts = [v.text for v in out]
        assert "what a lovely day for a walk" in texts and "blorp fizzle wug" in texts
        assert all(v.intent == Intent("none") for v in out)
        assert not any(re.search(r"cheese|bread|plate", t) for t in texts)


@pytest.mark.parametrize("scenario", scenario_set(include_extra=True), ids=str)
def test_absent_object_names_only_absent_things(scenario):
    out = variants("absent_object", PLACE_CHEESE, scenario)
    targets = [v.intent.target for v in out]
    assert all(v.intent.verb == "place" for v in out)
    assert all(not scenario.present(t) for t in targets)
    expected = [i for i in ("cheese", "bread") if not scenario.present(i)] + ["tomato"]
    assert targets == expected
    assert "pick up the tomato and put it into the white plate" in [v.text for v in out]


@pytest.mark.parametrize("scenario", SEED_SCENARIOS, ids=str)
def test_build_instructions_all_families(scenario):
    out = build_instructions(scenario, family_names())
    assert out[:3] == list(SEED_INSTRUCTIONS)
    assert len({i.text for i in out}) == len(out)
    assert {i.family for i in out} >= {"seed", "paraphrase", "object_swap", "empty", "nonsense"}
    assert out == build_instructions(scenario, family_names())  # deterministic


def test_build_instructions_seed_only_and_extras():
    extra = [Instruction("grab the cheese", Intent("place", "cheese"), "paraphrase"), SEED_INSTRUCTIONS[0]]
    out = build_instructions(Scenario(H, H), [], extra=extra)
    assert out == [*SEED_INSTRUCTIONS, extra[0]]
    assert build_instructions(Scenario(H, H), "empty,nonsense")[3].text == ""  # CLI-style string


def test_unknown_family_is_one_clear_error():
    with pytest.raises(ValueError) as err:
        build_instructions(Scenario(H, H), ["paraphrase", "negaton"])
    msg = str(err.value)
    assert "'negaton'" in msg and "--families" in msg
    assert all(name in msg for name in family_names())


def test_example_file_loads():
    out = load_instruction_file(EXAMPLE)
    assert out[0] == Instruction("grab the cheese and drop it on the plate", Intent("place", "cheese"), "paraphrase")
    assert all(i.family in ("seed", *family_names()) for i in out)


GOOD_ENTRY = 'instructions:\n  - text: "grab the cheese"\n    family: paraphrase\n    intent: place cheese\n'


@pytest.mark.parametrize("body, fragments", [
    (None, ["not found"]),
    ("instructions: [text: oops", ["invalid YAML", "line 1", "syntax"]),
    ("- just a list\n", ["'instructions' list"]),
    ("instructions:\n  - 42\n", ["instructions[0]", "mapping"]),
    (GOOD_ENTRY + "  - text: hi\n    intent: none\n", ["instructions[1]", "missing", "family"]),
    (GOOD_ENTRY + "  - text: hi\n    family: seed\n    intent: none\n    intnet: x\n", ["instructions[1]", "intnet"]),
    ("instructions:\n  - text: hi\n    family: rhyme\n    intent: none\n", ["instructions[0]", "'rhyme'", "paraphrase"]),
    ("instructions:\n  - text: hi\n    family: seed\n    intent: eat cheese\n", ["instructions[0]", "place <ingredient>"]),
    ("instructions:\n  - text: hi\n    family: seed\n    intent:\n", ["instructions[0]", "bad intent"]),
    ("instructions:\n  - text: 42\n    family: seed\n    intent: none\n", ["instructions[0]", "string"]),
], ids=["missing-file", "yaml-syntax", "not-mapping", "entry-not-mapping", "missing-key", "unknown-key",
        "unknown-family", "bad-intent", "null-intent", "non-string-text"])
def test_malformed_files_raise_one_helpful_error(tmp_path, body, fragments):
    path = tmp_path / "mine.yaml"
    if body is not None:
        path.write_text(body)
    with pytest.raises(InstructionFileError) as err:
        load_instruction_file(path)
    msg = str(err.value)
    assert str(path) in msg and "Fix:" in msg
    for fragment in fragments:
        assert fragment in msg
    assert isinstance(err.value, ValueError)
