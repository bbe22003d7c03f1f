"""Language-necessity report on hand-made records and journals; expected values are worked out in the comments."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict
from pathlib import Path

import pytest

from leisaac_tasks.dataset import JOURNAL, Attempt
from leisaac_tasks.outcomes import EpisodeOutcome, Outcome
from training.demos.necessity import (REDUNDANT_BITS, Record, analyse, behaviour_from_label,
                                      conditional_entropy, entropy, load_records, main, scene_only_accuracy)
from training.demos.recipes import RECIPES

CHEESE = "pick up the yellow cheese and put it into the white plate"
BREAD = "pick up the bread and put it into the white plate"
AVOID = "do not pick up the cheese"
INTENT = {CHEESE: "place cheese", BREAD: "place bread", AVOID: "avoid cheese"}
DOES = {CHEESE: "picked_cheese", BREAD: "picked_bread", AVOID: "picked_bread"}
LABEL = {"picked_cheese": "cheese=on_plate,bread=absent", "picked_bread": "cheese=absent,bread=on_plate"}


def rec(scene: str, instruction: str, n: int = 1, behaviour: str | None = None, dataset: str = "") -> list[Record]:
    return [Record(scene, instruction, behaviour or DOES[instruction], INTENT.get(instruction, ""), dataset)] * n


def h2(p: float) -> float:
    """Binary entropy in bits."""
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def seed_records(n: int = 10) -> list[Record]:
    """The seed recipe: cheese-only scenes with the cheese instruction, bread-only with the bread one."""
    return rec("H,-", CHEESE, n, dataset="seed") + rec("-,H", BREAD, n, dataset="seed")


def disambiguating_records(n_cheese: int = 6, n_bread: int = 6) -> list[Record]:
    """Both slices present; the instruction alone says which one to move."""
    return rec("H,H", CHEESE, n_cheese, dataset="dis") + rec("H,H", BREAD, n_bread, dataset="dis")


# --- information measures --------------------------------------------------------------------------------------
def test_entropy_of_uniform_choices_is_log2_of_their_number():
    assert entropy([5, 5]) == pytest.approx(1.0)
    assert entropy([1, 1, 1, 1]) == pytest.approx(2.0)
    assert entropy([7]) == 0.0 and entropy([]) == 0.0
    # H(Y|X): X splits the episodes in half; one half is certain (0 bits), the other a fair coin (1 bit) -> 0.5.
    pairs = [("a", "y")] * 4 + [("b", "y")] * 2 + [("b", "z")] * 2
    assert conditional_entropy(pairs) == pytest.approx(0.5)


def test_leave_one_out_on_tiny_cells():
    # Two one-episode cells with different labels: each held-out episode's cell is empty, so the predictor falls
    # back to the other episode's label and misses. In-sample, each cell trivially predicts itself.
    assert scene_only_accuracy([("a", "x"), ("b", "y")]) == (0.0, 1.0)
    # One cell {x, x, y}. Holding out an x leaves {x, y}: a tie, half credit. Holding out y leaves {x, x}: a miss.
    # LOO = (0.5 + 0.5 + 0) / 3; in-sample the majority x is right twice out of three.
    loo, fit = scene_only_accuracy([("a", "x"), ("a", "x"), ("a", "y")])
    assert loo == pytest.approx(1 / 3) and fit == pytest.approx(2 / 3)
    # Three cheese-only episodes and one bread-only: the lone bread episode, held out, meets an empty cell and
    # the overall majority (cheese) misses it; the cheese ones are predicted by their two cell-mates.
    loo, fit = scene_only_accuracy([("H-", CHEESE)] * 3 + [("-H", BREAD)])
    assert loo == pytest.approx(3 / 4) and fit == 1.0
    assert scene_only_accuracy([("a", "x")]) == (0.0, 1.0)  # nothing to learn from: a miss


@pytest.mark.parametrize("cheese,bread", list(itertools.product(list(Outcome), repeat=2)))
def test_behaviour_is_recovered_exactly_from_the_outcome_label(cheese, bread):
    eo = EpisodeOutcome({"cheese": cheese, "bread": bread})
    assert behaviour_from_label(eo.label) == eo.behaviour


@pytest.mark.parametrize("label", ["", "cheese=flying,bread=absent", "ham=on_plate", "cheese"])
def test_unreadable_outcome_label_is_rejected(label):
    with pytest.raises(ValueError):
        behaviour_from_label(label)


# --- the report on records ---------------------------------------------------------------------------------------
def test_seed_shaped_data_is_language_redundant():
    r = analyse(seed_records())
    # Half the episodes ask for cheese, half for bread: H(instruction) = 1 bit. Each scene has one instruction,
    # so H(instruction | scene) = 0 and the scene-only guess is always right, held out or not.
    for t in (r.instruction, r.intent):
        assert t.entropy_bits == pytest.approx(1.0)
        assert t.cond_entropy_bits == 0.0 and t.language_share == 0.0
        assert t.loo_accuracy == 1.0 and t.in_sample_accuracy == 1.0
    assert r.redundant
    assert r.verdict.startswith("LANGUAGE-REDUNDANT: the scene alone determines the instruction in every episode")
    assert "H(instruction|scene)=0.00 bits" in r.verdict
    assert r.action.cond_entropy_bits == 0.0 and r.action_info_from_language_bits == 0.0
    assert r.single_instruction_cells == ["H-", "-H"]
    assert len(r.missing_cells) == 6
    warnings = "\n".join(r.warnings)
    assert "H(action|scene)=0.00 bits" in warnings and "(H,–) always 'place cheese'" in warnings
    assert "coverage misses 6 of the 8 seed cells" in warnings


def test_disambiguating_data_needs_language():
    r = analyse(disambiguating_records(6, 6))
    # One scene, a fair choice between two instructions: H(instruction | scene) = H(instruction) = 1 bit, all of
    # which language must supply. In-sample the majority guess is right half the time; held out, the episode's
    # own instruction becomes the 5-vs-6 minority every time, so LOO scores 0.
    assert r.instruction.cond_entropy_bits == pytest.approx(1.0)
    assert r.instruction.language_share == pytest.approx(1.0)
    assert r.instruction.in_sample_accuracy == 0.5 and r.instruction.loo_accuracy == 0.0
    assert not r.redundant
    assert r.verdict.startswith("LANGUAGE-NECESSARY: language carries 1.00 bits beyond the scene")
    # Each instruction has its own action, so the instruction explains the action's whole bit within the scene.
    assert r.action_info_from_language_bits == pytest.approx(1.0)
    assert not any("H(action|scene)" in w for w in r.warnings)


def test_roughly_balanced_choice_is_about_one_bit():
    r = analyse(disambiguating_records(7, 5))
    # H = h(7/12) ~ 0.98 bits. Holding out a cheese episode leaves 6 vs 5: cheese, a hit (7 times); holding out
    # a bread one leaves 7 vs 4: cheese, a miss. LOO = in-sample = 7/12.
    assert r.instruction.cond_entropy_bits == pytest.approx(h2(7 / 12))
    assert r.instruction.cond_entropy_bits == pytest.approx(1.0, abs=0.03)
    assert r.instruction.loo_accuracy == pytest.approx(7 / 12)
    assert not r.redundant


def test_mixture_of_seed_and_disambiguating():
    r = analyse(seed_records(10) + disambiguating_records(6, 6))
    # 32 episodes, 16 per instruction: H(instruction) = 1 bit. Only the 12 (H,H) episodes are uncertain, 1 bit
    # each: H(instruction | scene) = 12/32 = 0.375 bits. LOO: the 20 single-instruction episodes are hits, the
    # balanced (H,H) ones all misses -> 20/32; in-sample 20 + 6 hits -> 26/32.
    assert r.instruction.entropy_bits == pytest.approx(1.0)
    assert r.instruction.cond_entropy_bits == pytest.approx(12 / 32)
    assert r.instruction.loo_accuracy == pytest.approx(20 / 32)
    assert r.instruction.in_sample_accuracy == pytest.approx(26 / 32)
    assert not r.redundant and "0.38 bits beyond the scene" in r.verdict
    assert [(d.name, d.episodes) for d in r.datasets] == [("seed", 20), ("dis", 12)]
    assert r.single_instruction_cells == ["H-", "-H"]  # the seed half still gives the task away there


def recipe_records(name: str, per_cell: int = 4) -> dict[str, list[Record]]:
    """Records for each dataset of a registered recipe, ``per_cell`` kept demos per cell, as generate keeps them."""
    does = {"place cheese": "picked_cheese", "place bread": "picked_bread"}
    return {plan.name: [Record(c.scenario.label, c.task, does.get(str(c.instruction.intent), "none"),
                               str(c.instruction.intent), plan.name) for c in plan.cells] * per_cell
            for plan in RECIPES[name].datasets}


def test_the_registered_recipes():
    seed = recipe_records("seed")
    # Each seed dataset alone has one instruction: H(instruction) = 0, nothing for language to add.
    alone = analyse(seed["cheese"])
    assert alone.redundant and alone.instruction.entropy_bits == 0.0 and "the same instruction" in alone.verdict
    # Trained together (the user's mixture) the two are still fully determined by the scene.
    assert analyse(seed["cheese"] + seed["bread"]).instruction.cond_entropy_bits == 0.0
    assert analyse(seed["cheese"] + seed["bread"]).redundant
    # The base model's demos: one text for every demo, the slice placed varies. Words can teach nothing there.
    (generic,) = recipe_records("generic").values()
    base = analyse(generic)
    assert base.redundant and base.instruction.entropy_bits == 0.0 and "the same instruction" in base.verdict
    assert {r.behaviour for r in generic if "H,H" in r.scene} == {"picked_cheese", "picked_bread"}
    (dis,) = recipe_records("disambiguating").values()
    assert analyse(dis).instruction.cond_entropy_bits == pytest.approx(1.0) and not analyse(dis).redundant
    # The one-dataset mixture: four equal cells, one instruction in (H,–) and (–,H), a fair coin in (H,H), which
    # holds half the episodes: H(instruction | scene) = 1/2 * 1 bit.
    (mix,) = recipe_records("seed+disambiguating").values()
    assert analyse(mix).instruction.cond_entropy_bits == pytest.approx(0.5) and not analyse(mix).redundant
    assert not analyse(next(iter(recipe_records("all").values()))).redundant


def test_near_redundant_data_is_flagged_by_held_out_accuracy():
    # 99 cheese-only episodes asking for cheese plus one asking to avoid it: H(instruction | scene) = h(0.01)
    # ~ 0.08 bits, over REDUNDANT_BITS, but the scene-only guess misses only the stray one (LOO 0.99 >= 0.98).
    r = analyse(rec("H,-", CHEESE, 99) + rec("H,-", AVOID, 1, behaviour="none"))
    assert r.instruction.cond_entropy_bits == pytest.approx(h2(0.01))
    assert r.instruction.cond_entropy_bits > REDUNDANT_BITS
    assert r.instruction.loo_accuracy == pytest.approx(0.99)
    assert r.redundant and "almost all of it" in r.verdict


def test_paraphrases_do_not_count_as_language():
    # Two wordings per scene, but each scene still asks for one thing: the text carries 1 bit beyond the scene,
    # the intent none, and only the intent matters for what the robot should do.
    records = [Record("H,-", text, "picked_cheese", "place cheese") for text in (CHEESE, "put the cheese on the plate")]
    records += [Record("-,H", text, "picked_bread", "place bread") for text in (BREAD, "put the bread on the plate")]
    r = analyse(records * 5)
    assert r.instruction.cond_entropy_bits == pytest.approx(1.0)
    assert r.intent.cond_entropy_bits == 0.0
    assert r.redundant and "what the instruction asks for" in r.verdict and "rephrases" in r.verdict


def test_instructions_that_do_not_change_the_action_are_warned_about():
    # (H,H): "place bread" and "avoid cheese" differ in words and intent, but both demos pick the bread.
    r = analyse(rec("H,H", BREAD, 5) + rec("H,H", AVOID, 5))
    assert not r.redundant and r.action.cond_entropy_bits == 0.0
    assert any(w.startswith("H(action|scene)=0.00 bits") for w in r.warnings)
    # Actions vary, but the same way under both instructions: I(action; instruction | scene) = 0.
    mixed = [Record("H,H", text, b, INTENT[text])
             for text in (CHEESE, BREAD) for b in ("picked_cheese", "picked_bread")]
    r = analyse(mixed * 3)
    assert r.action.cond_entropy_bits == pytest.approx(1.0) and r.action_info_from_language_bits == 0.0
    assert any("actions don't follow it" in w for w in r.warnings)


def test_coverage_table_counts_cells_by_instruction():
    # Three spellings of (H,–) are one cell; (–,P) is outside the seed's eight and is listed after them.
    r = analyse(rec("H,-", CHEESE, 2) + rec("(H,–)", AVOID) + rec("H-", CHEESE) + rec("P,H", BREAD, 3)
                + rec("-,P", BREAD))
    assert r.coverage["H-"] == {CHEESE: 3, AVOID: 1}
    assert r.coverage["PH"] == {BREAD: 3}
    assert r.coverage["HH"] == {}
    assert list(r.coverage)[-1] == "-P" and len(r.coverage) == 9
    assert r.missing_cells == ["HH", "-H", "HP", "PP", "--", "P-"]
    assert [(i.id, i.text, i.episodes) for i in r.instructions] == [("I1", CHEESE, 3), ("I2", AVOID, 1),
                                                                     ("I3", BREAD, 4)]
    md = r.to_markdown()
    assert "| (H,–) | 3 | 1 | 0 | 4 |" in md and "| (H,H) | 0 | 0 | 0 | 0 |" in md
    assert "Seed cells with no episodes: (H,H), (–,H), (H,P), (P,P), (–,–), (P,–)." in md
    assert any("fewer than 5 episodes" in w for w in r.warnings)  # (P,H) has 3, (–,P) 1


def test_report_json_round_trips_the_numbers():
    r = analyse(seed_records())
    data = json.loads(r.to_json())
    assert data["redundant"] is True and data["verdict"] == r.verdict
    assert data["instruction"]["cond_entropy_bits"] == 0.0 and data["thresholds"]["redundant_bits"] == REDUNDANT_BITS
    assert data["coverage"]["H-"] == {CHEESE: 10}


# --- datasets and the CLI ------------------------------------------------------------------------------------
def write_journal(root: Path, episodes: list[tuple[str, str]], rejected: int = 0) -> Path:
    """A journal as DemoWriter writes it: kept (scenario, instruction) episodes, plus rejected attempts."""
    (root / "meta").mkdir(parents=True)
    lines = []
    for k, (scenario, instruction) in enumerate(episodes):
        lines.append(Attempt(attempt=k, source="scripted", scenario=scenario, instruction=instruction,
                             intent=INTENT[instruction], layout_seed=k, success=True,
                             outcome=LABEL[DOES[instruction]], behaviour=DOES[instruction], frames=100,
                             episode_index=k))
    for k in range(rejected):  # a failed pick: the journal keeps it, the dataset doesn't
        lines.append(Attempt(attempt=len(episodes) + k, source="scripted", scenario="H,H", instruction=CHEESE,
                             intent="place cheese", layout_seed=99, success=False,
                             outcome="cheese=dropped,bread=untouched", behaviour="picked_cheese", frames=80))
    (root / JOURNAL).write_text("".join(json.dumps(asdict(a)) + "\n" for a in lines))
    return root


def seed_dir(tmp_path: Path) -> Path:
    return write_journal(tmp_path / "seed", [("H,-", CHEESE)] * 4 + [("-,H", BREAD)] * 4, rejected=3)


def dis_dir(tmp_path: Path) -> Path:
    return write_journal(tmp_path / "dis", [("H,H", CHEESE)] * 3 + [("H,H", BREAD)] * 3)


def test_loader_keeps_only_kept_episodes_and_names_each_dataset(tmp_path):
    records, summaries = load_records([seed_dir(tmp_path), dis_dir(tmp_path)])
    assert len(records) == 14
    assert [(s.name, s.episodes, s.attempts) for s in summaries] == [("seed", 8, 11), ("dis", 6, 6)]
    assert {r.behaviour for r in records if r.scene == "H-"} == {"picked_cheese"}  # from the outcome label


@pytest.mark.parametrize("stored,expect", [("disturbed", "disturbed"), ("", "picked_cheese")])
def test_loader_uses_the_stored_behaviour_else_the_outcome_label(tmp_path, stored, expect):
    root = write_journal(tmp_path / "ds", [("H,H", CHEESE)])  # outcome label: cheese on the plate
    line = json.loads((root / JOURNAL).read_text())
    line["behaviour"] = stored
    (root / JOURNAL).write_text(json.dumps(line) + "\n")
    assert load_records([root])[0][0].behaviour == expect


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    out, js = tmp_path / "report.md", tmp_path / "report.json"
    assert main([str(seed_dir(tmp_path)), str(dis_dir(tmp_path)), "--out", str(out), "--json", str(js)]) == 0
    assert capsys.readouterr().out.startswith("LANGUAGE-NECESSARY")
    md = out.read_text()
    assert "| **mixture** | | 14 | 17 |" in md and "| (H,H) | 3 | 3 | 6 |" in md
    # 6 of 14 episodes sit in the one evenly split cell: H(instruction | scene) = 6/14 bits.
    assert json.loads(js.read_text())["instruction"]["cond_entropy_bits"] == pytest.approx(6 / 14)


def test_cli_fail_if_redundant(tmp_path, capsys):
    assert main([str(seed_dir(tmp_path)), "--fail-if-redundant"]) == 3
    assert "LANGUAGE-REDUNDANT" in capsys.readouterr().out
    assert main([str(dis_dir(tmp_path)), "--fail-if-redundant"]) == 0
    assert main([str(seed_dir(tmp_path / "again"))]) == 0  # without the flag, redundancy is only reported


def write_parquet_dataset(root: Path, episodes: int, frames: int) -> None:
    """The parts of a LeRobot v3 dataset that check_dataset reads: info.json and parquet row counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "meta" / "info.json").write_text(json.dumps({"total_episodes": episodes, "total_frames": frames}))
    for part, rows in (("data", frames), ("meta/episodes", episodes)):
        (root / part / "chunk-000").mkdir(parents=True)
        pq.write_table(pa.table({"i": list(range(rows))}), root / part / "chunk-000" / "file-000.parquet")


