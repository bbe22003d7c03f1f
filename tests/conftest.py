import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import pytest  # noqa: E402

from leisaac_tasks.spec import DEFAULT_SCENE  # noqa: E402


@pytest.fixture(scope="session")
def sim():
    from leisaac_tasks.backends.mujoco.sim import MujocoSim

    s = MujocoSim(DEFAULT_SCENE.with_resolution(64, 64))
    yield s
    s.close()
