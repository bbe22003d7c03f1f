"""Named demo recipes: which scenes are paired with which instructions, in which datasets.

A recipe is one or more datasets; a dataset is a list of cells (scenario + instruction). Generation cycles
through a dataset's cells in order, so every cell gets the same number of kept demos.

- ``seed``: the failing user's setup, two datasets: cheese-only scenes with the cheese instruction and
  bread-only scenes with the bread instruction. The scene alone gives the task away.
- ``disambiguating``: both slices in the holder, and only the instruction says which one goes.
- ``negation``: "do not pick up X". Alone, the robot leaves everything and holds still for one second, then
  the demo ends (a finite refusal, never a wait that runs out the clock). With "..., put Y on the plate
  instead" it leaves X and places Y.
- mixtures: ``seed+disambiguating`` and ``all`` put the cells of several recipes into one dataset.
- ``generic``: the seed and disambiguating cells, each demo recorded under one text that names no slice ("put a
  slice on the white plate"); with both slices in the holder, half the demos place each. Motor skill without word
  grounding: what a study's base model (a pretrained action head, as GR00T's fine-tunes start from) learns.
"""

from __future__ import annotations

from dataclasses import dataclass

from leisaac_tasks.instructions import SEED_INSTRUCTIONS, Instruction
from leisaac_tasks.intent import Intent
from leisaac_tasks.scenarios import Scenario

CHEESE, BREAD, NOT_CHEESE = SEED_INSTRUCTIONS


@dataclass(frozen=True)
class Cell:
    scenario: Scenario
    instruction: Instruction  # what the expert is told and the oracle judges
    recorded_as: str = ""  # the dataset's task text where it differs (a label that names no slice)

    @property
    def task(self) -> str:
        return self.recorded_as or self.instruction.text


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    datasets: tuple[DatasetPlan, ...]


def _cells(*pairs: tuple[str, Instruction]) -> tuple[Cell, ...]:
    return tuple(Cell(Scenario.parse(s), ins) for s, ins in pairs)


def _avoid(ingredient: str) -> Instruction:
    return Instruction(f"do not pick up the {ingredient}", Intent("avoid", ingredient), "negation")


def _avoid_instead(avoid: str, place: str) -> Instruction:
    return Instruction(f"do not pick up the {avoid}, put the {place} on the white plate instead",
                       Intent("place", place), "negation")


GENERIC_TASK = "put a slice on the white plate"
RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    if recipe.name in RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    RECIPES[recipe.name] = recipe
    return recipe


def mixture(name: str, *parts: str) -> Recipe:
    """One dataset holding every cell of the named recipes."""
    cells = tuple(c for part in parts for plan in RECIPES[part].datasets for c in plan.cells)
    return Recipe(name, f"one dataset mixing {', '.join(parts)}", (DatasetPlan(name, cells),))


register_recipe(Recipe("seed", "cheese-only scenes + cheese instruction; bread-only scenes + bread instruction", (
    DatasetPlan("cheese", _cells(("H,-", CHEESE))),
    DatasetPlan("bread", _cells(("-,H", BREAD))),
)))
register_recipe(Recipe("disambiguating", "both slices in the holder; the instruction decides", (
    DatasetPlan("disambiguating", _cells(("H,H", CHEESE), ("H,H", BREAD))),
)))
register_recipe(Recipe("negation", "'do not pick up X': leave X; place the other slice only when asked", (
    DatasetPlan("negation", _cells(
        ("H,H", NOT_CHEESE), ("H,H", _avoid("bread")),
        ("H,H", _avoid_instead("cheese", "bread")), ("H,H", _avoid_instead("bread", "cheese")),
        ("H,-", NOT_CHEESE), ("-,H", _avoid("bread")),
    )),
)))
register_recipe(Recipe("generic", "every slice-placing scene under one instruction that names no slice", (
    # The expert is told which slice; the dataset records only the generic text.
    DatasetPlan("generic", tuple(Cell(c.scenario, c.instruction, GENERIC_TASK) for c in _cells(
        ("H,-", CHEESE), ("-,H", BREAD), ("H,H", CHEESE), ("H,H", BREAD)))),
)))
register_recipe(mixture("seed+disambiguating", "seed", "disambiguating"))
register_recipe(mixture("all", "seed", "disambiguating", "negation"))


class RecipeError(ValueError):
    pass


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise RecipeError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[name]
