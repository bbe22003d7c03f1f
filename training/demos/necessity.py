"""Language-necessity report: could a policy fit this demo data while ignoring the instruction?

A VLA is trained to map (scene, instruction) to actions. If the scene alone already says which instruction goes
with it (cheese-only scenes always ask for cheese, bread-only scenes for bread), the cheapest fit ignores language,
and the trained policy will too. This module measures that from the datasets' journals, before any training:

- the scene is the initial placement cell, e.g. (H,–); the scene-only predictor guesses the majority per cell;
- for the instruction (its text, and its intent) and for the action (the behaviour the demo shows), it reports
  H(Y), H(Y | scene) in bits, the share of H(Y) language must supply, and the scene-only predictor's accuracy,
  leave-one-out and in-sample;
- a scenario × instruction coverage table, and a verdict in plain words.

The core (``analyse``) works on plain ``Record``s; ``load_records`` builds them from one or more dataset folders.

    chefmate-necessity DATASET [DATASET ...] [--out report.md] [--json report.json]
                                      [--fail-if-redundant]
    chefmate-necessity datasets/seed/cheese datasets/seed/bread --out report.md

Exit status: 0, or 3 with --fail-if-redundant when the data is language-redundant, or 2 on unusable input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Hashable, Sequence

from tqdm import tqdm

from leisaac_tasks.dataset import JOURNAL, Attempt, DatasetError, check_dataset, read_journal
from leisaac_tasks.outcomes import EpisodeOutcome, Outcome
from leisaac_tasks.scenarios import INGREDIENTS, SEED_SCENARIOS, Scenario

# --- thresholds -------------------------------------------------------------------------------------------------
# Redundant when the scene leaves less than this much doubt about the instruction. 0.05 bits is what one stray
# episode in ~200 leaves (binary entropy h(0.005) = 0.045): too few counter-examples for a policy to learn that
# the instruction matters; the loss barely notices if it gets them wrong.
REDUNDANT_BITS = 0.05
# ... or when a scene-only guess gets at least this share of held-out episodes right. Missing 1 in 50 costs a
# language-blind fit ~2% of the data, which training happily pays. This catches near-redundant data whose few
# exceptions push H(instruction | scene) just over REDUNDANT_BITS (h(0.02) = 0.14 bits).
REDUNDANT_LOO_ACCURACY = 0.98
# Below this H(action | scene) the scene fixes what the robot does, whatever the instruction says; and below this
# I(action; instruction | scene) the instruction never changes the action within a scene. Same reasoning as above.
ACTION_FIXED_BITS = 0.05
# A cell with fewer episodes can't show a 1-in-5 minority instruction, so its plug-in entropy (biased low on small
# samples; exactly 0 for one episode) says little. Such cells are listed in a warning.
SMALL_CELL_EPISODES = 5

_EPS = 1e-12  # entropies are sums of floats; treat anything below this as exactly zero


# --- records ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One kept demo: the scene it started from, what it was told, and what it did."""

    scene: str  # a scenario label or key, e.g. "H,-", "(H,–)" or "H-"; normalised to the key
    instruction: str  # the text the policy reads
    behaviour: str  # EpisodeOutcome.behaviour: picked_cheese | picked_bread | picked_both | disturbed | none
    intent: str = ""  # "place cheese", "avoid bread", "none"...; "" when unknown
    dataset: str = ""  # which dataset it came from, for mixtures


def scene_key(scene: str) -> str:
    """``"H,-"``/``"(H,–)"``/``"H-"`` -> ``"H-"``; a label ``Scenario.parse`` can't read is kept as it is."""
    try:
        return Scenario.parse(scene).key
    except ValueError:
        return scene


def scene_label(key: str) -> str:
    try:
        return Scenario.parse(key).label
    except ValueError:
        return key