def test_cli_checks_a_full_dataset_against_its_journal(tmp_path):
    good = seed_dir(tmp_path)
    write_parquet_dataset(good, episodes=8, frames=800)
    assert main([str(good)]) == 0
    stale = write_journal(tmp_path / "stale", [("H,-", CHEESE)] * 2)
    write_parquet_dataset(stale, episodes=5, frames=500)
    assert main([str(stale)]) == 2


def _journal_with(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "bad"
    (root / "meta").mkdir(parents=True)
    (root / JOURNAL).write_text(text)
    return root


@pytest.mark.parametrize("case,expect", [
    ("missing", "is not a folder"),
    ("no_journal", "has no meta/chefmate_attempts.jsonl"),
    ("recipe_out", "it holds datasets, list them instead:"),
    ("torn_line", "line 2, is not a demo journal entry"),
    ("bad_scenario", "attempt 0 can't be read"),
    ("bad_label", "attempt 0 can't be read"),
    ("only_rejected", "no kept episodes"),
    ("no_parquet", "never finalized"),
    ("bad_info", "info.json is unreadable"),
    ("twice", "listed twice"),
])
def test_cli_bad_input_is_one_clear_message(tmp_path, capsys, case, expect):
    good = json.dumps(asdict(Attempt(attempt=0, source="scripted", scenario="H,-", instruction=CHEESE,
                                     intent="place cheese", layout_seed=0, success=True,
                                     outcome=LABEL["picked_cheese"], frames=10, episode_index=0)))
    args = {
        "missing": lambda: [tmp_path / "nowhere"],
        "no_journal": lambda: [tmp_path],
        "recipe_out": lambda: [seed_dir(tmp_path).parent],  # generate's --out, one folder per recipe part
        "torn_line": lambda: [_journal_with(tmp_path, good + '\n{"attempt": 1, "sour')],
        "bad_scenario": lambda: [_journal_with(tmp_path, good.replace('"H,-"', '"X,Y"'))],
        "bad_label": lambda: [_journal_with(tmp_path, good.replace("on_plate", "flying"))],
        "only_rejected": lambda: [_journal_with(tmp_path, good.replace('"episode_index": 0', '"episode_index": null'))],
        "no_parquet": lambda: [_journal_with(tmp_path, good)],
        "bad_info": lambda: [_journal_with(tmp_path, good)],
        "twice": lambda: [_journal_with(tmp_path, good)] * 2,
    }[case]()
    if case in ("no_parquet", "bad_info"):
        (args[0] / "meta" / "info.json").write_text("{}" if case == "no_parquet" else "{not json")
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expect in err and "Traceback" not in err
    assert err.count("\n") == 1  # one line
