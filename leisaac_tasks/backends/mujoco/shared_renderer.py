"""One offscreen renderer per process for every env built from the same scene.

A MuJoCo ``Renderer`` owns a GL context and a render context holding the model's meshes and textures. A grid
worker with one renderer per env made 17 of them at its first reset, uploading the meshes 17 times: on the GPU
box that was 13.6 of the grid's 14.3 s of resets, and 1.8 s with one renderer a process (reports/benchmarks.md,
fourth session). What a render context holds does not change with the layout (a reset moves bodies, not meshes),
so envs whose models upload the same assets share one: each render writes the env's own model and data into the
shared scene (``mjv_updateScene``), then draws it.
"""

from __future__ import annotations

import hashlib

import mujoco
import numpy as np

# What MjrContext copies out of a model when it is made: the assets it uploads and the settings it keeps.
_UPLOADED = ("mesh_vert", "mesh_face", "mesh_normal", "mesh_texcoord", "mesh_vertadr", "mesh_faceadr",
             "tex_data", "tex_height", "tex_width", "tex_nchannel", "mat_texid", "hfield_data", "hfield_size")


def render_key(model: mujoco.MjModel, height: int, width: int) -> str:
    """Equal for models whose render contexts would be equal, at this image size."""
    digest = hashlib.blake2b(digest_size=16)
    for name in _UPLOADED:
        array = getattr(model, name, None)
        if array is not None:
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(np.array([model.stat.extent, model.vis.global_.offwidth, model.vis.global_.offheight,
                            model.vis.quality.shadowsize, model.vis.quality.offsamples, model.nskin,
                            model.nflex]).tobytes())
    return f"{height}x{width}:{digest.hexdigest()}"


class SharedRenderers:
    """Renderers by ``render_key``, counted: the last env to let go of one frees it."""

    def __init__(self) -> None:
        self._renderers: dict[str, mujoco.Renderer] = {}
        self._users: dict[str, int] = {}
        self._option = mujoco.MjvOption()  # the defaults Renderer.update_scene uses

    def acquire(self, model: mujoco.MjModel, height: int, width: int) -> str:
        key = render_key(model, height, width)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(model, height=height, width=width)
        self._users[key] = self._users.get(key, 0) + 1
        return key

    def release(self, key: str) -> None:
        self._users[key] -= 1
        if not self._users[key]:
            del self._users[key]
            self._renderers.pop(key).close()

    def render(self, key: str, model: mujoco.MjModel, data: mujoco.MjData, camera: str) -> np.ndarray:
        """What ``Renderer.update_scene(data, camera)`` then ``render()`` gives for this model, from the shared
        context."""
        renderer = self._renderers[key]
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        cam.fixedcamid = model.camera(camera).id
        mujoco.mjv_updateScene(model, data, self._option, None, cam, mujoco.mjtCatBit.mjCAT_ALL.value, renderer.scene)
        return renderer.render()


RENDERERS = SharedRenderers()  # this process's
