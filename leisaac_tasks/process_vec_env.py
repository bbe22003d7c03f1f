"""The embedded backend's vector env spread over worker processes: physics and rendering on many cores, while the
caller (a grid runner batching VLA inference on one GPU, or demo generation) stays one process.

Env ``i`` lives in worker ``i * workers // num_envs``, which holds a ``MujocoVecEnv`` of its block of envs. Each
call sends every worker its part at once and then gathers the replies, so the workers step in parallel. Episodes
come out exactly as in ``MujocoVecEnv``: each env is the same ``SandwichEnv`` with the same seeds and actions.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any, NoReturn, Sequence

import numpy as np

from leisaac_tasks.outcomes import EpisodeOutcome
from leisaac_tasks.spec import SceneSpec


class WorkerError(RuntimeError):
    """A worker process failed; the message carries its traceback."""


@dataclass
class RoundTrips:
    """One env method's calls over the workers: the caller's wall time from the first request sent to the last
    reply read; the busiest worker's time inside the method, summed over calls (the least the workers can cost the
    caller); and the workers' mean time inside it (what evenly loaded workers would cost). Wall minus busiest is
    pipes, pickling and wake-ups; busiest minus mean is the imbalance between the workers' blocks."""

    calls: int = 0
    wall_s: float = 0.0
    busiest_s: float = 0.0
    mean_busy_s: float = 0.0

    def add(self, wall: float, busy: Sequence[float]) -> None:
        self.calls += 1
        self.wall_s += wall
        self.busiest_s += max(busy, default=0.0)
        self.mean_busy_s += sum(busy) / len(busy) if busy else 0.0

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 4) for key, value in asdict(self).items()}


def _serve(conn: Connection, num_envs: int, cameras: tuple[str, ...], image_size: int,
           spec: SceneSpec | None) -> None:
    """A worker: build the block's envs, then answer (method, args) requests until "close"."""
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from leisaac_tasks.vec_env import MujocoVecEnv

    env = None
    try:
        env = MujocoVecEnv(num_envs, cameras=cameras, image_size=image_size, spec=spec)
        conn.send(("ok", env.backend, 0.0))
        while True:
            method, args = conn.recv()
            if method == "close":
                break
            try:
                began = time.perf_counter()
                value = getattr(env, method)(*args)
                conn.send(("ok", value, time.perf_counter() - began))  # the time inside the env, for RoundTrips
            except Exception:  # sent back: the parent raises it with this traceback
                conn.send(("error", traceback.format_exc(), 0.0))
    except Exception:
        conn.send(("error", traceback.format_exc(), 0.0))
    finally:
        if env is not None:
            env.close()
        conn.close()


