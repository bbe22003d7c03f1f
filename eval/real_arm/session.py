"""The operator-guided grid: trial after trial, resumable across days.

``OUT/session.json`` fixes the plan: the trial order (``MatrixConfig.episodes()``, the sim benchmark's own list)
and the arm it runs on. ``OUT/session.jsonl`` is the journal, one line per decision, appended and fsynced:
``done`` (with the results row, the operator's answers, the automatic guesses, the safety log and the dataset
episode), ``skipped``, ``redo``, ``interrupted`` and ``quit``. A resumed session skips every trial the journal
calls done or skipped and asks again about the rest, in the same order; a row the journal has but
``episodes.csv`` lost (a kill between the two writes) is restored from the journal.

Per trial: reference picture and placement text -> Enter -> countdown -> the policy runs (``trial.run_trial``)
-> the automatic guess, if any -> the operator's keys -> the dataset episode, the journal line, the
``episodes.csv`` row (the sim benchmark's columns; ``backend`` names the arm) and, on the simulated arm, the
physics ground truth in ``OUT/sim_ground_truth.csv``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eval.real_arm.guessing import Guesser
from eval.real_arm.operator import Answer, Operator
from eval.real_arm.recording import TrialRecorder
from eval.real_arm.reference import ReferencePictures
from eval.real_arm.robot import JointUnits, is_simulated
from eval.real_arm.safety import RateClock, SafetyFilter, SafetyLog, safe_stop
from eval.real_arm.trial import RobotFault, TrialRun, prepare_arm, run_trial
from eval.results import ResultStore
from eval.runner import Episode, episode_row, error_text
from leisaac_tasks.atomic import write_text_atomic
from leisaac_tasks.instructions import Instruction
from leisaac_tasks.intent import Intent
from leisaac_tasks.outcomes import EpisodeOutcome, Outcome
from leisaac_tasks.scenarios import INGREDIENTS, Scenario
from policies.base import Policy

SESSION_FILE, JOURNAL_FILE, TRUTH_FILE = "session.json", "session.jsonl", "sim_ground_truth.csv"
FINISHED = frozenset({"done", "skipped"})  # journal statuses a resumed session does not offer again
TRUTH_COLUMNS = ("policy", "scenario", "instruction", "seed", "truth_cheese", "truth_bread",
                 "guess_cheese", "guess_bread", "confidence_cheese", "confidence_bread",
                 "answer_cheese", "answer_bread")


class SessionError(ValueError):
    """The output folder can't hold this session as asked; the message says what to pass instead."""


def trial_record(e: Episode) -> dict[str, Any]:
    i = e.instruction
    return {"policy": e.policy, "scenario": e.scenario.label, "instruction": i.text, "family": i.family,
            "intent": str(i.intent), "seed": e.seed}


def trial_from_record(d: dict[str, Any]) -> Episode:
    return Episode(d["policy"], Scenario.parse(d["scenario"]),
                   Instruction(d["instruction"], Intent.parse(d["intent"]), d["family"]), int(d["seed"]))


def _key(record: dict[str, Any]) -> tuple[str, ...]:
    return trial_from_record(record).key()


class SessionFile:
    """Checks ``OUT`` against the plan when made (nothing written); ``start`` writes ``session.json`` if new."""

    def __init__(self, out: Path, plan: list[Episode], meta: dict[str, Any], resume: bool):
        self.out = Path(out)
        self.path, self.journal = self.out / SESSION_FILE, self.out / JOURNAL_FILE
        planned = [trial_record(e) for e in plan]
        if self.path.exists():
            stored = json.loads(self.path.read_text())
            done = len(self.finished())
            if not resume:
                raise SessionError(f"{self.out} already holds a session ({done} of {len(stored['trials'])} trials "
                                   f"finished); pass --resume to continue it, or choose a new --out (nothing was "
                                   f"changed)")
            if stored["robot"] != meta["robot"]:
                raise SessionError(f"{self.out} is a session on --robot {stored['robot']}, not {meta['robot']}; "
                                   f"resume it with --robot {stored['robot']} or choose a new --out")
            if stored["trials"] != planned:
                raise SessionError(f"{self.out} was started with another grid ({len(stored['trials'])} trials; "
                                   f"started as: {stored.get('command', '?')}); resume with the same --policies, "
                                   f"--scenarios, --families and --seeds, or choose a new --out")
            self.meta, self.new = stored, False
        else:
            if (self.out / "episodes.csv").exists():
                raise SessionError(f"{self.out} holds an episodes.csv but no {SESSION_FILE}: not a real-arm "
                                   f"session; choose a new --out")
            self.meta, self.new = {**meta, "started": _now(), "trials": planned}, True

    def start(self) -> None:
        if self.new:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(self.meta, indent=1))
            self.new = False

    def records(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        data = self.journal.read_bytes()
        if data and not data.endswith(b"\n"):  # a kill mid-write: drop the torn line, that trial runs again
            data = data[: data.rfind(b"\n") + 1]
            self.journal.write_bytes(data)
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()]

    def finished(self) -> dict[tuple[str, ...], dict[str, Any]]:
        return {_key(r["trial"]): r for r in self.records() if r.get("status") in FINISHED}

    def append(self, record: dict[str, Any]) -> None:
        with self.journal.open("a") as f:
            f.write(json.dumps({"time": _now(), **record}) + "\n")
            f.flush()
            os.fsync(f.fileno())