def behaviour_from_label(label: str) -> str:
    """Recover ``EpisodeOutcome.behaviour`` from ``EpisodeOutcome.label`` ("cheese=on_plate,bread=absent").

    The label lists every ingredient's Outcome, so it is lossless and the behaviour comes back exactly.
    """
    per: dict[str, Outcome] = {}
    for part in label.split(","):
        name, sep, value = part.partition("=")
        if not sep or name not in INGREDIENTS:
            raise ValueError(f"outcome label {label!r} is not 'cheese=<outcome>,bread=<outcome>'")
        per[name] = Outcome(value)  # ValueError for an unknown outcome
    return EpisodeOutcome(per).behaviour


# --- information measures ---------------------------------------------------------------------------------------
def entropy(counts: Sequence[int] | Counter) -> float:
    """Plug-in Shannon entropy in bits of a count table."""
    values = list(counts.values()) if isinstance(counts, Counter) else list(counts)
    n = sum(values)
    return -sum(c / n * math.log2(c / n) for c in values if c) if n else 0.0


def conditional_entropy(pairs: Sequence[tuple[Hashable, Hashable]]) -> float:
    """H(Y | X) in bits from (x, y) pairs: the cell entropies weighted by cell size."""
    cells: dict[Hashable, Counter] = defaultdict(Counter)
    for x, y in pairs:
        cells[x][y] += 1
    n = len(pairs)
    return sum(sum(c.values()) / n * entropy(c) for c in cells.values()) if n else 0.0


def _majority_credit(counts: Counter, truth: Hashable) -> float:
    """Expected hit of 'guess the most frequent label', ties broken uniformly at random."""
    if not counts or sum(counts.values()) == 0:
        return 0.0
    best = max(counts.values())
    tied = [y for y, c in counts.items() if c == best]
    return 1.0 / len(tied) if truth in tied else 0.0


