"""The grid on a vectorized backend: every env runs one matrix cell, and is refilled as soon as it finishes.

Rows are the same as ``eval/runner.run_episode``'s (``episode_row`` builds both), appended as each episode ends.
An episode's outcome depends only on its own (scenario, instruction, seed): envs don't interact, and every policy
keeps its state per env (one scripted policy per env; a batched VLA keeps per-env queues and noise generators).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from eval.runner import SETTLE_STEPS, Episode, episode_row, error_text
from leisaac_tasks.episode import EpisodeClock
from leisaac_tasks.vec_env import VecSandwichEnv, make_vec_env
from policies.base import Policy
from policies.registry import make_policy

if TYPE_CHECKING:
    from eval.matrix_config import MatrixConfig


class Actor(Protocol):
    """One policy serving many envs."""

    cameras: tuple[str, ...]

    def reset(self, slot: int, instruction: str, seed: int) -> None: ...
    def act(self, slots: Sequence[int], observations: dict[str, np.ndarray], infos: Sequence[dict]) -> np.ndarray: ...
    def done(self, slot: int) -> bool: ...
    def wants_observation(self, slot: int) -> bool: ...


class PerEnvActor:
    """A separate Policy object per env. ``clone()`` (scripted policies) shares read-only parts such as the
    kinematics model; policies without it are built once per env.

    A scripted policy plans its whole trajectory (IK, ~0.1-0.4 s of CPU) on its first action; with a process
    ``pool`` those first actions of many envs are planned in parallel, and the per-episode state comes back."""

    def __init__(self, name: str, prototype: Policy, pool: Any = None, build: dict[str, Any] | None = None):
        self.name = name
        self.prototype = prototype
        self.cameras = prototype.abilities.cameras
        self.policies: dict[int, Policy] = {}
        self.pool = pool if prototype.abilities.plans_in_pool else None
        self.build = dict(build or {})  # the pool's workers build the same policy: make_policy(name, **build)
        self.fresh: dict[int, tuple[str, int]] = {}  # reset, not acted yet: (instruction, seed)
        self.pending: dict[int, Any] = {}  # slot -> the pool's AsyncResult of its first action (plan_ahead)

    def _policy(self, slot: int) -> Policy:
        if slot not in self.policies:
            clonable = self.prototype.abilities.clonable
            self.policies[slot] = self.prototype.clone() if clonable else make_policy(self.name)
        return self.policies[slot]

    def reset(self, slot: int, instruction: str, seed: int) -> None:
        self._policy(slot).reset(instruction, seed)
        self.fresh[slot] = (instruction, seed)
        self.pending.pop(slot, None)  # a plan for the slot's cancelled episode is left to finish unread

    def act(self, slots, observations, infos) -> np.ndarray:
        return np.stack([self.act_one(s, {k: v[i] for k, v in observations.items()}, infos[i])
                         for i, s in enumerate(slots)])

    def needs_plan(self, slot: int) -> bool:
        return self.pool is not None and slot in self.fresh and slot not in self.pending

    def plan_ahead(self, slot: int, observation: dict[str, np.ndarray], info: dict) -> None:
        """Start planning a freshly reset env's first action in the pool, while the other envs step on: the env
        waits, unstepped, until ``ready``, so its episode is the one it would have been."""
        job = (self.name, self.build, *self.fresh[slot], observation, info)
        self.pending[slot] = self.pool.apply_async(_first_act, (job,))

    def ready(self, slot: int) -> bool:
        job = self.pending.get(slot)
        return job is None or job.ready()

    def act_one(self, slot: int, observation: dict[str, np.ndarray], info: dict) -> np.ndarray:
        self.fresh.pop(slot, None)
        job = self.pending.pop(slot, None)
        if job is None:
            return self.policies[slot].act(observation, info)
        out = job.get()  # planned ahead: the same first action, from the pool, or the exception it raised there
        if isinstance(out, BaseException):
            raise out
        action, state = out
        vars(self.policies[slot]).update(state)  # the per-episode state the plan left behind
        return action

    def done(self, slot: int) -> bool:
        return bool(self.policies[slot].done)

    def wants_observation(self, slot: int) -> bool:
        return True  # a scripted policy acts on every step's observation and info


_WORKER_POLICIES: dict[str, Any] = {}


def _first_act(job: tuple) -> Any:
    """In a pool worker: a fresh policy's first action and the per-episode state it left behind."""
    name, build, instruction, seed, observation, info = job
    try:
        key = f"{name} {sorted(build.items())}"
        if key not in _WORKER_POLICIES:
            _WORKER_POLICIES[key] = make_policy(name, **build)
        policy = _WORKER_POLICIES[key].clone()
        policy.reset(instruction, seed)
        action = policy.act(observation, info)
        return action, {k: v for k, v in vars(policy).items() if k not in policy.shared_state}
    except Exception as exc:  # sent back and recorded against that episode only
        return exc


