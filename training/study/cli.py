"""chefmate-study: the data × tuning × training-seed study in one command, resumable, on Ray.

    chefmate-study --spec studies/smoke.yaml --out outputs/smoke             # toy scale, CPU, a few minutes
    chefmate-study --spec studies/seed_diagnosis.yaml --out outputs/study    # the headline study (one GPU)
    chefmate-study --spec studies/seed_diagnosis.yaml --out outputs/study --address ray-head:6379   # a cluster

Rerun the same command after an interruption (even kill -9): finished units are kept and only the rest runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.study.runner import STAGES, run_study
from training.study.spec import SpecError, load_spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="chefmate-study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", type=Path, required=True, help="the study's YAML (studies/*.yaml)")
    p.add_argument("--out", type=Path, required=True, help="folder for every run and the report")
    p.add_argument("--address", help="join this Ray cluster (default: start a local Ray on this machine)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma-separated subset of {','.join(STAGES)} (default: all); a stage whose inputs are "
                        f"missing reports its units as failed")
    p.add_argument("--seeds", help="comma-separated training seeds to run this time (default: the spec's); the "
                                   "others are left for a later run of the same command")
    p.add_argument("--data", help="comma-separated data conditions to run this time (default: the spec's)")
    p.add_argument("--tunings", help="comma-separated tunings to run this time (default: the spec's): a lease too "
                                     "short for a whole seed trains part of its row, the rest comes later")
    a = p.parse_args(argv)
    stages = tuple(s.strip() for s in a.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        print(f"error: --stages {a.stages!r}: {', '.join(unknown) or 'empty'} is not a stage; choose from "
              f"{','.join(STAGES)}", file=sys.stderr)
        return 2
    try:
        spec = load_spec(a.spec)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        seeds = _subset("--seeds", a.seeds, tuple(map(str, spec.seeds)))
        data = _subset("--data", a.data, tuple(d.name for d in spec.data))
        tunings = _subset("--tunings", a.tunings, tuple(t.name for t in spec.tunings))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"study {spec.name}: {len(spec.data)} data x {len(spec.tunings)} tunings x {len(spec.seeds)} seeds = "
          f"{len(spec.run_ids())} fine-tunes -> {a.out}", flush=True)
    run_study(spec, a.out, a.address, log=lambda line: print(line, flush=True), stages=stages,
              seeds=None if seeds is None else tuple(map(int, seeds)), data=data, tunings=tunings)
    return 0


def _subset(flag: str, value: str | None, allowed: tuple[str, ...]) -> tuple[str, ...] | None:
    """A comma-separated subset of the spec's names (None: all of them); anything else raises one clear line."""
    if not value:
        return None
    chosen = tuple(x.strip() for x in value.split(",") if x.strip())
    if not chosen or not set(chosen) <= set(allowed):
        raise ValueError(f"{flag} {value!r} must be a comma-separated subset of the spec's {flag[2:]} "
                         f"{','.join(allowed)}")
    return chosen


if __name__ == "__main__":
    sys.exit(main())
