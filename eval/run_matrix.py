"""Run the scenario x instruction x seed grid for one or more policies; write episodes.csv, a summary and plots.

    python eval/run_matrix.py                        # both baselines, seed instructions + all perturbations
    python eval/run_matrix.py --policies blind --families none --seeds 5 --out reports/runs/blind
    python eval/run_matrix.py --out reports/matrix --resume   # finish an interrupted run
    python eval/run_matrix.py --workers 2                     # episodes in 2 processes, same outcomes
    python eval/run_matrix.py --policies vla:CKPT --num-envs 64 --workers 16   # 16 sim processes, batched inference
    python eval/run_matrix.py --backend isaaclab --num-envs 480 --families none --seeds 10   # NVIDIA GPU
    python eval/run_matrix.py --robot so101 --robot-port /dev/ttyACM0 ...   # on a real SO-101 (python -m eval.real_arm -h)

The grid itself is a library (eval/grid.py: MatrixConfig, run); this module is its command line.

Exit codes: 0 every episode ran to an outcome; 2 bad input (one line, nothing written or lost); 3 a policy stopped
answering and the circuit breaker tripped; 4 some episodes ended in errors (they count as failures, and the
summary marks those policies' rows incomplete).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.breaker import CircuitBreaker
from eval.grid import MatrixConfig, add_grid_arguments, grid_config, run
from eval.metrics import error_rows
from eval.parallel import WorkerCrash
from eval.report import load_episodes

EXIT_BAD_INPUT, EXIT_BREAKER, EXIT_ERRORS = 2, 3, 4

__all__ = ["MatrixConfig", "run", "add_grid_arguments", "grid_config", "build_parser", "parse_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_grid_arguments(p)
    p.add_argument("--list-instructions", action="store_true",
                   help="print every instruction of the grid (scenario, family, intent, text) in run order, and exit")
    # main() hands a command with --robot to eval.real_arm before this parser sees it; listed here so --help says so.
    arm = p.add_argument_group("on an SO-101 arm")
    arm.add_argument("--robot", choices=("so101", "sim_so101"),
                     help="run this grid on the arm (so101) or its simulated twin (sim_so101), one operator-guided "
                          "trial at a time: the command goes to `python -m eval.real_arm`, whose --help lists the "
                          "arm, camera, operator and safety flags (--robot-port, --front-cam, --auto-accept, ...)")
    return p


def parse_args(argv: list[str] | None = None) -> MatrixConfig:
    p = build_parser()
    a = p.parse_args(argv)
    if a.robot:
        p.error("--robot runs on an arm: call main() or `python -m eval.real_arm`, not parse_args")
    return grid_config(a, p.error)


def list_instructions(cfg: MatrixConfig) -> str:
    """The grid's instructions, per scenario in run order; ``--env.variant`` of the LeRobot env plugin counts
    within one family in this order."""
    lines = ["scenario\tfamily\tintent\ttext"]
    for scenario in cfg.scenarios:
        for ins in cfg.instructions(scenario):
            lines.append(f"{scenario.label}\t{ins.family}\t{ins.intent}\t{ins.text!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--robot" or a.startswith("--robot=") for a in argv):  # the same grid on an arm, operator-guided
        from eval.real_arm.cli import main as real_arm_main

        return real_arm_main(argv)
    cfg = parse_args(argv)
    if "--list-instructions" in argv:
        print(list_instructions(cfg))
        return 0
    breaker = CircuitBreaker(cfg.breaker)
    try:
        run(cfg, breaker=breaker)
    except (ValueError, WorkerCrash) as exc:  # bad policy/backend name, foreign results file: one line, nothing lost
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if breaker.tripped:
        print(f"error: {', '.join(breaker.tripped)} stopped answering; their remaining episodes are policy_error "
              f"rows (see above)", file=sys.stderr)
        return EXIT_BREAKER
    incomplete = errors_by_policy(cfg.out / "episodes.csv")
    if incomplete:
        print(f"error: episodes ended in errors ({', '.join(f'{p}: {n}' for p, n in incomplete.items())}); they "
              f"count as failures and the summary marks those rows incomplete", file=sys.stderr)
        return EXIT_ERRORS
    return 0


def errors_by_policy(csv_path: Path) -> dict[str, int]:
    """Policies whose episodes in this results file (resumed rows too) include errors, with how many."""
    if not csv_path.exists():
        return {}
    df = load_episodes(csv_path)
    counts = df[error_rows(df)].groupby("policy").size() if len(df) else {}
    return {str(p): int(n) for p, n in dict(counts).items()}


if __name__ == "__main__":
    sys.exit(main())
