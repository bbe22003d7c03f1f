"""The sandwich task on Isaac Lab 3.0: ``num_envs`` independent episodes stepped as one batch on the GPU.

Same contract as ``leisaac_tasks.vec_env.VecSandwichEnv``: actions are joint targets in the sim's radians (MJCF
zeros), observations carry ``state`` in the same units, ``info`` and ``outcome`` come from the same layout sampler
and outcome classifier as the embedded backend. Positions in ``info`` are env-local, as the policies plan them.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
import torch

from leisaac_tasks.isaaclab import so101_usd
from leisaac_tasks.isaaclab.description import describe_scene, layout_poses
from leisaac_tasks.layout import Layout, sample_layout
from leisaac_tasks.outcomes import EpisodeOutcome, IngredientTrack, episode_outcome
from leisaac_tasks.scenarios import INGREDIENTS, Scenario
from leisaac_tasks.spec import DEFAULT_SCENE, SceneSpec


def _xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return q[..., [3, 0, 1, 2]]


def _offline_assets() -> None:
    """``isaaclab.utils.assets`` asks omni.client about remote references in USD files; offline, none exist."""
    import isaaclab.utils.assets as assets

    if hasattr(assets, "_remote_fingerprint"):
        assets._remote_fingerprint = lambda path: None


class IsaacLabVecEnv:
    backend = "isaaclab"

    def __init__(self, num_envs: int, cameras: tuple[str, ...] = (), image_size: int | tuple[int, int] = 224,
                 spec: SceneSpec | None = None, device: str = "cuda:0", preset: str = "newton"):
        width, height = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.spec = (spec or DEFAULT_SCENE).with_resolution(width, height)
        for cam in cameras:
            self.spec.camera(cam)  # fail now on an unknown camera name
        self.desc = describe_scene(self.spec)
        self.num_envs, self.cameras, self.device = num_envs, tuple(cameras), device

        _offline_assets()
        import isaaclab.sim as sim_utils
        from isaaclab.app import launch_simulation
        from isaaclab.utils import instantiate

        from leisaac_tasks.isaaclab.scene_cfg import PRESETS, build_scene_cfg, build_sim_cfg

        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        sim_cfg = build_sim_cfg(self.desc, device)
        self._stack = contextlib.ExitStack()
        launcher = {"visualizer": [], "device": device}
        if preset != "newton":  # naming the backend makes the launcher swap in its own default physics config
            launcher["physics"] = PRESETS[preset].physics
        self._stack.enter_context(launch_simulation(sim_cfg, launcher))
        self.sim = sim_utils.SimulationContext(sim_cfg)
        self.scene = instantiate(build_scene_cfg(self.desc, num_envs, self.cameras))
        self.sim.reset()
        self.robot = self.scene["robot"]
        self._joint_ids = self.robot.find_joints(list(self.desc.robot.joint_names), preserve_order=True)[0]
        self._gripper = self.robot.find_bodies(self.desc.robot.gripper_link)[0][0]
        limits = torch.tensor(self.desc.robot.usd_limits, dtype=torch.float32, device=device)
        self.robot.write_joint_position_limit_to_sim_index(limits=limits.expand(num_envs, -1, -1).contiguous(),
                                                           joint_ids=self._joint_ids)
        self.origins = self.scene.env_origins.detach().cpu().numpy().astype(np.float64)
        self._sim_low = np.array([lo for lo, _ in self.desc.robot.sim_limits])
        self._sim_high = np.array([hi for _, hi in self.desc.robot.sim_limits])
        self._home = np.array(self.spec.robot.home_qpos, dtype=np.float64)
        self._ee_local = torch.tensor(self.desc.robot.ee_site_local, dtype=torch.float32, device=device)

        n, k = num_envs, len(INGREDIENTS)
        self.layouts: list[Layout | None] = [None] * n
        self.instructions = [""] * n
        self.steps = np.zeros(n, dtype=np.int64)
        self.present = np.zeros((n, k), dtype=bool)
        self.track_start = np.zeros((n, k, 7))
        self.track_max_z = np.zeros((n, k))
        self.track_final = np.zeros((n, k, 7))
        self.targets = np.tile(self._home, (n, 1))
        self._state = np.tile(self._home, (n, 1))
        self._ee = np.zeros((n, 3))
        self.reset_envs(range(n), [Scenario.parse("H,H")] * n, [""] * n, range(n))

    # --- episodes ---------------------------------------------------------------------------------
    def reset_envs(self, env_ids: Sequence[int], scenarios: Sequence[Scenario], instructions: Sequence[str],
                   seeds: Sequence[int]) -> None:
        ids = np.asarray(list(env_ids), dtype=np.int64)
        if ids.size == 0:
            return
        poses: dict[str, list[np.ndarray]] = {}
        for i, scenario, text, seed in zip(ids, scenarios, instructions, seeds):
            scenario = scenario if isinstance(scenario, Scenario) else Scenario.parse(str(scenario))
            layout = sample_layout(self.spec, scenario, int(seed))
            self.layouts[i], self.instructions[i] = layout, str(text)
            for name, pose in layout_poses(self.spec, self.desc, layout).items():
                world = pose.copy()
                world[:3] += self.origins[i]
                poses.setdefault(name, []).append(world)
            for k, name in enumerate(INGREDIENTS):
                start = layout.ingredient_poses[name]
                self.present[i, k] = start is not None
                if start is not None:
                    self.track_start[i, k] = self.track_final[i, k] = start
                    self.track_max_z[i, k] = start[2]
        env_ids_t = torch.as_tensor(ids, device=self.device)
        for name, rows in poses.items():
            obj = self.scene[name]
            obj.write_root_pose_to_sim_index(root_pose=self._tensor(np.stack(rows)), env_ids=env_ids_t)
            obj.write_root_velocity_to_sim_index(root_velocity=torch.zeros(len(ids), 6, device=self.device),
                                                 env_ids=env_ids_t)
        home = self._tensor(np.tile(so101_usd.sim_to_usd(self._home), (len(ids), 1)))
        self.robot.write_joint_position_to_sim_index(position=home, joint_ids=self._joint_ids, env_ids=env_ids_t)
        self.robot.write_joint_velocity_to_sim_index(velocity=torch.zeros_like(home), joint_ids=self._joint_ids,
                                                     env_ids=env_ids_t)
        self.robot.actuators.target_command.set_position_index(value=home, joint_ids=self._joint_ids, env_ids=env_ids_t)
        _ = self.robot.data.body_link_pose_w  # consume the FK invalidation before anything reads bodies
        self.targets[ids] = self._home
        self.steps[ids] = 0
        for cam in self.cameras:  # their next read renders the new scene
            self.scene[f"{cam}_camera"].reset(env_ids_t)
        self._read_state()

    def step(self, actions: np.ndarray, active: np.ndarray | None = None) -> None:
        """One control period for every env (the batch steps together); ``active`` envs take ``actions``."""
        actions = np.clip(np.asarray(actions, dtype=np.float64), self._sim_low, self._sim_high)
        if active is None:
            self.targets[:] = actions
        else:
            self.targets[active] = actions[active]
        self.robot.actuators.target_command.set_position_index(
            value=self._tensor(so101_usd.sim_to_usd(self.targets)), joint_ids=self._joint_ids)
        self.scene.write_data_to_sim()
        self.sim.step(render=False)
        self.scene.update(self.desc.physics.control_dt)
        self.steps += 1
        self._read_state()
        poses = self.track_final  # updated by _read_state
        rise = np.where(self.present, poses[..., 2], -np.inf)
        self.track_max_z = np.maximum(self.track_max_z, rise)

    def _read_state(self) -> None:
        """One device-to-host copy per step: joints, slice poses, gripper pose."""
        q = self.robot.data.joint_pos.torch[:, self._joint_ids]
        slices = [torch.cat([self.scene[n].data.root_pos_w.torch, self.scene[n].data.root_quat_w.torch], dim=-1)
                  for n in INGREDIENTS]
        body = self.robot.data.body_link_pose_w.torch[:, self._gripper]
        from isaaclab.utils.math import quat_apply

        ee = body[:, :3] + quat_apply(body[:, 3:7], self._ee_local.expand(self.num_envs, 3))
        packed = torch.cat([q, *slices, ee], dim=-1).double().cpu().numpy()
        self._state = so101_usd.usd_to_sim(packed[:, :6])
        for k in range(len(INGREDIENTS)):
            pose = packed[:, 6 + 7 * k: 13 + 7 * k].copy()
            pose[:, :3] -= self.origins
            pose[:, 3:] = _xyzw_to_wxyz(pose[:, 3:])
            self.track_final[:, k] = np.where(self.present[:, k, None], pose, self.track_final[:, k])
        self._ee = packed[:, -3:] - self.origins

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self.device)

    # --- reading ----------------------------------------------------------------------------------
    def observations(self, env_ids: Sequence[int]) -> dict[str, np.ndarray]:
        ids = list(env_ids)
        obs = {"state": self._state[ids].astype(np.float32)}
        index = torch.as_tensor(ids, device=self.device)
        for cam in self.cameras:
            rgb = self.scene[f"{cam}_camera"].data.output["rgb"].torch
            obs[cam] = rgb[index][..., :3].to(torch.uint8).cpu().numpy()
        return obs

    def images(self, camera: str) -> torch.Tensor:
        """All envs' images of one camera, left on the GPU (N, H, W, 3) uint8: for batched policies."""
        return self.scene[f"{camera}_camera"].data.output["rgb"].torch[..., :3]

    def tracks(self, env_id: int) -> dict[str, IngredientTrack | None]:
        out: dict[str, IngredientTrack | None] = {}
        for k, name in enumerate(INGREDIENTS):
            if not self.present[env_id, k]:
                out[name] = None
                continue
            out[name] = IngredientTrack(start=self.track_start[env_id, k].copy(), max_z=float(self.track_max_z[env_id, k]),
                                        final=self.track_final[env_id, k].copy(),
                                        rest_half_height=max(self.spec.ingredients[name].extents) / 2)
        return out

    def outcome(self, env_id: int) -> EpisodeOutcome:
        return episode_outcome(self.tracks(env_id), self.layouts[env_id].plate_region(self.spec))

    def infos(self, env_ids: Sequence[int]) -> list[dict[str, Any]]:
        return [self.info(i) for i in env_ids]

    def info(self, env_id: int) -> dict[str, Any]:
        layout = self.layouts[env_id]
        tracks = self.tracks(env_id)
        return {
            "scenario": layout.scenario.label,
            "task_description": self.instructions[env_id],
            "object_poses": {n: None if t is None else t.final.copy() for n, t in tracks.items()},
            "plate_xy": layout.plate_xy.copy(),
            "plate_region": layout.plate_region(self.spec),
            "holder_xy": layout.holder_xy.copy(),
            "ee_pos": self._ee[env_id].copy(),
            "outcome": episode_outcome(tracks, layout.plate_region(self.spec)),
        }

    def sim_time(self, env_id: int) -> float:
        return float(self.steps[env_id]) * self.desc.physics.control_dt

    def close(self) -> None:
        self._stack.close()
        from isaaclab.sim import SimulationContext

        SimulationContext.clear_instance()
