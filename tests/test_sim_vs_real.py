"""Sim-vs-real metrics on a fixture small enough to work out by hand (arithmetic in the comments)."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from eval.results import COLUMNS
from eval.sim_vs_real import (SimVsRealError, compare, load_side, main, mmrv, outcome_agreement, pearson_r)

ROOT = Path(__file__).resolve().parents[1]
CHEESE = "pick up the yellow cheese and put it into the white plate"
C1, C2, C3 = "(H,H)", "(H,–)", "(P,H)"
P, U, D, M = "on_plate", "untouched", "dropped", "moved"

# Two episodes per cell and side; the letters are the cheese's outcome (success = cheese on the plate).
#            policy   cell  sim       real
FIXTURE = [("A", C1, [P, P], [P, P]), ("A", C2, [P, P], [P, U]),
           ("B", C1, [P, P], [P, D]), ("B", C2, [P, U], [U, U]),
           ("C", C1, [P, U], [P, D]), ("C", C2, [P, U], [P, U]),
           ("D", C1, [U, U], [U, U]), ("D", C2, [U, U], [M, U])]
SIM_ONLY = [("A", C3, [U, U]), ("E", C1, [P, P])]  # must not count: no real counterpart


def _row(policy: str, backend: str, scenario: str, cheese: str, seed: int, error: str = "") -> dict:
    bread = "absent" if scenario == C2 else "untouched"
    return {"policy": policy, "backend": backend, "scenario": scenario, "instruction": CHEESE, "family": "seed",
            "intent": "place cheese", "seed": seed, "cheese": cheese, "bread": bread,
            "behaviour": "picked_cheese" if cheese in (P, D) else "none",
            "outcome_label": f"cheese={cheese},bread={bread}", "expected": "cheese on plate",
            "success": int(cheese == P and not error), "heuristic_agreement": 1, "steps": 300,
            "sim_seconds": 10.0, "wall_seconds": 1.0, "error": error}


def _write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def csvs(tmp_path):
    sim = [_row(p, "mujoco", cell, o, k) for p, cell, outs, _ in FIXTURE for k, o in enumerate(outs)]
    sim += [_row(p, "mujoco", cell, o, k) for p, cell, outs in SIM_ONLY for k, o in enumerate(outs)]
    real = [_row(p, "so101", cell, o, k) for p, cell, _, outs in FIXTURE for k, o in enumerate(outs)]
    real.append(_row("A", "so101", C1, U, 9, error="robot_error: serial port lost"))  # left out, counted
    return _write(tmp_path / "sim.csv", sim), _write(tmp_path / "real.csv", real)


def test_fixture_matches_hand_computed_values(csvs, tmp_path):
    sim, dropped_sim = load_side([csvs[0]], "sim")
    real, dropped_real = load_side([csvs[1]], "real")
    c = compare(sim, real, {"sim": dropped_sim, "real": dropped_real})
    assert c.dropped == {"sim": 0, "real": 1} and c.unmatched == {"sim only": 2, "real only": 0}
    pol = c.policies.set_index("policy")

    # Success per policy = mean over its two shared cells (A's sim-only (P,H) cell, all failures, is left out):
    #   A: sim (1 + 1)/2 = 1.00   real (1 + 0.5)/2 = 0.75
    #   B: sim (1 + 0.5)/2 = 0.75 real (0.5 + 0)/2 = 0.25
    #   C: sim (0.5 + 0.5)/2 = 0.50 real (0.5 + 0.5)/2 = 0.50
    #   D: sim 0.00               real 0.00
    assert list(pol.index) == ["A", "B", "C", "D"]
    assert pol["sim_success"].tolist() == [1.0, 0.75, 0.5, 0.0]
    assert pol["real_success"].tolist() == [0.75, 0.25, 0.5, 0.0]

    # Outcome agreement per cell = 1 - TV, TV = 1/2 * sum |p - q| over outcome labels:
    #   A (H,H): {P:1} vs {P:1} -> 1.0        A (H,–): {P:1} vs {P:.5, U:.5} -> TV .5 -> 0.5
    #   B (H,H): {P:1} vs {P:.5, D:.5} -> 0.5  B (H,–): {P:.5, U:.5} vs {U:1} -> TV (.5 + .5)/2 -> 0.5
    #   C (H,H): {P:.5, U:.5} vs {P:.5, D:.5} -> TV (.5 + .5)/2 -> 0.5 (same success, different failures)
    #   C (H,–): identical -> 1.0              D (H,H): 1.0     D (H,–): {U:1} vs {M:.5, U:.5} -> 0.5
    cells = c.cells.set_index(["policy", "scenario"])["agreement"]
    assert cells.to_dict() == {("A", C1): 1.0, ("A", C2): 0.5, ("B", C1): 0.5, ("B", C2): 0.5,
                               ("C", C1): 0.5, ("C", C2): 1.0, ("D", C1): 1.0, ("D", C2): 0.5}
    assert pol["agreement"].tolist() == [0.75, 0.5, 0.75, 0.75]

    # Pearson r across policies: sim [1, .75, .5, 0] (mean .5625), real [.75, .25, .5, 0] (mean .375)
    #   ds = [.4375, .1875, -.0625, -.5625], dr = [.375, -.125, .125, -.375]
    #   sum ds*dr = .1640625 - .0234375 - .0078125 + .2109375 = .34375
    #   sum ds^2 = .19140625 + .03515625 + .00390625 + .31640625 = .546875; sum dr^2 = .3125
    #   r = .34375 / sqrt(.546875 * .3125) = .34375 / .4133986 = 0.831522
    assert c.pearson == pytest.approx(0.34375 / math.sqrt(0.546875 * 0.3125))
    assert c.pearson == pytest.approx(0.831522, abs=1e-6)

    # MMRV: sim orders A > B > C > D, real A > C > B > D; only B-C is swapped, costing |R_B - R_C| = .25.
    #   worst violation per policy: A 0, B .25 (vs C), C .25 (vs B), D 0 -> MMRV = (0 + .25 + .25 + 0)/4 = 0.125
    assert c.mmrv == pytest.approx(0.125)

    # Over the 8 (policy, cell) pairs: sim [1,1, 1,.5, .5,.5, 0,0] (mean .5625), real [1,.5, .5,0, .5,.5, 0,0]
    # (mean .375): sum ds*dr = .8125, sum ds^2 = 1.21875, sum dr^2 = .875 -> r = .8125 / sqrt(1.06640625) = 0.786796
    assert c.cell_pearson == pytest.approx(0.786796, abs=1e-6)
    # Cell MMRV over the (sim, real) pairs:
    #   A1 (1,1) A2 (1,.5) B1 (1,.5) B2 (.5,0) C1 (.5,.5) C2 (.5,.5) D1 (0,0) D2 (0,0)
    #   A1: sim ties A2, B1 (1 > 1 is F) but real 1 > .5 is T -> violation |1 - .5| = .5; everything else agrees
    #   C1, C2: sim ties B2 (.5 > .5 F) but real .5 > 0 T -> violation .5
    #   A2, B1, B2: only violations of cost 0 (equal real values); D1, D2: none
    #   -> (.5 + 0 + 0 + 0 + .5 + .5 + 0 + 0) / 8 = 0.1875
    assert c.cell_mmrv == pytest.approx(0.1875)

    out = tmp_path / "out"
    assert main(["--sim", str(csvs[0]), "--real", str(csvs[1]), "--out", str(out)]) == 0
    for name in ("cells.csv", "policies.csv", "sim_vs_real.md", "scatter.png"):
        assert (out / name).stat().st_size > 0
    md = (out / "sim_vs_real.md").read_text()
    assert "| policies (4) | 0.832 | 0.125 |" in md and "on_plate/untouched×1" in md
    assert pd.read_csv(out / "policies.csv")["real_success"].tolist() == [0.75, 0.25, 0.5, 0.0]


def test_mmrv_and_pearson_follow_simplerenv_on_small_cases():
    # Perfect ranking, whatever the gaps: no violation.
    assert mmrv([0.9, 0.5, 0.1], [0.6, 0.5, 0.0]) == 0.0
    # Fully reversed 3 policies, real [.2, .5, .8]: worst per policy |.2-.8|, |.5-.2| or |.5-.8| (.3), |.8-.2|
    #   -> (.6 + .3 + .6)/3 = 0.5
    assert mmrv([0.9, 0.5, 0.1], [0.2, 0.5, 0.8]) == pytest.approx(0.5)
    # A sim tie with a real gap (SimplerEnv's strict >): sim [.5, .5], real [.2, .6]
    #   i=0: (.5 > .5) = F, (.2 > .6) = F -> no violation; i=1: F vs (.6 > .2) = T -> |.6 - .2| = .4
    #   MMRV = (0 + .4)/2 = 0.2
    assert mmrv([0.5, 0.5], [0.2, 0.6]) == pytest.approx(0.2)
    assert pearson_r([0.0, 0.5, 1.0], [0.1, 0.3, 0.5]) == pytest.approx(1.0)
    assert pearson_r([0.0, 0.5, 1.0], [0.5, 0.3, 0.1]) == pytest.approx(-1.0)
    assert math.isnan(pearson_r([0.5, 0.5], [0.2, 0.6]))  # no spread in sim: r is undefined
    assert outcome_agreement(["a", "a", "b"], ["a", "c"]) == pytest.approx(1 - 0.5 * (1 / 6 + 2 / 6 + 1 / 2))


def test_no_shared_cells_is_one_clear_error(csvs, tmp_path):
    real = pd.read_csv(csvs[1], keep_default_na=False)
    real["policy"] = "vla:runs/dis"
    other = tmp_path / "other_real.csv"
    real.to_csv(other, index=False)
    result = subprocess.run([sys.executable, "-m", "eval.sim_vs_real", "--sim", str(csvs[0]), "--real", str(other),
                             "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    err = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no (policy, scenario, instruction) cell is in both" in err[0]
    assert "sim has policies A, B, C, D, E; real has vla:runs/dis" in err[0]
    assert not (tmp_path / "out").exists()

    real["policy"], real["instruction"] = "A", "do not pick up the cheese"  # same policy, no shared cell
    real.to_csv(other, index=False)
    with pytest.raises(SimVsRealError, match="policies A are on both sides but share no"):
        compare(load_side([csvs[0]], "sim")[0], load_side([other], "real")[0])


def test_bad_files_are_one_clear_error(tmp_path):
    with pytest.raises(SimVsRealError, match="no such file"):
        load_side([tmp_path / "missing.csv"], "real")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(SimVsRealError, match="lacks column.*policy.*not an episodes CSV"):
        load_side([bad], "sim")


def test_a_correlation_from_fewer_than_four_policies_is_flagged():
    from eval.sim_vs_real import markdown

    rows_sim, rows_real = [], []
    for policy, (s, r) in {"A": (P, P), "B": (U, U)}.items():
        rows_sim.append(_row(policy, "mujoco", C1, s, 0))
        rows_real.append(_row(policy, "so101", C1, r, 0))
    text = markdown(compare(pd.DataFrame(rows_sim), pd.DataFrame(rows_real)))
    assert "rests on 2 points" in text and "Caution" in text
