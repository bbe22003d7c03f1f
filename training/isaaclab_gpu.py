"""The Isaac Lab backend on an NVIDIA GPU: consistency checks, the seed grid, and the speed benchmark.

    python -m training.isaaclab_gpu check --out OUT     # robot placement and FK vs the MJCF, settling, camera frames
    python -m training.isaaclab_gpu grid --out OUT --seeds 10 --num-envs 480 --plan-workers 12
    python -m training.isaaclab_gpu bench --out OUT --num-envs 1024
    python -m training.isaaclab_gpu demos --out OUT --num-envs 64 --episodes 48   # vectorized demo generation
    python -m training.isaaclab_gpu all --out OUT       # each stage in its own process; a failure doesn't stop the rest

Every stage writes JSON (and CSV/PNG) under OUT and prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SEED_GRID_POLICIES = ("expert", "blind")


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image[..., :3]).astype(np.uint8)).save(path, optimize=True)


def _gpu_memory_gb() -> float:
    import torch

    if not torch.cuda.is_available():
        return float("nan")
    free, total = torch.cuda.mem_get_info()
    return round((total - free) / 2**30, 2)


def check(out: Path, device: str = "cuda:0") -> dict:
    """Does the Isaac Lab scene match the spec and the MJCF? Placement, forward kinematics, settling, frames."""
    import mujoco
    import torch

    from leisaac_tasks.isaaclab import so101_usd
    from leisaac_tasks.isaaclab.vec_env import IsaacLabVecEnv
    from leisaac_tasks.kinematics import SO101Kinematics
    from leisaac_tasks.scenarios import SEED_SCENARIOS
    from leisaac_tasks.env import CHEESE_INSTRUCTION

    res: dict = {}
    t0 = time.time()
    env = IsaacLabVecEnv(8, cameras=("front", "wrist"), image_size=224, device=device)
    res["setup_s"] = round(time.time() - t0, 1)
    from isaaclab_newton.physics import NewtonManager

    mj = NewtonManager._solver.mj_model  # the MuJoCo model Newton hands to MJWarp: one world's geoms
    res["mjwarp_geoms"] = [mj.geom(g).name.split("/World/envs/env_0/")[-1] for g in range(mj.ngeom)]
    res["mjwarp_substeps"] = NewtonManager._num_substeps
    res["mjwarp_disableflags"] = int(mj.opt.disableflags)
    res["mjwarp_analytic_box_box"] = bool(mj.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_NATIVECCD)
    res["robot_collider_geoms"] = [name for g, name in enumerate(res["mjwarp_geoms"])
                                   if "Robot/" in name and (mj.geom_contype[g] or mj.geom_conaffinity[g])]
    # World 0's contact softness: did the pads' and slices' authored mjc:solref / mjc:solimp reach MJWarp?
    mw = NewtonManager._solver.mjw_model
    solref, solimp = mw.geom_solref.numpy()[0], mw.geom_solimp.numpy()[0]
    res["mjwarp_contact"] = {name.split("/geometry")[0]: {"solref": solref[g].round(4).tolist(),
                                                          "solimp": solimp[g].round(4).tolist()}
                             for g, name in enumerate(res["mjwarp_geoms"])
                             if any(k in name for k in ("jaw_pad", "cheese", "bread", "table"))}
    res["joint_names"] = list(env.robot.joint_names)
    res["body_names"] = list(env.robot.body_names)
    root = env.robot.data.root_link_pose_w.torch.double().cpu().numpy()
    res["root_pos_err_m"] = float(np.abs(root[:, :3] - env.origins - np.array(env.desc.robot.root_pos)).max())
    res["root_quat_xyzw_env0"] = [round(float(v), 5) for v in root[0, 3:]]

    # Forward kinematics: the same joint angles must put the gripper link where the MJCF puts it.
    kin = SO101Kinematics(env.spec.robot)
    rng = np.random.default_rng(0)
    low, high = env._sim_low, env._sim_high
    q = rng.uniform(low * 0.7, high * 0.7, (env.num_envs, 6))
    qt = env._tensor(so101_usd.sim_to_usd(q))
    ids = torch.arange(env.num_envs, device=env.device)
    env.robot.write_joint_position_to_sim_index(position=qt, joint_ids=env._joint_ids, env_ids=ids)
    body = env.robot.data.body_link_pose_w.torch[:, env._gripper].double().cpu().numpy()
    pos_err, rot_err = [], []
    from scipy.spatial.transform import Rotation

    for i in range(env.num_envs):
        p, m = kin.link_pose(q[i, :5])
        pos_err.append(float(np.linalg.norm(body[i, :3] - env.origins[i] - p)))
        r = Rotation.from_quat(body[i, 3:7]).as_matrix()
        rot_err.append(float(np.degrees(np.arccos(np.clip((np.trace(r.T @ m) - 1) / 2, -1, 1)))))
    res["fk_gripper_pos_err_mm"] = round(1000 * max(pos_err), 3)
    res["fk_gripper_rot_err_deg"] = round(max(rot_err), 3)

    # Every seed scenario, arm at home: do the slices stay put and read "untouched"?
    env.reset_envs(range(8), list(SEED_SCENARIOS), [CHEESE_INSTRUCTION] * 8, [0] * 8)
    home = np.tile(env._home, (8, 1))
    for _ in range(45):
        env.step(home)
    res["home_joint_err_rad"] = round(float(np.abs(env._state - env._home).max()), 4)
    res["home_joint_err_per_joint"] = [round(float(v), 4) for v in np.abs(env._state - env._home).max(axis=0)]
    drift = np.linalg.norm(env.track_final[..., :3] - env.track_start[..., :3], axis=-1)
    res["slice_drift_mm_max"] = round(1000 * float(np.where(env.present, drift, 0).max()), 2)
    res["idle_outcomes"] = {s.label: env.outcome(i).label for i, s in enumerate(SEED_SCENARIOS)}
    res["ee_pos_env0"] = [round(float(v), 4) for v in env.info(0)["ee_pos"]]
    obs = env.observations(range(8))
    out.mkdir(parents=True, exist_ok=True)
    _save_png(out / "isaaclab_front_HH.png", obs["front"][0])
    _save_png(out / "isaaclab_wrist_HH.png", obs["wrist"][0])
    _save_png(out / "isaaclab_front_scenarios.png", np.concatenate([np.concatenate(list(obs["front"][:4]), axis=1),
                                                                    np.concatenate(list(obs["front"][4:]), axis=1)]))
    res["front_mean_rgb"] = [round(float(v), 1) for v in obs["front"][0].reshape(-1, 3).mean(0)]
    res["gpu_memory_gb"] = _gpu_memory_gb()
    env.close()
    return res


def grid(out: Path, seeds: int, num_envs: int, plan_workers: int, families: str = "none") -> dict:
    from leisaac_tasks.perturbations import family_names
    from eval.report import markdown_summary, write_report
    from eval.results import ResultStore
    from eval.run_matrix import MatrixConfig
    from eval.vector_runner import run_vectorized
    from leisaac_tasks.isaaclab.vec_env import IsaacLabVecEnv
    from leisaac_tasks.scenarios import SEED_SCENARIOS

    fams = () if families == "none" else family_names()
    cfg = MatrixConfig(policies=SEED_GRID_POLICIES, scenarios=SEED_SCENARIOS, families=fams,
                       seeds=tuple(range(seeds)), backend="isaaclab", out=out)
    episodes = cfg.episodes()
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "episodes.csv", resume=True)
    todo = [e for e in episodes if e.key() not in store.done]
    t0 = time.time()
    env = IsaacLabVecEnv(min(num_envs, max(1, len(todo))), cameras=())
    setup = time.time() - t0
    t1 = time.time()
    run_vectorized(cfg, todo, store.append, env.num_envs, env=env, plan_workers=plan_workers)
    wall = time.time() - t1
    env.close()
    summary = write_report(store.path, out)
    (out / "summary.md").write_text(markdown_summary(summary) + "\n")
    return {"episodes": len(todo), "num_envs": env.num_envs, "setup_s": round(setup, 1), "wall_s": round(wall, 1),
            "episodes_per_min": round(len(todo) / (wall / 60), 1), "summary": markdown_summary(summary)}


class _RenderingEnv:
    """The vector env with both cameras rendered (on the GPU) every step, as a camera-reading policy needs,
    while the scripted baselines read only state."""

    def __init__(self, env):
        self.env = env
        self.num_envs, self.backend, self.cameras = env.num_envs, env.backend, ()

    def step(self, actions, active=None):
        self.env.step(actions, active)
        for cam in self.env.cameras:
            self.env.images(cam).sum()

    def observations(self, env_ids):
        return {"state": self.env._state[list(env_ids)].astype(np.float32)}

    def __getattr__(self, name):
        return getattr(self.env, name)


def bench(out: Path, num_envs: int, steps: int, grid_episodes: int, plan_workers: int) -> dict:
    import torch

    from eval.run_matrix import MatrixConfig
    from eval.vector_runner import run_vectorized
    from leisaac_tasks.isaaclab.vec_env import IsaacLabVecEnv
    from leisaac_tasks.scenarios import SEED_SCENARIOS

    res: dict = {"num_envs": num_envs, "cameras": "front+wrist 224x224"}
    t0 = time.time()
    env = IsaacLabVecEnv(num_envs, cameras=("front", "wrist"), image_size=224)
    res["setup_s"] = round(time.time() - t0, 1)
    home = np.tile(env._home, (num_envs, 1))
    wiggle = np.array([0.3, 0.2, -0.2, 0.2, 0.3, 0.3])

    def run(n: int, offset: int) -> None:
        for i in range(n):
            env.step(home + wiggle * math.sin((i + offset) / 10))
            for cam in env.cameras:
                env.images(cam).sum()  # read both images every step, on the GPU
        torch.cuda.synchronize()

    run(10, 0)  # warm-up: kernel compilation and graph capture
    t1 = time.time()
    run(steps, 10)
    elapsed = time.time() - t1
    res["env_steps_per_s"] = round(steps * num_envs / elapsed, 1)
    res["ms_per_step"] = round(1000 * elapsed / steps, 2)
    res["gpu_memory_gb"] = _gpu_memory_gb()
    res["torch_max_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if grid_episodes:
        seeds = math.ceil(grid_episodes / (len(SEED_GRID_POLICIES) * len(SEED_SCENARIOS) * 3))
        cfg = MatrixConfig(policies=SEED_GRID_POLICIES, scenarios=SEED_SCENARIOS, families=(),
                           seeds=tuple(range(seeds)), backend="isaaclab")
        episodes = cfg.episodes()[:grid_episodes]
        rows: list[dict] = []
        t2 = time.time()
        run_vectorized(cfg, episodes, rows.append, num_envs, env=_RenderingEnv(env), plan_workers=plan_workers)
        wall = time.time() - t2
        res.update({"grid_episodes": len(rows), "grid_wall_s": round(wall, 1),
                    "grid_episodes_per_min": round(len(rows) / (wall / 60), 1),
                    "grid_mean_steps": round(float(np.mean([r["steps"] for r in rows])), 1),
                    "grid_errors": sum(bool(r["error"]) for r in rows)})
    env.close()
    return res


def demos(out: Path, num_envs: int, episodes: int) -> dict:
    """Vectorized demo generation on Isaac Lab: the recipe 'all' as one LeRobot dataset, read back by LeRobot."""
    from training.demos.generate import GenerateConfig, generate

    cfg = GenerateConfig(recipe="all", out=out / "datasets", episodes=episodes, backend="isaaclab",
                         num_envs=num_envs)
    t0 = time.time()
    tallies = generate(cfg, progress=False)  # includes Isaac Lab set-up and the LeRobot read-back check
    wall = time.time() - t0
    t = tallies[0]
    return {"num_envs": num_envs, "recipe": cfg.recipe, "kept": t.kept, "attempts": t.attempts,
            "frames": t.frames, "rejected_cells": t.rejected_cells, "wall_s": round(wall, 1),
            "kept_per_min": round(t.kept / (wall / 60), 1), "gpu_memory_gb": _gpu_memory_gb()}


def run_all(out: Path, args) -> None:
    """Each stage in its own process (one SimulationContext per process); log everything, keep going."""
    py = [sys.executable, "-m", "training.isaaclab_gpu"]
    stages = [("check", ["check"], 420), ("grid", ["grid", "--seeds", str(args.seeds), "--num-envs", "480",
                                                   "--plan-workers", str(args.plan_workers)], 600)]
    for n, timeout in ((64, 240), (256, 240), (1024, 300), (4096, 420)):
        stages.append((f"bench{n}", ["bench", "--num-envs", str(n), "--grid-episodes", str(min(2 * n, 2048)),
                                     "--plan-workers", str(args.plan_workers)], timeout))
    stages.append(("demos", ["demos", "--num-envs", "64", "--episodes", str(args.episodes)], 420))
    for name, argv, timeout in stages:
        if args.only and name not in args.only.split(","):
            continue
        log = out / f"{name}.log"
        t0 = time.time()
        with log.open("w") as f:
            try:
                rc = subprocess.run(py + argv + ["--out", str(out / name)], stdout=f, stderr=subprocess.STDOUT,
                                    timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        print(f"STAGE {name} rc={rc} {time.time() - t0:.0f}s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["check", "grid", "bench", "demos", "all"])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "outputs/isaaclab")))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--num-envs", type=int, default=480)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--grid-episodes", type=int, default=0)
    p.add_argument("--episodes", type=int, default=48, help="demos: kept demos to generate")
    p.add_argument("--plan-workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--only", default="", help="with 'all': comma-separated stage names")
    p.add_argument("--device", default="cuda:0", help="'cpu' runs the check slowly without a GPU")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.stage == "all":
        run_all(a.out, a)
        return
    t0 = time.time()
    if a.stage == "check":
        res = check(a.out, a.device)
    elif a.stage == "grid":
        res = grid(a.out, a.seeds, a.num_envs, a.plan_workers)
    elif a.stage == "demos":
        res = demos(a.out, a.num_envs, a.episodes)
    else:
        res = bench(a.out, a.num_envs, a.steps, a.grid_episodes, a.plan_workers)
    res["stage_s"] = round(time.time() - t0, 1)
    (a.out / f"{a.stage}.json").write_text(json.dumps(res, indent=1))
    print("RESULT", json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
