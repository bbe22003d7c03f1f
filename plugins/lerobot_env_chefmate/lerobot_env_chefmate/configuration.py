"""``--env.type=chefmate``: the EnvConfig LeRobot's CLIs parse. Every field is an ``--env.<field>`` option:

    lerobot-eval --policy.type=act --env.type=chefmate --eval.n_episodes=2 --eval.batch_size=1 \\
        --policy.device=cpu --output_dir=outputs/eval_act
    lerobot-eval ... --env.scenario="H,-" --env.instruction="do not pick up the cheese"
    lerobot-eval ... --env.scenario="H,H" --env.family=negation --env.variant=1   # a generated perturbation
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import FeatureType, PolicyFeature
from lerobot.envs.configs import EnvConfig
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from lerobot_env_chefmate import GYM_NAMESPACE, TASK
from lerobot_env_chefmate.env import CAMERAS, DEFAULT_IMAGE_SIZE, EPISODE_STEPS, FPS, SEED_SCENARIO


@EnvConfig.register_subclass("chefmate")
@dataclass
class ChefMateEnv(EnvConfig):
    """The SO-101 sandwich task. State and actions are in LeRobot's SO-101 units (degrees, gripper 0-100)."""

    task: str | None = TASK
    fps: int = FPS
    episode_length: int = EPISODE_STEPS
    scenario: str = SEED_SCENARIO  # one of the eight cells, e.g. "H,H", "H,-", "P,H"
    instruction: str | None = None  # the text the policy reads; default: the family's first for the scenario
    family: str = "seed"  # seed or any perturbation family (chefmate-matrix --list-instructions lists them)
    variant: int = 0  # which instruction of the family, in the order chefmate-matrix lists them
    image_size: int = DEFAULT_IMAGE_SIZE
    render_mode: str = "rgb_array"
    features: dict[str, PolicyFeature] = field(default_factory=dict)
    features_map: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        size = (self.image_size, self.image_size, 3)
        self.features = {ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(6,)),
                         "agent_pos": PolicyFeature(type=FeatureType.STATE, shape=(6,)),
                         **{f"pixels/{cam}": PolicyFeature(type=FeatureType.VISUAL, shape=size) for cam in CAMERAS}}
        self.features_map = {ACTION: ACTION, "agent_pos": OBS_STATE,
                             **{f"pixels/{cam}": f"{OBS_IMAGES}.{cam}" for cam in CAMERAS}}

    @property
    def package_name(self) -> str:
        return GYM_NAMESPACE

    @property
    def gym_kwargs(self) -> dict:
        return {"scenario": self.scenario, "instruction": self.instruction, "family": self.family,
                "variant": self.variant, "image_size": self.image_size, "episode_length": self.episode_length,
                "render_mode": self.render_mode,
                "max_episode_steps": self.episode_length}  # gym's TimeLimit: lerobot-eval reads its limit
