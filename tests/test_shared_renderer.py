"""Envs of one scene share a process's renderer and still get their own pictures, pixel for pixel."""

import mujoco
import numpy as np

from leisaac_tasks.backends.mujoco.shared_renderer import RENDERERS, render_key
from leisaac_tasks.env import SandwichEnv


def own_renderer_picture(env: SandwichEnv, camera: str, size: int) -> np.ndarray:
    """What the env's own ``mujoco.Renderer`` (one context per env, as before the sharing) draws."""
    with mujoco.Renderer(env.sim.model, height=size, width=size) as renderer:
        renderer.update_scene(env.sim.data, camera=camera)
        return renderer.render()


def test_envs_share_one_renderer_and_see_their_own_scenes():
    envs = [SandwichEnv(cameras=("front", "wrist"), image_size=64) for _ in range(2)]
    try:
        # Different cells and layouts: the plate and holder move (model fields), an ingredient is parked.
        first, _ = envs[0].reset(seed=3, options={"scenario": "H,H"})
        second, _ = envs[1].reset(seed=11, options={"scenario": "-,P"})
        for _ in range(5):  # and the arms in different poses
            envs[0].advance(np.array([20.0, -30.0, 40.0, 10.0, 0.0, 30.0]))
            envs[1].advance(np.array([-25.0, 10.0, -20.0, 0.0, 45.0, 5.0]))
        keys = {key for env in envs for key in env.sim._renderers.values()}
        assert len(keys) == 1  # one context for both envs
        pictures = [env.observe() for env in envs]
        assert not np.array_equal(pictures[0]["front"], pictures[1]["front"])
        assert not np.array_equal(first["front"], pictures[0]["front"])
        for env, picture in zip(envs, pictures):
            for camera in ("front", "wrist"):
                np.testing.assert_array_equal(picture[camera], own_renderer_picture(env, camera, 64))
    finally:
        for env in envs:
            env.close()
    assert not any(key in RENDERERS._renderers for key in keys)  # the last env to close freed it


def test_the_key_tells_apart_what_a_render_context_holds():
    env = SandwichEnv(cameras=("front",), image_size=32)
    try:
        model = env.sim.model
        key = render_key(model, 32, 32)
        assert render_key(model, 64, 64) != key
        other = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
        assert render_key(other, 32, 32) != key
        model.body_pos[model.body("plate").id][:2] += 0.05  # what a reset changes: not what the context holds
        assert render_key(model, 32, 32) == key
    finally:
        env.close()
