"""The grid as a library: ``run(MatrixConfig(...))`` runs every (policy, scenario, instruction, seed) episode in
process, in worker processes or on a vectorized backend, appends each row to OUT/episodes.csv as it ends, and
writes the summary and plots. ``add_grid_arguments`` / ``grid_config`` turn the grid's flags into a config;
eval/run_matrix.py (the command) and eval/real_arm (the same grid on an arm) share them.

Seeds: episode (scenario, instruction, seed s) resets the env's layout jitter and the policy's randomness with s.
Every instruction of a scenario runs on the same seeds 0..N-1, so instructions are compared on identical scenes
(the language influence index pairs them), and any row replays exactly from its (policy, scenario, instruction, seed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from eval.breaker import CircuitBreaker
from eval.config_cli import defaults_from, field_defaults
from eval.matrix_config import MatrixConfig
from eval.parallel import run_parallel
from eval.provenance import write_manifest
from eval.report import markdown_summary, write_report
from eval.results import ResultStore
from eval.runner import Episode, policy_cameras, run_episode
from eval.vector_runner import run_vectorized
from leisaac_tasks.env import SandwichEnv
from leisaac_tasks.perturbations import check_families, family_names, load_instruction_file
from leisaac_tasks.scenarios import Scenario, scenario_set
from policies.registry import make_policy

__all__ = ["MatrixConfig", "run", "add_grid_arguments", "grid_config"]


def run(cfg: MatrixConfig, progress: bool = True, argv: list[str] | None = None,
        breaker: CircuitBreaker | None = None) -> Path:
    # Everything that can reject the config runs before the results file is touched.
    episodes = cfg.episodes()
    policies = {name: make_policy(name) for name in cfg.policies}
    vectorized = cfg.num_envs > 0
    env = None if vectorized else SandwichEnv(backend=cfg.backend, cameras=policy_cameras(policies),
                                              image_size=cfg.image_size)
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
        store = ResultStore(cfg.out / "episodes.csv", resume=cfg.resume)
        write_manifest(cfg.out, argv if argv is not None else sys.argv, policies)
        todo = [e for e in episodes if e.key() not in store.done]
        if not todo:
            print(f"nothing left to run: {len(store.done)} episodes already in {store.path}", flush=True)
        bar = tqdm(total=len(todo), desc="episodes", disable=not progress or not todo, unit="ep")
        breaker = breaker if breaker is not None else CircuitBreaker(cfg.breaker)

        def append(row: dict) -> None:  # every runner's rows pass the breaker on their way to the file
            breaker.record(row)
            store.append(row)

        def skip(episode: Episode) -> dict | None:
            return breaker.skipped_row(episode, cfg.backend)

        if vectorized:  # scripted policies plan their first IK trajectories on the spare cores
            timing = run_vectorized(cfg, todo, append, cfg.num_envs, on_row=bar.update,
                                    plan_workers=max(1, (os.cpu_count() or 2) - 2), policies=policies, skip=skip)
            # Where this run's wall time went (a resumed run: the part run last), for whoever asks why it was slow.
            (cfg.out / "timing.json").write_text(json.dumps(timing.as_dict(), indent=1) + "\n")
        elif cfg.workers > 1:
            env.close()  # each worker builds its own
            run_parallel(cfg, todo, append, cfg.workers, on_row=bar.update, skip=skip)
        else:
            for episode in todo:
                append(skip(episode) or run_episode(env, policies[episode.policy], episode, cfg.max_steps))
                bar.update()
        bar.close()
    finally:
        if env is not None:
            env.close()
        for policy in policies.values():  # a remote client holds a ZMQ socket; left open it can hang the exit
            close = getattr(policy, "close", None)
            if callable(close):
                close()
    summary = write_report(store.path, cfg.out)
    print(markdown_summary(summary))
    print(f"\nwrote {store.path} and plots in {cfg.out}/")
    return store.path


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


SIMULATOR_FLAGS = ("backend", "num_envs", "workers", "breaker")  # left out of the real arm's command line


def add_grid_arguments(p: argparse.ArgumentParser | argparse._ArgumentGroup, simulator: bool = True,
                       out: Path = MatrixConfig.out) -> None:
    """The grid's flags. eval.real_arm takes them too; ``simulator=False`` leaves out the simulator-only ones."""
    p.add_argument("--policies", default=",".join(MatrixConfig.policies),
                   help="comma-separated policy specs (idle = the do-nothing floor)")
    p.add_argument("--scenarios", default="seed",
                   help="'seed' (the eight cells) or a ';'-separated list such as 'H,H;H,-'")
    p.add_argument("--include-ninth", action="store_true", help="also run (–,P), which the seed never tried")
    p.add_argument("--families", default="all",
                   help=f"perturbation families: 'all', 'none' or a comma list of {', '.join(family_names())}")
    p.add_argument("--instructions-file", type=Path, help="YAML with extra instructions (eval/instructions.example.yaml)")
    p.add_argument("--seeds", type=int, default=len(MatrixConfig.seeds), help="seeds 0..N-1 per cell")
    if simulator:
        p.add_argument("--backend", help="mujoco (embedded, CPU) or isaaclab (NVIDIA GPU, needs --num-envs)")
        p.add_argument("--num-envs", type=int,
                       help="step N envs at once on a vectorized backend, each refilled with the next cell as it ends")
    p.add_argument("--image-size", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--out", type=Path, default=out, help=f"output folder (default {out}, git-ignored)")
    p.add_argument("--resume", action="store_true", help="skip episodes already in OUT/episodes.csv")
    if simulator:
        p.add_argument("--workers", type=int,
                       help="episodes run in N parallel processes (each renders and simulates on its own core); "
                            "with --num-envs, the envs step in N processes and a VLA's inference stays batched "
                            "in this one")
        p.add_argument("--breaker", type=int,
                       help="after N consecutive policy errors of one remote policy, record its remaining episodes "
                            "as policy_error without contacting it, and exit 3 (0: never)")
    defaults_from(p, MatrixConfig)


def grid_config(a: argparse.Namespace, error) -> MatrixConfig:
    """The MatrixConfig of parsed grid flags; ``error`` (a parser's) reports a bad value and exits."""
    # The real arm's parser has no simulator flags: those keep MatrixConfig's defaults.
    sim = {k: getattr(a, k, v) for k, v in field_defaults(MatrixConfig).items() if k in SIMULATOR_FLAGS}
    backend, num_envs, workers = sim["backend"], sim["num_envs"], sim["workers"]
    try:
        scenarios = (scenario_set(a.include_ninth) if a.scenarios == "seed"
                     else tuple(Scenario.parse(s) for s in a.scenarios.split(";")))
        families = {"all": family_names(), "none": ()}.get(a.families, _csv(a.families))
        check_families(families)  # a misspelt name: one line now, not after the first policy has run
        extra = tuple(load_instruction_file(a.instructions_file)) if a.instructions_file else ()
        if a.seeds < 1:
            raise ValueError("--seeds must be at least 1")
        if workers < 1:
            raise ValueError("--workers must be at least 1")
        if num_envs < 0 or (backend == "isaaclab" and num_envs == 0):
            raise ValueError("the isaaclab backend steps many envs at once: pass --num-envs N (e.g. 480)")
        if num_envs and workers > 1 and backend != "mujoco":
            raise ValueError(f"--workers with --num-envs spreads the mujoco backend's envs over processes; "
                             f"{backend} steps its envs as one batch: leave --workers out")
    except ValueError as exc:
        error(str(exc))
    return MatrixConfig(policies=_csv(a.policies), scenarios=scenarios, families=tuple(families),
                        extra_instructions=extra, seeds=tuple(range(a.seeds)), backend=backend,
                        image_size=a.image_size, max_steps=a.max_steps, out=a.out, resume=a.resume,
                        workers=workers, num_envs=num_envs, breaker=sim["breaker"])