def scene_only_accuracy(pairs: Sequence[tuple[Hashable, Hashable]]) -> tuple[float, float]:
    """(leave-one-out, in-sample) accuracy of the majority-per-scene predictor over (scene, y) pairs.

    Leave-one-out: each episode is predicted from the others only. When its cell has no other episode, the
    predictor has never seen that scene and guesses the majority of all other episodes (nothing at all when
    there are none: a miss). So a one-episode cell can't score itself. On a perfectly balanced cell LOO is 0
    (removing an episode makes its own label the minority), a known pessimism; the in-sample value is the
    optimistic bound next to it.
    """
    n = len(pairs)
    if not n:
        return 0.0, 0.0
    cells: dict[Hashable, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for x, y in pairs:
        cells[x][y] += 1
        overall[y] += 1
    loo = 0.0
    for x, y in pairs:
        rest = cells[x].copy()
        rest[y] -= 1
        if sum(rest.values()) == 0:
            rest = overall.copy()
            rest[y] -= 1
        loo += _majority_credit(+rest, y)  # unary + drops zero counts
    in_sample = sum(max(c.values()) for c in cells.values())
    return loo / n, in_sample / n


@dataclass(frozen=True)
class TargetStats:
    """How well the scene alone explains one target Y (instruction text, intent or action)."""

    target: str
    classes: int  # distinct values of Y
    entropy_bits: float  # H(Y)
    cond_entropy_bits: float  # H(Y | scene): what language (or chance) must supply
    language_share: float  # H(Y | scene) / H(Y); 0 when H(Y) = 0
    loo_accuracy: float  # scene-only majority predictor, leave-one-out
    in_sample_accuracy: float  # the same predictor scored on the episodes it was fitted to

    @classmethod
    def of(cls, target: str, pairs: Sequence[tuple[str, str]]) -> "TargetStats":
        h = entropy(Counter(y for _, y in pairs))
        h_cond = conditional_entropy(pairs)
        h, h_cond = (0.0 if v < _EPS else v for v in (h, h_cond))
        loo, fit = scene_only_accuracy(pairs)
        return cls(target, len({y for _, y in pairs}), h, h_cond, h_cond / h if h else 0.0, loo, fit)

    def redundant(self) -> bool:
        return self.cond_entropy_bits < REDUNDANT_BITS or self.loo_accuracy >= REDUNDANT_LOO_ACCURACY


# --- report -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSummary:
    name: str
    path: str
    episodes: int  # kept episodes: what a policy trains on
    attempts: int  # kept + rejected journal lines


@dataclass(frozen=True)
class InstructionSummary:
    id: str  # I1, I2... in first-seen order; the coverage table's columns
    text: str
    intent: str
    episodes: int


@dataclass
class NecessityReport:
    episodes: int
    datasets: list[DatasetSummary]
    instruction: TargetStats
    intent: TargetStats | None  # None when some record has no intent
    action: TargetStats
    action_info_from_language_bits: float  # I(action; instruction | scene) = H(a|s) - H(a|s,instruction)
    instructions: list[InstructionSummary]
    coverage: dict[str, dict[str, int]]  # scene key -> instruction text -> episodes; seed cells first, all listed
    missing_cells: list[str]  # seed cells (keys) with no episode
    single_instruction_cells: list[str]  # cells (keys) with episodes whose instruction never varies
    redundant: bool
    verdict: str
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"thresholds": {"redundant_bits": REDUNDANT_BITS,
                                          "redundant_loo_accuracy": REDUNDANT_LOO_ACCURACY,
                                          "action_fixed_bits": ACTION_FIXED_BITS},
                           **asdict(self)}, indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        kind, _, rest = self.verdict.partition(": ")
        out = ["# Language-necessity report", "", f"**{kind}**: {rest}", ""]
        if self.warnings:
            out += ["Warnings:", ""] + [f"- {w}" for w in self.warnings] + [""]

        out += ["## Datasets", "", "| dataset | path | kept episodes | attempts |", "|---|---|---:|---:|"]
        out += [f"| {d.name} | `{d.path}` | {d.episodes} | {d.attempts} |" for d in self.datasets]
        if len(self.datasets) > 1:
            out.append(f"| **mixture** | | {self.episodes} | {sum(d.attempts for d in self.datasets)} |")

        out += ["", "## Can the scene alone tell the task?", "",
                "| target | values | H(Y) bits | H(Y \\| scene) bits | share language must supply "
                "| scene-only accuracy, leave-one-out | scene-only accuracy, in-sample |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        rows = [("instruction (text)", self.instruction), ("instruction (intent)", self.intent),
                ("action (behaviour)", self.action)]
        for name, t in rows:
            if t is not None:
                out.append(f"| {name} | {t.classes} | {t.entropy_bits:.2f} | {t.cond_entropy_bits:.2f} "
                           f"| {t.language_share:.0%} | {t.loo_accuracy:.2f} | {t.in_sample_accuracy:.2f} |")
        out += ["", f"I(action; instruction | scene) = {self.action_info_from_language_bits:.2f} bits: what the "
                    f"instruction tells about the demo's action beyond the scene.", "",
                "The scene is the initial placement cell (cheese, bread: H holder, P plate, – absent). The "
                "scene-only predictor guesses each cell's most frequent value; leave-one-out predicts every "
                "episode from the others (a cell's only episode falls back to the overall majority); on an evenly "
                "split cell it scores 0, since removing an episode makes its own value the minority, so read it "
                "as the pessimistic and in-sample as the optimistic estimate. Entropies are plug-in estimates "
                "from the counts below, so small cells understate them.", ""]

        out += ["## Instructions", "", "| id | instruction | intent | episodes |", "|---|---|---|---:|"]
        out += [f"| {i.id} | {_md(i.text)} | {i.intent or '?'} | {i.episodes} |" for i in self.instructions]

        ids = [i.id for i in self.instructions]
        out += ["", "## Scenario coverage", "", "| cell | " + " | ".join(ids) + " | total |",
                "|---|" + "---:|" * (len(ids) + 1)]
        for key, counts in self.coverage.items():
            cells = [str(counts.get(i.text, 0)) for i in self.instructions]
            out.append(f"| {scene_label(key)} | " + " | ".join(cells) + f" | {sum(counts.values())} |")
        missing = ", ".join(scene_label(k) for k in self.missing_cells) or "none"
        out += ["", f"Seed cells with no episodes: {missing}.", ""]
        return "\n".join(out)