class ProcessVecEnv:
    """``MujocoVecEnv``'s interface, with its envs in ``workers`` spawned processes."""

    def __init__(self, num_envs: int, workers: int, cameras: tuple[str, ...] = (), image_size: int = 224,
                 spec: SceneSpec | None = None):
        workers = max(1, min(workers, num_envs))
        self.num_envs = num_envs
        self.cameras = tuple(cameras)
        # Contiguous blocks of near-equal size: env i -> (worker, index inside that worker's MujocoVecEnv).
        self._where = [(i * workers // num_envs, 0) for i in range(num_envs)]
        sizes = [0] * workers
        for i, (w, _) in enumerate(self._where):
            self._where[i] = (w, sizes[w])
            sizes[w] += 1
        self._sizes = sizes
        ctx = mp.get_context("spawn")  # not fork: the parent may hold a CUDA context, EGL or torch threads
        self._conns: list[Connection] = []
        self._procs = []
        self.round_trips: dict[str, RoundTrips] = {}  # by method: where the caller's waits went
        for size in sizes:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, size, self.cameras, image_size, spec), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self.backend = self._gather(range(workers))[0][0]

    @property
    def workers(self) -> int:
        return len(self._conns)

    def _gather(self, workers: Sequence[int]) -> tuple[list[Any], list[float]]:
        """Each worker's reply and its time inside the env."""
        replies, busy = [], []
        for w in workers:
            try:
                status, value, seconds = self._conns[w].recv()
            except EOFError:  # it died without a word (killed, or out of memory)
                self._fail(w)
            if status != "ok":
                self.close()
                raise WorkerError(f"MuJoCo worker {w} failed:\n{value}")
            replies.append(value)
            busy.append(seconds)
        return replies, busy

    def _fail(self, w: int) -> NoReturn:
        self._procs[w].join(timeout=5)
        code = self._procs[w].exitcode
        self.close()
        raise WorkerError(f"MuJoCo worker {w} failed: the process exited (code {code}); rerun with --resume")

    def _call_each(self, requests: dict[int, tuple[str, tuple]]) -> dict[int, Any]:
        """Send every worker its request first, then collect: the workers run at the same time."""
        began = time.perf_counter()
        for w, request in requests.items():
            try:
                self._conns[w].send(request)
            except (BrokenPipeError, ConnectionResetError):
                self._fail(w)
        replies, busy = self._gather(list(requests))
        if requests:
            method = next(iter(requests.values()))[0]
            self.round_trips.setdefault(method, RoundTrips()).add(time.perf_counter() - began, busy)
        return dict(zip(requests, replies))

    def _by_worker(self, env_ids: Sequence[int]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for i in env_ids:
            groups.setdefault(self._where[i][0], []).append(i)
        return groups

    def _call_by_worker(self, method: str, groups: dict[int, list[int]]) -> dict[int, Any]:
        """``method`` of each worker's envs in ``groups``, called with their local indices, all workers at once."""
        return self._call_each({w: (method, ([self._where[i][1] for i in ids],)) for w, ids in groups.items()})

    def reset_envs(self, env_ids, scenarios, instructions, seeds) -> None:
        rows = {i: (s, t, int(seed)) for i, s, t, seed in zip(env_ids, scenarios, instructions, seeds)}
        requests = {}
        for w, ids in self._by_worker(env_ids).items():
            local = [self._where[i][1] for i in ids]
            requests[w] = ("reset_envs", (local, [rows[i][0] for i in ids], [rows[i][1] for i in ids],
                                          [rows[i][2] for i in ids]))
        self._call_each(requests)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> None:
        ids = range(self.num_envs) if active is None else np.flatnonzero(active)
        requests = {}
        for w, members in self._by_worker(ids).items():
            size = self._sizes[w]
            local_actions = np.zeros((size, actions.shape[1]), dtype=actions.dtype)
            local_active = np.zeros(size, dtype=bool)
            for i in members:
                local_actions[self._where[i][1]] = actions[i]
                local_active[self._where[i][1]] = True
            requests[w] = ("step", (local_actions, local_active))
        self._call_each(requests)

    def observations(self, env_ids: Sequence[int]) -> dict[str, np.ndarray]:
        env_ids = list(env_ids)
        groups = self._by_worker(env_ids)
        replies = self._call_by_worker("observations", groups)
        rows: dict[int, dict[str, np.ndarray]] = {}
        for w, ids in groups.items():
            for k, i in enumerate(ids):
                rows[i] = {key: value[k] for key, value in replies[w].items()}
        keys = ("state", *self.cameras)
        return {key: np.stack([rows[i][key] for i in env_ids]) if env_ids else np.zeros((0,)) for key in keys}

    def _one(self, method: str, env_id: int) -> Any:
        w, local = self._where[env_id]
        return self._call_each({w: (method, (local,))})[w]

    def info(self, env_id: int) -> dict[str, Any]:
        return self._one("info", env_id)

    def infos(self, env_ids: Sequence[int]) -> list[dict[str, Any]]:
        # One round trip per worker, all at once: a scripted expert asks for every env's info at every step, and
        # one request per env waits on a worker's wake-up each time (64 envs: 64 waits a step on a busy box).
        groups = self._by_worker(env_ids)
        replies = self._call_by_worker("infos", groups)
        rows = {i: replies[w][k] for w, ids in groups.items() for k, i in enumerate(ids)}
        return [rows[i] for i in env_ids]

    def outcome(self, env_id: int) -> EpisodeOutcome:
        return self._one("outcome", env_id)

    def sim_time(self, env_id: int) -> float:
        return self._one("sim_time", env_id)

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("close", ()))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        self._conns, self._procs = [], []
