"""The person at the table: terminal prompts, single-key answers, an injectable input stream.

Per trial the operator is shown where to put the cheese and the bread (text and a reference picture), presses
Enter to start (``s`` skips the trial, ``q`` quits), and after the run answers one key per ingredient:

    u untouched   m moved (pushed or tipped)   p on the plate   d dropped elsewhere   l lifted (still held)
    Enter  accept the automatic guess shown next to the prompt
    r redo the trial   s skip it   q quit (resume later with --resume)

Keys come from a ``KeySource``: ``TerminalKeys`` reads single key presses on a terminal; ``StreamKeys`` reads one
answer per line from any text stream (an empty line is Enter), which is how tests and ``--input FILE`` script it.
The end of a scripted input counts as ``q``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, TextIO

import numpy as np

from leisaac_tasks.outcomes import Outcome
from leisaac_tasks.scenarios import INGREDIENTS, Placement, Scenario

OUTCOME_KEYS: dict[str, Outcome] = {"u": Outcome.UNTOUCHED, "m": Outcome.MOVED, "p": Outcome.ON_PLATE,
                                    "d": Outcome.DROPPED, "l": Outcome.LIFTED}
ACCEPT, REDO, SKIP, QUIT = "", "r", "s", "q"
_KEY_HELP = "u untouched, m moved, p on plate, d dropped, l lifted/held"


class KeySource(Protocol):
    def key(self) -> str:
        """The next key, lower-case; "" for Enter. Raises ``EOFError`` when the input has ended."""


class StreamKeys:
    """One answer per line of a text stream: its first character, or "" for an empty line."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def key(self) -> str:
        line = self.stream.readline()
        if not line:
            raise EOFError("operator input ended")
        return line.strip()[:1].lower()


class TerminalKeys:
    """Single key presses from a terminal, no Enter needed (cbreak mode keeps Ctrl-C working)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdin

    def key(self) -> str:
        import termios
        import tty

        fd = self.stream.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            ch = os.read(fd, 1).decode(errors="ignore")
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if ch == "":
            raise EOFError("terminal closed")
        if ch == "\x1b":  # Esc quits, like the teleop tool
            return QUIT
        return "" if ch in "\r\n" else ch.lower()


def default_keys() -> KeySource:
    return TerminalKeys() if sys.stdin.isatty() else StreamKeys(sys.stdin)


@dataclass(frozen=True)
class Guess:
    """An automatic outcome proposal for one ingredient (from ``eval.real_arm.detect.propose``)."""

    outcome: Outcome
    confidence: float
    why: str = ""


@dataclass
class Answer:
    """What the operator decided after a run: ``action`` is "outcome", "redo", "skip" or "quit"."""

    action: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # per ingredient: "operator" or "auto"


def describe_scenario(scenario: Scenario) -> list[str]:
    """Where each ingredient goes, in words the operator can follow at the table."""
    both_on_plate = scenario.cheese == scenario.bread == Placement.PLATE
    slot = {"cheese": "the holder's slot nearer the robot", "bread": "the holder's slot farther from the robot"}
    lines = []
    for name in INGREDIENTS:
        placement = scenario.placement(name)
        if placement == Placement.HOLDER:
            lines.append(f"{name}: standing in {slot[name]}")
        elif placement == Placement.PLATE:
            lines.append(f"{name}: lying flat on the plate" + (" (on top of the cheese)" if both_on_plate and
                                                               name == "bread" else ""))
        else:
            lines.append(f"{name}: not on the table")
    return lines


class Operator:
    def __init__(self, keys: KeySource, out: TextIO | None = None, countdown_s: float = 3.0,
                 auto_accept: bool = False, show_pictures: bool = True):
        self.keys = keys
        self.out = out or sys.stdout
        self.countdown_s = countdown_s
        self.auto_accept = auto_accept
        self.show_pictures = show_pictures and _has_display()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _key(self, prompt: str) -> str:
        self.out.write(prompt)
        self.out.flush()
        try:
            key = self.keys.key()
        except EOFError:
            key = QUIT
        self.out.write(f"{key or '<Enter>'}\n")
        return key

    # --- before a run ----------------------------------------------------------------------------------------
    def announce(self, header: str, scenario: Scenario, instruction: str, picture: Path | None,
                 image: np.ndarray | None = None) -> None:
        self.say(f"\n=== {header}")
        self.say(f"scene {scenario.label}:")
        for line in describe_scenario(scenario):
            self.say(f"  {line}")
        self.say(f'instruction: "{instruction}"')
        if picture is not None:
            self.say(f"reference picture: {picture}")
            if self.show_pictures and image is not None:
                _show(image, "chefmate: place the scene like this")

    def ready(self) -> str:
        """Enter starts the run ("go"); also "skip" or "quit"."""
        if self.auto_accept:
            return "go"
        while True:
            key = self._key("place the scene, step back, press Enter to start (s skip, q quit): ")
            if key == ACCEPT:
                return "go"
            if key in (SKIP, QUIT):
                return {SKIP: "skip", QUIT: "quit"}[key]
            self.say("  Enter, s or q")

    def countdown(self) -> None:
        whole = int(np.ceil(self.countdown_s))
        for n in range(whole, 0, -1):
            self.out.write(f"{n}... ")
            self.out.flush()
            time.sleep(self.countdown_s / whole)
        self.say("go")

    # --- after a run -------------------------------------------------------------------------------------------
    def ask_outcome(self, scenario: Scenario, guesses: Mapping[str, Guess] | None = None) -> Answer:
        guesses = guesses or {}
        present = [name for name in INGREDIENTS if scenario.present(name)]
        if self.auto_accept and all(name in guesses for name in present):
            for name in present:
                self.say(f"{name}: {_guess_text(guesses[name])} (accepted automatically)")
            return Answer("outcome", {n: guesses[n].outcome for n in present}, {n: "auto" for n in present})
        answer = Answer("outcome")
        self.say(f"outcome? {_KEY_HELP}; Enter accepts the guess; r redo, s skip, q quit")
        for name in present:
            guess = guesses.get(name)
            hint = f" [guess: {_guess_text(guess)}]" if guess else ""
            while True:
                key = self._key(f"  {name}{hint}: ")
                if key in (REDO, SKIP, QUIT):
                    return Answer({REDO: "redo", SKIP: "skip", QUIT: "quit"}[key])
                if key == ACCEPT and guess is not None:
                    answer.outcomes[name], answer.sources[name] = guess.outcome, "auto"
                    break
                if key in OUTCOME_KEYS:
                    answer.outcomes[name], answer.sources[name] = OUTCOME_KEYS[key], "operator"
                    break
                self.say(f"    one of: {_KEY_HELP}" + ("; Enter for the guess" if guess else "") +
                         "; r, s or q")
        return answer


def _guess_text(guess: Guess) -> str:
    return f"{guess.outcome.value} {guess.confidence:.0%}" + (f" ({guess.why})" if guess.why else "")


def _has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _show(image: np.ndarray, title: str) -> None:
    """A cv2 window when OpenCV has a GUI build; the headless build (the default install) silently can't."""
    try:
        import cv2

        cv2.imshow(title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        cv2.waitKey(1)
    except Exception:  # noqa: BLE001  no GUI support: the PNG path was printed
        pass
