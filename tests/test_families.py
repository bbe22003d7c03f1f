"""The harder families (attribute, contrast, distractor, typo): deterministic variants with stated intents that the
expert reads, and a grid where the ladder idle < blind < words < expert tells words from meaning."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from eval.grid import MatrixConfig, run
from eval.metrics import success_act, success_refrain
from leisaac_tasks.perturbations import FAMILIES, REWORDING_FAMILIES, build_instructions
from leisaac_tasks.scenarios import SEED_SCENARIOS, Scenario
from policies.instruction_parser import first_named_slice, parse_instruction

NEW = ("attribute", "contrast", "distractor", "typo")
CELLS = tuple(Scenario.parse(s) for s in ("H,H", "H,-", "-,H", "P,H"))


def test_every_generated_instruction_reads_as_its_stated_intent():
    """The expert understands every family, so it scores 1.0 wherever the oracle can score it."""
    for scenario in SEED_SCENARIOS:
        for ins in build_instructions(scenario, tuple(FAMILIES)):
            assert parse_instruction(ins.text) == ins.intent, (scenario.label, ins)


def test_the_variants_are_deterministic_across_processes():
    here = [(i.text, str(i.intent)) for f in NEW for i in build_instructions(Scenario.parse("H,H"), [f])]
    code = ("from leisaac_tasks.perturbations import build_instructions; from leisaac_tasks.scenarios import Scenario;"
            f"print([(i.text, str(i.intent)) for f in {NEW!r} for i in build_instructions(Scenario.parse('H,H'), [f])])")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert there.strip() == repr(here)


def test_what_each_family_says():
    hh = Scenario.parse("H,H")
    texts = {f: [i.text for i in build_instructions(hh, [f]) if i.family == f] for f in NEW}
    assert "pick up the yellow slice and put it into the white plate" in texts["attribute"]
    assert "not the cheese — put the bread on the white plate" in texts["contrast"]
    assert "it's lunchtime; do not pick up the cheese" in texts["distractor"]
    for text in texts["typo"]:  # one light typo of the object word, which a bag of words no longer finds
        assert first_named_slice(text) is None and parse_instruction(text).target in ("cheese", "bread")
    # The first slice a contrast names is the one to leave: a word matcher takes the wrong one.
    for ins in build_instructions(hh, ["contrast"]):
        if ins.family == "contrast":
            assert first_named_slice(ins.text) != ins.intent.target
    assert REWORDING_FAMILIES >= set(NEW) and not REWORDING_FAMILIES & {"negation", "object_swap", "empty"}


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("families")
    csv_path = run(MatrixConfig(policies=("expert", "words", "blind", "idle"), scenarios=CELLS, families=NEW,
                                seeds=(0, 1), out=out), progress=False)
    return pd.read_csv(csv_path, keep_default_na=False)


def _per_family(df: pd.DataFrame, policy: str) -> dict[str, tuple[float, float]]:
    rows = df[df.policy == policy]
    return {f: (round(success_act(g).value, 4), round(success_refrain(g).value, 4)) for f, g in rows.groupby("family")}


def test_expert_scores_1_and_idle_what_the_oracle_says(grid):
    assert set(_per_family(grid, "expert").values()) == {(1.0, 1.0)}
    assert set(_per_family(grid, "idle").values()) == {(0.0, 1.0)}  # never acts: 0 where it must, 1 where it mustn't


def test_words_follows_names_only(grid):
    """Pinned, and what a bag of words must get: the seed's wording and its asides are followed where a slice must
    be placed (not where "not" forbids it); a colour, a contrast or a typo defeats it."""
    assert _per_family(grid, "words") == {
        "seed": (1.0, 0.7143), "distractor": (1.0, 0.7143),
        "attribute": (0.0, 1.0),  # names no slice: does nothing
        "contrast": (0.0, 0.0),  # takes the slice it was told to leave
        "typo": (0.0, 1.0),  # no exact name: does nothing
    }


def test_blind_ignores_every_family_alike(grid):
    """Pinned: the same seeds give the same picks whatever the text; only the cells each family holds differ."""
    assert _per_family(grid, "blind") == {"seed": (0.6, 0.5), "distractor": (0.6, 0.5), "typo": (0.6, 0.5),
                                          "attribute": (0.6, 0.4091), "contrast": (0.6, 0.3333)}


def test_the_ladder_on_contrast_and_attribute(grid):
    for family in ("contrast", "attribute"):
        rows = grid[grid.family == family]
        act = {p: success_act(g).value for p, g in rows.groupby("policy")}
        assert act["idle"] == act["words"] == 0.0 < act["blind"] < act["expert"] == 1.0, family


def test_list_instructions_shows_each_family_and_a_bad_name_is_one_clear_error(capsys):
    from eval.run_matrix import main

    assert main(["--list-instructions", "--scenarios", "H,H", "--families", ",".join(NEW)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "scenario\tfamily\tintent\ttext"
    assert {line.split("\t")[1] for line in listed[1:]} == {"seed", *NEW}
    assert "(H,H)\tcontrast\tplace bread\t'not the cheese — put the bread on the white plate'" in listed
    with pytest.raises(SystemExit) as exc:
        main(["--list-instructions", "--families", "contrats"])
    assert exc.value.code == 2 and "unknown perturbation family 'contrats'" in capsys.readouterr().err
