"""coffee-button-v3 (metaworld/envs/sawyer_coffee_button_v3.py): push the coffee machine's button in along +y."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, read_attrs
from envs.types import OBS_OBJ1_POS
from envs.tasks.button_press import press_reward

MAX_DIST = 0.03  # official self.max_dist


class CoffeeButton(Task):
    name = "coffee-button"
    frames = ("site:buttonStart",)

    def objects(self, kin, c):
        return kin.pos("site:buttonStart"), jnp.array([1.0, 0.0, 0.0, 0.0])

    def evaluate(self, obs, action, kin, c):
        # Official compute_reward is button-press-v3's with the fixed margin max_dist for button_pressed.
        return press_reward(obs, kin, c, pressed_margin=MAX_DIST)

    def constants_v1(self, env):
        return read_attrs(env, "maxDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1: button-press's (left end-effector site, press along y)."""
        return rewards.v1_press(obs[OBS_OBJ1_POS], kin.pos("site:leftEndEffector"), c["target_pos"], 1, c["maxDist"])


TASKS = (CoffeeButton(),)
