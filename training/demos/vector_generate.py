"""Demo generation on a vectorized backend: many attempts at once, the same datasets as the one-env generator.

In ``generate.py`` attempt k runs cell ``kept % len(cells)``, where ``kept`` counts the demos kept before it, so
which cell attempt k runs depends on how the earlier attempts turned out. Here each env runs one *work item*, an
(attempt, cell) pair, chosen speculatively: the ``AttemptScheduler`` estimates how likely each item is to be the
one the sequential run would make (a success rate learned as attempts finish) and hands free envs the likeliest
ones. An item's result depends only on its cell and layout seed (the env is reset with it, the expert is seeded
with it), so finished items are held, frames and all, until the writer reaches them; then they are written in
attempt order exactly as the one-env run writes them. Items that can no longer be needed are cancelled, and
guesses that turn out wrong only cost env time, never change the output.

    chefmate-generate --recipe all --episodes 300 --out datasets/all --backend isaaclab --num-envs 256
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval.vector_runner import PerEnvActor, plan_fresh, plan_pool, wait_for_plans
from leisaac_tasks.dataset import Attempt, DemoWriter
from leisaac_tasks.episode import EpisodeClock
from leisaac_tasks.spec import DEFAULT_SCENE
from leisaac_tasks.vec_env import VecSandwichEnv
from policies.scripted import ScriptedExpert
from training.demos.attempts import (SETTLE_FRAMES, DatasetTally, GenerateConfig, attempt_budget, judge_attempt,
                                     out_of_attempts, tally_journal)
from training.demos.recipes import DatasetPlan

Item = tuple[int, int]  # (attempt index, cell index)
Frame = tuple[dict[str, np.ndarray], np.ndarray]  # (observation, action in sim radians)


@dataclass
class Finished:
    record: Attempt
    frames: list[Frame]  # empty for a rejected attempt: nothing of it is written


@dataclass
class AttemptScheduler:
    """Which (attempt, cell) items to run next, given what has finished; see the module docstring."""

    first: int  # the first attempt of this run (the writer's next_attempt)
    episodes: int  # kept demos wanted in the dataset
    n_cells: int
    budget: int  # attempts stop at this index
    horizon: int  # how many attempts past the next one to commit are considered
    results: dict[Item, Finished] = field(default_factory=dict)
    successes: int = 0
    resolved: int = 0
    next_commit: int = 0

    def __post_init__(self) -> None:
        self.next_commit = self.first

    def finish(self, item: Item, result: Finished) -> None:
        self.results[item] = result
        self.resolved += 1
        self.successes += result.record.success

    def pop_next(self, kept: int) -> Finished | None:
        """The result the writer takes next, once it has finished; ``kept`` is the writer's demo count."""
        result = self.results.pop((self.next_commit, kept % self.n_cells), None)
        if result is not None:
            self.next_commit += 1
            for item in [i for i in self.results if i[0] < self.next_commit]:
                del self.results[item]  # other guesses for attempts already written
        return result

    def need(self, kept: int) -> dict[Item, float]:
        """For each item from the next commit on: the chance the sequential run makes it, given the results so far.

        A distribution over the kept count before each attempt is carried forward: a finished item moves it by
        its real result, an unfinished one by the success rate seen so far (Laplace-smoothed, so never 0 or 1).
        """
        rate = (self.successes + 1) / (self.resolved + 2)
        cell_of = np.arange(self.episodes) % self.n_cells
        dist = np.zeros(self.episodes + 1)  # the last bin: enough demos, nothing more is needed
        dist[min(kept, self.episodes)] = 1.0
        need: dict[Item, float] = {}
        for k in range(self.next_commit, min(self.budget, self.next_commit + self.horizon)):
            alive = dist[:-1]
            masses = np.bincount(cell_of, weights=alive, minlength=self.n_cells)
            if not masses.any():
                break
            per_cell = np.full(self.n_cells, rate)
            for cell, mass in enumerate(masses.tolist()):
                if mass > 0.0:
                    need[(k, cell)] = mass
                known = self.results.get((k, cell))
                if known is not None:
                    per_cell[cell] = float(known.record.success)
            moved = alive * per_cell[cell_of]
            dist = np.concatenate([alive - moved, [dist[-1]]])
            dist[1:] += moved
        return need


