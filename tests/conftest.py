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


@pytest.fixture(scope="module")
def env(request):
    """One SandwichEnv per test module at 64², with the module's ``ENV_CAMERAS`` (default: both cameras)."""
    from leisaac_tasks.env import SandwichEnv

    e = SandwichEnv(cameras=getattr(request.module, "ENV_CAMERAS", ("front", "wrist")), image_size=64)
    yield e
    e.close()
