"""An instruction is the text a policy reads plus the intent the oracle scores against.

Keeping the intent next to the text means perturbations declare their meaning when they
are written, so nothing downstream has to guess what a sentence asks for.
"""

from __future__ import annotations

from dataclasses import dataclass

from leisaac_tasks.env import BREAD_INSTRUCTION, CHEESE_INSTRUCTION
from leisaac_tasks.intent import Intent

SEED_FAMILY = "seed"


@dataclass(frozen=True)
class Instruction:
    text: str
    intent: Intent
    family: str = SEED_FAMILY


# The seed user's three instructions, verbatim.
SEED_INSTRUCTIONS: tuple[Instruction, ...] = (
    Instruction(CHEESE_INSTRUCTION, Intent("place", "cheese")),
    Instruction(BREAD_INSTRUCTION, Intent("place", "bread")),
    Instruction("do not pick up the cheese", Intent("avoid", "cheese")),
)