@dataclass
class _Recording:
    item: Item
    clock: EpisodeClock
    frames: list[Frame] = field(default_factory=list)


def generate_dataset_vectorized(cfg: GenerateConfig, plan: DatasetPlan, root: Path, env: VecSandwichEnv,
                                progress: bool = True) -> DatasetTally:
    with contextlib.ExitStack() as stack:
        pool = None
        if cfg.plan_workers > 1:
            pool = stack.enter_context(plan_pool(cfg.plan_workers))
        actor = PerEnvActor("expert", ScriptedExpert(noise=True), pool, build={"noise": True})
        return _generate(cfg, plan, root, env, actor, progress)


def _generate(cfg: GenerateConfig, plan: DatasetPlan, root: Path, env: VecSandwichEnv, actor: PerEnvActor,
              progress: bool) -> DatasetTally:
    cells = plan.cells
    start = time.perf_counter()
    size = (cfg.image_size, cfg.image_size)
    with DemoWriter(root, size, fps=int(DEFAULT_SCENE.control_hz), resume=cfg.resume,
                    checkpoint_every=cfg.checkpoint_every) as writer:
        first, kept = writer.next_attempt, writer.episodes
        sched = AttemptScheduler(first, cfg.episodes, len(cells), attempt_budget(cfg, first),
                                 horizon=env.num_envs + 2 * len(cells))
        bar = tqdm(total=cfg.episodes, initial=min(kept, cfg.episodes), desc=f"{plan.name}", unit="demo",
                   disable=not progress)
        running: list[_Recording | None] = [None] * env.num_envs
        actions = np.zeros((env.num_envs, 6))
        changed = True  # results arrived since the last refill: re-plan (the plan costs ~horizon numpy ops)
        spent = dict.fromkeys(("envs", "expert", "writing"), 0.0)
        with _WriterThread(writer, cfg, plan, bar) as behind:
            while True:
                t0 = time.perf_counter()
                kept = _commit_ready(sched, behind, kept, cfg.episodes)
                t1 = time.perf_counter()
                spent["writing"] += t1 - t0  # waiting for the writer, when it is a whole queue behind
                if kept >= cfg.episodes:
                    break
                if sched.next_commit >= sched.budget:
                    raise out_of_attempts(plan.name, root, kept, cfg.episodes, sched.next_commit)
                if changed:
                    _refill(sched, env, actor, running, kept, cfg.seed, cells, cfg.max_steps)
                    changed = False
                active = [i for i, r in enumerate(running) if r is not None]
                t2 = time.perf_counter()
                plan_fresh(env, [(i, actor) for i in active])  # the pool plans; the stepping goes on
                active = wait_for_plans(active, actor.ready)
                t3 = time.perf_counter()
                obs, infos = env.observations(active), env.infos(active)
                t4 = time.perf_counter()
                for row, i in enumerate(active):
                    observation = {key: np.array(v[row]) for key, v in obs.items()}  # copies, not batch views
                    action = np.array(actor.act_one(i, observation, infos[row]))
                    actions[i] = action
                    running[i].frames.append((observation, action))
                t5 = time.perf_counter()
                mask = np.zeros(env.num_envs, dtype=bool)
                mask[active] = True
                env.step(actions, mask)
                spent["envs"] += t2 - t1 + t4 - t3 + time.perf_counter() - t5
                spent["expert"] += t3 - t2 + t5 - t4
                for i in active:
                    rec = running[i]
                    rec.clock.tick(actor.done(i))
                    if not rec.clock.running:
                        k, cell = rec.item
                        record = judge_attempt(cells[cell], cfg.seed + k, k, env.outcome(i), rec.clock.steps,
                                               rec.clock.settled)
                        sched.finish(rec.item, Finished(record, rec.frames if record.success else []))
                        running[i] = None
                        changed = True
                bar.set_postfix(attempts=sched.next_commit - first, rejected=sched.resolved - sched.successes)
            t0 = time.perf_counter()
        spent["writing"] += time.perf_counter() - t0  # the writer finishing the last demos
        bar.close()
    tally = tally_journal(plan.name, root, time.perf_counter() - start)
    tally.parent_seconds = {key: round(value, 2) for key, value in spent.items()}
    return tally


