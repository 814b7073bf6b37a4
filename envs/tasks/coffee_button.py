"""coffee-button-v3 (metaworld/envs/sawyer_coffee_button_v3.py): push the coffee machine's button in along +y."""

from __future__ import annotations

import jax.numpy as jnp

from envs.tasks.base import Task
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


TASKS = (CoffeeButton(),)
