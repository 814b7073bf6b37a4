"""coffee-push-v3 (metaworld/envs/sawyer_coffee_push_v3.py): push the mug under the coffee machine.

Official obs, V2 reward and success are line for line those of coffee-pull-v3 (only the reset differs: the machine
sits behind the goal instead of the mug), so the task reuses that port; the V1 rewards differ.
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import read_attrs, tcp_center
from envs.tasks.coffee_pull import _CoffeeMug
from envs.types import OBS_OBJ1_POS


class CoffeePush(_CoffeeMug):
    name = "coffee-push"

    def constants_v1(self, env):
        return read_attrs(env, "maxPushDist")

    def reward_v1(self, obs, action, kin, c):
        obj, goal = obs[OBS_OBJ1_POS], c["target_pos"]
        return rewards.v1_reach_then_progress(
            jnp.linalg.norm(tcp_center(kin) - obj), jnp.linalg.norm(obj[:2] - goal[:2]), c["maxPushDist"]
        )


TASKS = (CoffeePush(),)