class BatchedActor:
    """A policy with ``reset_slot`` / ``act_batch`` / ``slot_done`` (the VLA): one forward pass for all its envs."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.cameras = policy.abilities.cameras

    def reset(self, slot: int, instruction: str, seed: int) -> None:
        self.policy.reset_slot(slot, instruction, seed)

    def act(self, slots, observations, infos) -> np.ndarray:
        return np.asarray(self.policy.act_batch(list(slots), observations))

    def done(self, slot: int) -> bool:
        return bool(self.policy.slot_done(slot))

    def wants_observation(self, slot: int) -> bool:
        return self.policy.slot_needs_observation(slot)


def make_actor(name: str, pool: Any = None, policy: Policy | None = None) -> PerEnvActor | BatchedActor:
    policy = policy or make_policy(name)
    if policy.abilities.batched:
        return BatchedActor(policy)
    if policy.abilities.global_torch_rng:
        raise ValueError(f"{name} draws its noise from torch's global generator, so envs sharing one process would "
                         f"change each other's episodes; run it with --workers N instead of --num-envs")
    return PerEnvActor(name, policy, pool)


@dataclass
class GridTiming:
    """Where a vectorized grid's wall time went in the stepping process: building the envs, then each vector step's
    parts (scripted policies' plans handed to and awaited from their pool, the looking envs' observations, the
    policies' actions, the envs' step, and finishing and refilling episodes). ``envs`` is each env method's
    ``RoundTrips`` when the envs live in worker processes."""

    vector_steps: int = 0
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("build", "plan", "observe", "act", "step", "bookkeeping"), 0.0))
    envs: dict[str, dict[str, float]] = field(default_factory=dict)

    def lap(self, phase: str, since: float) -> float:
        """Add the time since ``since`` to ``phase``; the time now, for the next lap."""
        now = time.perf_counter()
        self.seconds[phase] += now - since
        return now

    def as_dict(self) -> dict[str, Any]:
        return {"vector_steps": self.vector_steps, "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "envs": self.envs}


@dataclass
class _Running:
    episode: Episode
    clock: EpisodeClock
    started: float = field(default_factory=time.perf_counter)
    error: str = ""


def run_vectorized(cfg: "MatrixConfig", episodes: list[Episode], append: Callable[[dict], None], num_envs: int,
                   on_row: Callable[[], Any] | None = None, env: VecSandwichEnv | None = None,
                   plan_workers: int = 0, policies: dict[str, Policy] | None = None,
                   skip: Callable[[Episode], dict | None] = lambda episode: None) -> GridTiming:
    """Run ``episodes`` on ``num_envs`` parallel envs of ``cfg.backend``; ``append`` gets each finished row. Returns
    where the wall time went.

    ``plan_workers`` > 1 plans scripted policies' trajectories in that many processes (the CPU side of the grid).
    ``policies`` are already-built prototypes by spec (the caller validated them); missing ones are built here.
    ``skip(episode)`` returns the row of an episode that must not run (a tripped circuit breaker), else None.
    """
    timing = GridTiming()
    if not episodes:
        return timing
    names = dict.fromkeys(e.policy for e in episodes)
    prototypes = {name: (policies or {}).get(name) or make_policy(name) for name in names}
    with contextlib.ExitStack() as stack:
        pool = None
        if plan_workers > 1 and any(p.abilities.plans_in_pool for p in prototypes.values()):
            pool = stack.enter_context(plan_pool(plan_workers))
        actors = {name: make_actor(name, pool, prototypes[name]) for name in names}
        _run(cfg, episodes, append, num_envs, on_row, env, actors, skip, timing)
    return timing


def _run(cfg, episodes, append, num_envs, on_row, env, actors, skip, timing: GridTiming) -> None:
    cameras = tuple(dict.fromkeys(c for a in actors.values() for c in a.cameras))
    num_envs = min(num_envs, len(episodes))
    own_env = env is None
    lap = time.perf_counter()
    env = env or make_vec_env(cfg.backend, num_envs, cameras=cameras, image_size=cfg.image_size,
                              workers=cfg.workers)
    lap = timing.lap("build", lap)
    queue = deque(episodes)

    def next_episode() -> Episode | None:
        """The next episode to run; those ``skip`` refuses are recorded as they are passed over."""
        while queue:
            episode = queue.popleft()
            row = skip(episode)
            if row is None:
                return episode
            append(row)
            if on_row:
                on_row()
        return None

    running: list[_Running | None] = [None] * env.num_envs
    actions = np.zeros((env.num_envs, 6))
    try:
        _fill(env, actors, next_episode, running, range(env.num_envs), cfg.max_steps)
        lap = timing.lap("bookkeeping", lap)
        while any(r is not None for r in running):
            timing.vector_steps += 1
            active = [i for i, r in enumerate(running) if r is not None]
            pooled = {i: a for i in active if isinstance(a := actors[running[i].episode.policy], PerEnvActor)}
            plan_fresh(env, [(i, a) for i, a in pooled.items() if not running[i].error])
            active = wait_for_plans(active, lambda i: i not in pooled or pooled[i].ready(i))
            lap = timing.lap("plan", lap)
            # Only envs whose policy looks this step are rendered (a VLA looks once per chunk).
            looking = [i for i in active if not running[i].error
                       and actors[running[i].episode.policy].wants_observation(i)]
            obs = env.observations(looking)
            lap = timing.lap("observe", lap)
            row_of = {slot: k for k, slot in enumerate(looking)}
            for name, actor in actors.items():
                slots = [i for i in active if running[i].episode.policy == name and not running[i].error]
                if slots:
                    _act(actor, slots, obs, row_of, env, running, actions)
            lap = timing.lap("act", lap)
            mask = np.zeros(env.num_envs, dtype=bool)
            mask[[i for i in active if not running[i].error]] = True
            if mask.any():
                env.step(actions, mask)
            lap = timing.lap("step", lap)
            finished = []
            for i in active:
                run = running[i]
                if not run.error:
                    run.clock.tick(actors[run.episode.policy].done(i))
                if run.error or not run.clock.running:
                    finished.append(i)
            for i in finished:
                run = running[i]
                append(episode_row(run.episode, env.backend, env.outcome(i), run.error, run.clock.steps,
                                   env.sim_time(i), time.perf_counter() - run.started))
                if on_row:
                    on_row()
                running[i] = None
            _fill(env, actors, next_episode, running, finished, cfg.max_steps)
            lap = timing.lap("bookkeeping", lap)
    finally:
        timing.envs = {method: trips.as_dict() for method, trips in getattr(env, "round_trips", {}).items()}
        if own_env:
            env.close()


@contextlib.contextmanager
def plan_pool(workers: int) -> Iterator[Any]:
    """Processes that plan scripted policies' first actions. Spawned, not forked: the parent may hold a CUDA
    context, warp threads or an encoder's. Left normally, the pool is closed and joined, so each worker finishes the
    plan in hand and exits; ``Pool.terminate`` (what leaving a Pool's own ``with`` does) waited 18 s on the GPU box
    for a lock that idle workers hold. Left by an exception, it is terminated at once."""
    pool = mp.get_context("spawn").Pool(workers)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    pool.close()
    pool.join()


def plan_fresh(env: VecSandwichEnv, pairs: list[tuple[int, PerEnvActor]]) -> None:
    """Freshly reset envs hand their first action (their episode's plan) to their actor's pool."""
    fresh = [(i, actor) for i, actor in pairs if actor.needs_plan(i)]
    if fresh:
        obs, infos = env.observations([i for i, _ in fresh]), env.infos([i for i, _ in fresh])
        for row, (i, actor) in enumerate(fresh):
            actor.plan_ahead(i, {key: v[row] for key, v in obs.items()}, infos[row])


def wait_for_plans(active: list[int], ready: Callable[[int], bool]) -> list[int]:
    """The envs of ``active`` whose first action is not still being planned, waiting until there is one: the
    others sit the step out, unstepped, so their episodes are the ones they would have been."""
    while True:
        going = [i for i in active if ready(i)]
        if going or not active:
            return going
        time.sleep(0.001)


def _act(actor, slots: list[int], obs: dict[str, np.ndarray], row_of: dict[int, int], env: VecSandwichEnv,
         running: list[_Running | None], actions: np.ndarray) -> None:
    """Actions for ``slots``; a policy that raises ends only its own episodes, recorded as errors."""
    rows = [row_of[s] for s in slots if s in row_of]  # the slots that looked, in slot order
    sub = {k: v[rows] for k, v in obs.items()}
    if isinstance(actor, PerEnvActor):  # one failing policy must not take the other envs down
        infos = env.infos(slots)
        for k, s in enumerate(slots):
            try:
                actions[s] = actor.act_one(s, {key: v[k] for key, v in sub.items()}, infos[k])
            except Exception as exc:
                running[s].error = error_text(exc)
                traceback.print_exc()
        return
    try:
        actions[slots] = actor.act(slots, sub, [])  # batched policies are learned: no privileged info
    except Exception as exc:
        for s in slots:
            running[s].error = error_text(exc)
        traceback.print_exc()


def _fill(env: VecSandwichEnv, actors, next_episode: Callable[[], Episode | None], running: list[_Running | None],
          slots, max_steps: int) -> None:
    ids, scenarios, texts, seeds = [], [], [], []
    for i in slots:
        episode = next_episode()
        if episode is None:
            break
        running[i] = _Running(episode, EpisodeClock(max_steps, SETTLE_STEPS))
        ids.append(i)
        scenarios.append(episode.scenario)
        texts.append(episode.instruction.text)
        seeds.append(episode.seed)
    if not ids:
        return
    env.reset_envs(ids, scenarios, texts, seeds)
    for i, text, seed in zip(ids, texts, seeds):
        try:
            actors[running[i].episode.policy].reset(i, text, seed)
        except Exception as exc:
            running[i].error = error_text(exc)
            traceback.print_exc()