class GroundTruthLog:
    """Simulated arm only: the physics outcome next to the guess and the answer, to score detection."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(TRUTH_COLUMNS)

    def keys(self) -> set[tuple[str, ...]]:
        with self.path.open(newline="") as f:
            return {(r["policy"], r["scenario"], r["instruction"], r["seed"]) for r in csv.DictReader(f)}

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, TRUTH_COLUMNS).writerow({c: row.get(c, "") for c in TRUTH_COLUMNS})


def results_row(episode: Episode, outcome: EpisodeOutcome, run: TrialRun, backend: str) -> dict[str, Any]:
    """The sim benchmark's row (``eval.results.COLUMNS``) for an answered trial."""
    failed = run.error_behaviour
    return episode_row(episode, backend, outcome, run.error if failed else "", run.steps, run.seconds,
                       run.wall_seconds, failure=failed or "policy_error")


@dataclass(frozen=True)
class SessionSettings:
    backend: str  # the results' backend column: which arm
    max_steps: int  # per trial, at control_hz
    control_hz: float = 30.0
    realtime: bool = True  # real-time pacing (the real arm); the simulated arm runs as fast as it can


class Session:
    def __init__(self, robot, units: JointUnits, policies: dict[str, Policy], operator: Operator,
                 safety: SafetyFilter, file: SessionFile, store: ResultStore, recorder: TrialRecorder | None,
                 references: ReferencePictures, guesser: Guesser | None, settings: SessionSettings):
        self.robot, self.units, self.policies, self.operator = robot, units, policies, operator
        self.safety, self.file, self.store, self.recorder = safety, file, store, recorder
        self.references, self.guesser, self.settings = references, guesser, settings
        self.simulated = is_simulated(robot)
        self.clock = RateClock(settings.control_hz, settings.realtime)
        self.truth = GroundTruthLog(file.out / TRUTH_FILE) if self.simulated else None
        self.runs = 0  # runs started in this process: the first few are slow

    # --- the grid -----------------------------------------------------------------------------------------
    def run(self, plan: list[Episode]) -> str:
        """Returns how it ended: "complete", "quit", "interrupted" or "robot_error"."""
        finished = self.file.finished()
        self._restore_rows(finished)
        todo = [(n, e) for n, e in enumerate(plan, 1) if e.key() not in finished]
        seconds = self.settings.max_steps / self.settings.control_hz
        self.operator.say(f"{len(plan)} trials, {len(plan) - len(todo)} already finished, {len(todo)} to go; "
                          f"{self.settings.max_steps} steps ({seconds:.1f} s) each on {self.settings.backend}")
        try:
            for number, episode in todo:
                ended = self._trial(number, len(plan), episode)
                if ended is not None:
                    return ended
        except KeyboardInterrupt:  # Ctrl-C at a prompt: the arm is idle but powered
            log = SafetyLog()
            safe_stop(self.robot, self.units, self.safety.cfg, self.clock, log, reason="Ctrl-C")
            self.file.append({"status": "interrupted", "where": "prompt", "safety": log.to_json()})
            return "interrupted"
        return "complete"

    def _restore_rows(self, finished: dict[tuple[str, ...], dict[str, Any]]) -> None:
        for key, record in finished.items():
            if record["status"] == "done" and key not in self.store.done:
                self.store.append(record["row"])
            if self.truth is not None and record.get("truth_row") and key not in self.truth.keys():
                self.truth.append(record["truth_row"])

    def _trial(self, number: int, total: int, episode: Episode) -> str | None:
        """Run one trial until it is answered or skipped; returns how the session ends, or None to go on."""
        record = {"trial": trial_record(episode), "number": number}
        redos = 0
        while True:
            path, image = self.references.picture(episode.scenario, episode.seed)
            self.operator.announce(f"trial {number}/{total}: policy {episode.policy}, seed {episode.seed}, "
                                   f"{episode.instruction.family}", episode.scenario, episode.instruction.text,
                                   path, image)
            if self.simulated:  # the simulated operator's hands lay the table out
                self.robot.stage(episode.scenario, episode.seed, episode.instruction.text)
            choice = self.operator.ready()
            if choice != "go":
                self.file.append({**record, "status": "skipped" if choice == "skip" else "quit"})
                return "quit" if choice == "quit" else None

            prep = SafetyLog()
            try:
                prepare_arm(self.robot, self.units, self.safety.cfg, self.clock, prep)
            except RobotFault as fault:
                return self._lost_before_run(record, prep, str(fault))
            except Exception as exc:  # noqa: BLE001  LeRobot errors reach here unwrapped
                return self._lost_before_run(record, prep, error_text(exc))
            self.operator.countdown()
            slow = self.runs < self.safety.cfg.slow_trials
            self.runs += 1
            run = run_trial(self.robot, self.units, self.policies[episode.policy], episode, self.safety,
                            self.clock, self.recorder, self.settings.max_steps, slow)
            run.safety.events[:0] = prep.events
            if run.status == "interrupted":
                self._discard(episode, "interrupted")
                self.file.append({**record, "status": "interrupted", "steps": run.steps,
                                  "safety": run.safety.to_json()})
                self.operator.say("interrupted: the arm went to rest and torque is off; resume with --resume")
                return "interrupted"

            guesses = self.guesser.guess(run.before, run.after, episode.scenario, run.frames) if self.guesser else {}
            truth = self.robot.ground_truth() if self.simulated else None
            if run.status != "finished":
                self.operator.say(f"the run ended early: {run.status}: {run.error}")
            answer = self.operator.ask_outcome(episode.scenario, guesses)
            extra = {"steps": run.steps, "run_status": run.status, "safety": run.safety.to_json(),
                     "guesses": {n: {"outcome": g.outcome.value, "confidence": g.confidence, "why": g.why}
                                 for n, g in guesses.items()}}
            if answer.action in ("redo", "skip", "quit"):
                self._discard(episode, answer.action)
                status = {"redo": "redo", "skip": "skipped", "quit": "quit"}[answer.action]
                self.file.append({**record, "status": status, **extra})
                if answer.action == "redo":
                    redos += 1
                    continue
                return "quit" if answer.action == "quit" else None
            self._finish(episode, record, run, answer, truth, redos, extra)
            if run.status == "robot_error":
                self.operator.say("the arm stopped answering: its results so far are saved. Check the USB cable "
                                  "and servo power, then resume with --resume")
                return "robot_error"
            return None

    def _finish(self, episode: Episode, record: dict[str, Any], run: TrialRun, answer: Answer,
                truth: EpisodeOutcome | None, redos: int, extra: dict[str, Any]) -> None:
        outcome = EpisodeOutcome({n: answer.outcomes.get(n, Outcome.ABSENT) for n in INGREDIENTS})
        row = results_row(episode, outcome, run, self.settings.backend)
        extra = {**extra, "answers": {n: o.value for n, o in answer.outcomes.items()}, "sources": answer.sources,
                 "redos": redos}
        index = (self.recorder.keep(episode, outcome, bool(row["success"]), extra)
                 if self.recorder is not None else None)
        done = {**record, "status": "done", "row": row, "episode_index": index, **extra}
        if truth is not None:
            guesses = extra["guesses"]
            done["truth_row"] = {
                "policy": episode.policy, "scenario": episode.scenario.label,
                "instruction": episode.instruction.text, "seed": episode.seed,
                **{f"truth_{n}": truth.per_ingredient[n].value for n in INGREDIENTS},
                **{f"guess_{n}": guesses[n]["outcome"] for n in guesses},
                **{f"confidence_{n}": round(guesses[n]["confidence"], 4) for n in guesses},
                **{f"answer_{n}": outcome.per_ingredient[n].value for n in INGREDIENTS}}
        # Journal first: a kill after it leaves a row that the next resume restores from the journal.
        self.file.append(done)
        self.store.append(row)
        if self.truth is not None:
            self.truth.append(done["truth_row"])
        self.operator.say(f"recorded: {outcome.label} -> {row['behaviour']}, success {row['success']}")

    def _discard(self, episode: Episode, reason: str) -> None:
        if self.recorder is not None:
            self.recorder.discard(episode, reason)

    def _lost_before_run(self, record: dict[str, Any], log: SafetyLog, error: str) -> str:
        log.event("serial_lost", step=0, error=error[:200])
        self.file.append({**record, "status": "robot_error_before_run", "error": error, "safety": log.to_json()})
        self.operator.say(f"the arm did not answer before the run ({error}); nothing was recorded for this trial. "
                          f"Check the USB cable and servo power, then resume with --resume")
        return "robot_error"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