def _commit_ready(sched: AttemptScheduler, behind: "_WriterThread", kept: int, episodes: int) -> int:
    """Hand finished attempts to the writer in attempt order, as far as they are contiguous; the kept count after."""
    while kept < episodes and sched.next_commit < sched.budget:
        result = sched.pop_next(kept)
        if result is None:
            break
        kept += result.record.success
        behind.put(result)
    return kept


class _WriterThread:
    """LeRobot's writer (frames, then the episode's videos, encoded as it is saved) on a thread of its own, so the
    envs go on stepping while an episode is encoded: the encoder spends most of its time outside the GIL. Results
    arrive in attempt order and are written in that order, as the one-env generator writes them. The queue is short:
    when the writer falls behind, the stepping waits rather than holding every finished episode's frames."""

    def __init__(self, writer: DemoWriter, cfg: GenerateConfig, plan: DatasetPlan, bar: tqdm, depth: int = 4):
        self.writer, self.cfg, self.plan, self.bar = writer, cfg, plan, bar
        self.queue: queue.Queue[Finished | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"demo-writer-{plan.name}", daemon=True)

    def __enter__(self) -> "_WriterThread":
        self.thread.start()
        return self

    def put(self, result: Finished) -> None:
        while True:
            self._raise_if_failed()
            try:
                self.queue.put(result, timeout=0.5)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"writing {self.plan.name} failed: {self.error}") from self.error

    def _run(self) -> None:
        while (result := self.queue.get()) is not None:
            if self.error is None:  # after a failure, drain without writing, so put() never blocks for good
                try:
                    self._write(result)
                except BaseException as exc:  # handed to the stepping thread, which raises it
                    self.error = exc

    def _write(self, result: Finished) -> None:
        record = result.record
        record.recipe, record.part = self.cfg.recipe, self.plan.name
        if record.success:
            for observation, action in result.frames:
                self.writer.add_frame(observation, action, record.instruction)
            self.writer.keep(record)
            self.bar.update(1)
        else:
            self.writer.discard(record)

    def __exit__(self, *exc: object) -> None:
        # Every result handed over is written, also when the stepping stopped with an error: nothing is lost.
        self.queue.put(None)
        self.thread.join()
        if exc[0] is None:
            self._raise_if_failed()


def _refill(sched: AttemptScheduler, env: VecSandwichEnv, actor: PerEnvActor, running: list[_Recording | None],
            kept: int, seed: int, cells, max_steps: int) -> None:
    """Cancel items that can no longer be needed; start the likeliest unstarted ones on free envs."""
    need = sched.need(kept)
    considered = {k for k, _ in need}
    for i, rec in enumerate(running):
        if rec is not None and (rec.item[0] < sched.next_commit or rec.item[0] in considered and rec.item not in need):
            running[i] = None
    busy = {rec.item for rec in running if rec is not None}
    free = [i for i, rec in enumerate(running) if rec is None]
    todo = sorted((item for item in need if item not in busy and item not in sched.results),
                  key=lambda item: (-need[item], item))[:len(free)]
    if not todo:
        return
    ids = free[:len(todo)]
    env.reset_envs(ids, [cells[c].scenario for _, c in todo], [cells[c].instruction.text for _, c in todo],
                   [seed + k for k, _ in todo])
    for i, (k, c) in zip(ids, todo):
        running[i] = _Recording((k, c), EpisodeClock(max_steps, SETTLE_FRAMES))
        actor.reset(i, cells[c].instruction.text, seed + k)