def _md(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _instruction_basis(records: Sequence[Record]) -> str:
    """Judge redundancy on the intent when every record has one (paraphrases then count as one request)."""
    return "intent" if all(r.intent for r in records) else "instruction"


def analyse(records: Sequence[Record], datasets: Sequence[DatasetSummary] | None = None) -> NecessityReport:
    """The report for a set of kept episodes (a mixture is just the union of its datasets' records)."""
    if not records:
        raise ValueError("no episodes to analyse")
    records = [Record(scene_key(r.scene), r.instruction, r.behaviour, r.intent, r.dataset) for r in records]
    if datasets is None:
        per = Counter(r.dataset for r in records)
        datasets = [DatasetSummary(name, name, n, n) for name, n in per.items()]

    instruction = TargetStats.of("instruction", [(r.scene, r.instruction) for r in records])
    basis = _instruction_basis(records)
    intent = TargetStats.of("intent", [(r.scene, r.intent) for r in records]) if basis == "intent" else None
    action = TargetStats.of("action", [(r.scene, r.behaviour) for r in records])
    # I(a; instruction | s): how much of the action's doubt within a scene the instruction removes.
    h_a_given_si = conditional_entropy([((r.scene, r.instruction), r.behaviour) for r in records])
    info = max(0.0, action.cond_entropy_bits - h_a_given_si)
    info = 0.0 if info < _EPS else info

    texts = Counter(r.instruction for r in records)
    first_intent = {r.instruction: r.intent for r in reversed(records)}
    instructions = [InstructionSummary(f"I{k}", text, first_intent[text], n)
                    for k, (text, n) in enumerate(texts.items(), 1)]
    coverage: dict[str, dict[str, int]] = {s.key: {} for s in SEED_SCENARIOS}
    for r in records:
        cell = coverage.setdefault(r.scene, {})
        cell[r.instruction] = cell.get(r.instruction, 0) + 1
    missing = [s.key for s in SEED_SCENARIOS if not coverage[s.key]]
    meanings: dict[str, set[str]] = defaultdict(set)
    for r in records:
        meanings[r.scene].add(r.intent if basis == "intent" else r.instruction)
    single = [k for k in coverage if len(meanings.get(k, ())) == 1]

    # The verdict judges the meaning when it is known (paraphrases are not extra information), but keeps the
    # text when the text alone is already redundant: that is the plainer statement.
    judged = instruction if intent is None or instruction.redundant() else intent
    redundant = judged.redundant()
    report = NecessityReport(
        episodes=len(records), datasets=list(datasets), instruction=instruction, intent=intent, action=action,
        action_info_from_language_bits=info, instructions=instructions, coverage=coverage, missing_cells=missing,
        single_instruction_cells=single, redundant=redundant, verdict=_verdict(instruction, judged),
    )
    report.warnings = _warnings(report, records, basis)
    return report


def _verdict(instruction: TargetStats, judged: TargetStats) -> str:
    what = "what the instruction asks for" if judged is not instruction else "the instruction"
    h = f"H({judged.target}|scene)={judged.cond_entropy_bits:.2f} bits"
    if judged.redundant():
        if judged.entropy_bits == 0.0:
            claim = (f"every episode has the same {judged.target} (H({judged.target})=0.00 bits), so the scene "
                     f"alone trivially determines it ({h})")
        elif judged.cond_entropy_bits == 0.0:
            claim = f"the scene alone determines {what} in every episode ({h})"
        else:
            claim = (f"the scene alone predicts {what} in {judged.loo_accuracy:.0%} of held-out episodes ({h}, "
                     f"below {REDUNDANT_BITS} bits or at least {REDUNDANT_LOO_ACCURACY:.0%} scene-only accuracy)")
        if judged is not instruction:
            claim += (f"; the wording varies (H(instruction|scene)={instruction.cond_entropy_bits:.2f} bits) but "
                      f"only rephrases the same request")
        return (f"LANGUAGE-REDUNDANT: {claim}. A policy trained on this data can ignore language and still fit "
                f"{'it' if judged.cond_entropy_bits == 0.0 else 'almost all of it'}.")
    return (f"LANGUAGE-NECESSARY: language carries {judged.cond_entropy_bits:.2f} bits beyond the scene "
            f"({h}, {judged.language_share:.0%} of H({judged.target})={judged.entropy_bits:.2f} bits); the best "
            f"scene-only guess of {what} is right in {judged.loo_accuracy:.0%} of held-out episodes "
            f"({judged.in_sample_accuracy:.0%} in-sample).")


def _cells(keys: Sequence[str]) -> str:
    return ", ".join(scene_label(k) for k in keys)


def _warnings(report: NecessityReport, records: Sequence[Record], basis: str) -> list[str]:
    out = []
    if report.single_instruction_cells:
        only = {r.scene: r.intent if basis == "intent" else r.instruction for r in records}
        listed = "; ".join(f"{scene_label(k)} always '{only[k]}'" for k in report.single_instruction_cells)
        out.append(f"{len(report.single_instruction_cells)} cell(s) pair with only one "
                   f"{'intent' if basis == 'intent' else 'instruction'}: {listed}. There the scene alone gives the "
                   f"task away; add episodes with another instruction in the same scene.")
    if report.missing_cells:
        out.append(f"coverage misses {len(report.missing_cells)} of the {len(SEED_SCENARIOS)} seed cells: "
                   f"{_cells(report.missing_cells)}. The policy never sees these scenes in training.")
    if report.action.cond_entropy_bits < ACTION_FIXED_BITS:
        out.append(f"H(action|scene)={report.action.cond_entropy_bits:.2f} bits: the scene alone fixes what the "
                   f"robot does in these demos, so no demo shows language changing the action.")
    elif not report.redundant and report.action_info_from_language_bits < ACTION_FIXED_BITS:
        out.append(f"I(action; instruction | scene)={report.action_info_from_language_bits:.2f} bits: the "
                   f"instruction varies within scenes but the demos' actions don't follow it.")
    sizes = Counter(r.scene for r in records)
    small = [k for k in report.coverage if 0 < sizes[k] < SMALL_CELL_EPISODES]
    if small:
        out.append(f"{len(small)} cell(s) have fewer than {SMALL_CELL_EPISODES} episodes: {_cells(small)}. "
                   f"Their entropies are unreliable (a one-episode cell has H=0 by construction).")
    return out


# --- datasets ---------------------------------------------------------------------------------------------------
def _kept_records(root: Path, attempts: list[Attempt]) -> list[Record]:
    records = []
    for a in attempts:
        if a.episode_index is None:
            continue  # rejected: never trained on
        where = f"{root / JOURNAL}, attempt {a.attempt}"
        try:
            scene = Scenario.parse(a.scenario).key
            # The writer stores the behaviour; a blank one is recovered from the (lossless) outcome label.
            behaviour = a.behaviour or behaviour_from_label(a.outcome)
        except (ValueError, AttributeError, TypeError) as exc:  # a hand-edited line: wrong types or values
            raise DatasetError(f"{where} can't be read ({exc}); restore the journal or regenerate the "
                               f"dataset") from None
        records.append(Record(scene, a.instruction, behaviour, a.intent or "", str(root)))
    return records


def load_records(roots: Sequence[Path], progress: bool = False) -> tuple[list[Record], list[DatasetSummary]]:
    """Kept episodes of one or more datasets (a mixture is their union), and what each contributed.

    A folder needs the journal ``meta/chefmate_attempts.jsonl``. When it also has ``meta/info.json`` it must be a
    complete LeRobot dataset (``check_dataset``) whose episode count matches the journal; a folder with the
    journal alone (e.g. a copy of ``meta/``) is accepted, since the report reads nothing else.
    """
    records: list[Record] = []
    summaries: list[DatasetSummary] = []
    seen: set[Path] = set()
    for root in tqdm(list(map(Path, roots)), desc="reading journals", unit="dataset", disable=not progress):
        if not root.is_dir():
            raise DatasetError(f"{root} is not a folder; pass a dataset folder written by "
                               f"`chefmate-generate`")
        if root.resolve() in seen:
            raise DatasetError(f"{root} is listed twice; its episodes would count double. List it once")
        seen.add(root.resolve())
        if not (root / JOURNAL).is_file():
            inside = sorted(str(j.parents[1]) for j in root.glob(f"*/{JOURNAL}"))  # generate's --out of a recipe
            hint = (f"it holds datasets, list them instead: {' '.join(inside)}" if inside
                    else "point at a dataset written by ChefMate's generate/record tools")
            raise DatasetError(f"{root} has no {JOURNAL}, so the scene of each episode is unknown; {hint}")
        try:
            attempts = read_journal(root)
        except (OSError, ValueError) as exc:  # unreadable or not UTF-8; bad lines already raise DatasetError
            raise DatasetError(f"{root / JOURNAL} can't be read ({exc}); restore it or regenerate the "
                               f"dataset") from None
        kept = _kept_records(root, attempts)
        if (root / "meta" / "info.json").exists():
            try:
                info = check_dataset(root)
                total = int(info["total_episodes"])
            except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
                raise DatasetError(f"{root / 'meta' / 'info.json'} is unreadable ({type(exc).__name__}: {exc}); "
                                   f"delete the dataset and generate again") from None
            if total != len(kept):
                raise DatasetError(f"{root} holds {total} episodes but its journal lists {len(kept)} kept ones; "
                                   f"it is still being written, or was changed outside ChefMate's tools. Wait for "
                                   f"the run to finish, or regenerate it")
        records += kept
        summaries.append(DatasetSummary(root.name, str(root), len(kept), len(attempts)))
    if not records:
        raise DatasetError(f"no kept episodes in {', '.join(map(str, roots))}; record or generate some demos "
                           f"first")
    return records, summaries


def report_for(roots: Sequence[Path], progress: bool = False) -> NecessityReport:
    records, summaries = load_records(roots, progress)
    return analyse(records, summaries)


# --- CLI --------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chefmate-necessity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", type=Path, help="dataset folders; several are analysed as one mixture")
    p.add_argument("--out", type=Path, help="write the markdown report here (default: print it)")
    p.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    p.add_argument("--fail-if-redundant", action="store_true",
                   help="exit with status 3 when the scene alone determines the instruction (for CI)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is one only on a terminal)")
    a = p.parse_args(argv)
    try:
        # A bar on a terminal only: reading journals takes a moment, and a bad input's message must come first.
        report = report_for(a.datasets, progress=not a.quiet and sys.stderr.isatty())
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if a.json:
            a.json.write_text(report.to_json() + "\n")
        if a.out:
            a.out.write_text(report.to_markdown())
    except OSError as exc:
        print(f"error: can't write the report ({exc}); choose another --out/--json path", file=sys.stderr)
        return 2
    if a.out:
        print(report.verdict)
        print(f"wrote {a.out}" + (f" and {a.json}" if a.json else ""))
    else:
        print(report.to_markdown())
    return 3 if a.fail_if_redundant and report.redundant else 0


if __name__ == "__main__":
    sys.exit(main())
