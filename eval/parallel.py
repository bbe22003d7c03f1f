"""Episodes in parallel worker processes, each with its own env and policies.

Only the parent writes the CSV, one row as each episode finishes, so a kill -9 of the parent loses at most the
episodes in flight (one per worker) and ``--resume`` reruns exactly those. Outcomes do not depend on which worker
ran an episode: every episode resets the env and the policy from its own seed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Callable, Iterable

from eval.runner import Episode, policy_cameras, run_episode

if TYPE_CHECKING:
    from eval.matrix_config import MatrixConfig

_worker: dict[str, Any] = {}


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent was killed would otherwise wait on the task queue forever."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _init_worker(cfg: "MatrixConfig", parent: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    import torch  # one intra-op thread per worker: N workers on N cores, not N x N threads

    torch.set_num_threads(1)
    from leisaac_tasks.env import SandwichEnv
    from policies.registry import make_policy

    policies = {name: make_policy(name) for name in cfg.policies}
    _worker.update(cfg=cfg, policies=policies,
                   env=SandwichEnv(backend=cfg.backend, cameras=policy_cameras(policies), image_size=cfg.image_size))


def _run_one(episode: Episode) -> dict[str, Any]:
    return run_episode(_worker["env"], _worker["policies"][episode.policy], episode, _worker["cfg"].max_steps)


class WorkerCrash(RuntimeError):
    pass


def run_parallel(cfg: "MatrixConfig", episodes: Iterable[Episode], append: Callable[[dict[str, Any]], None],
                 workers: int, on_row: Callable[[], None] = lambda: None,
                 skip: Callable[[Episode], dict[str, Any] | None] = lambda episode: None) -> None:
    """Run ``episodes`` on ``workers`` processes, calling ``append(row)`` in the parent as each one ends.

    Episodes are handed out as workers free up, never queued ahead, so the episodes in flight are at most
    ``workers``. ``skip(episode)`` returns the row of an episode that must not run (a tripped circuit breaker).
    """
    pending = list(episodes)[::-1]
    # spawn, not fork: MuJoCo's GL context and torch's thread pool do not survive a fork.
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(cfg, os.getpid())) as pool:
        running: set[Future] = set()
        try:
            while pending or running:
                while pending and len(running) < workers:
                    episode = pending.pop()
                    row = skip(episode)
                    if row is not None:
                        append(row)
                        on_row()
                        continue
                    running.add(pool.submit(_run_one, episode))
                if not running:
                    continue
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    append(future.result())
                    on_row()
        except BrokenProcessPool as exc:
            raise WorkerCrash(f"a worker process died ({exc}); the finished episodes are saved: "
                              f"rerun the same command with --resume") from exc
