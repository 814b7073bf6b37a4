"""button-press-wall-v3 (metaworld/envs/sawyer_button_press_wall_v3.py): press the button in along +y, behind a wall.

Official obs is button-press-v3's (same button body and offset), so the task reuses that port's frames and objects;
the reward shares ``button_terms`` with it and differs after them.
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import info
from envs.tasks.button_press import ButtonPress, button_terms
from envs.types import OBS_GRIPPER


class ButtonPressWall(ButtonPress):
    name = "button-press-wall"

    def evaluate(self, obs, action, kin, c):
        tcp_to_obj, obj_to_target, near_button, button_pressed = button_terms(
            obs, kin, c, near_bound=0.01, pressed_margin=c["obj_to_target_init"]
        )
        far = 2 * rewards.hamacher_product((1 - obs[OBS_GRIPPER]) / 2.0, near_button)
        near = 2 + 2 * (1 + obs[OBS_GRIPPER]) + 4 * button_pressed**2
        reward = jnp.where(tcp_to_obj > 0.07, far, near)
        return reward, info(
            obj_to_target <= 0.03, tcp_to_obj <= 0.05, obs[OBS_GRIPPER] > 0, near_button, button_pressed, obj_to_target, reward,
        )


    reward_v1 = ButtonPress.reward_v1  # the official V1 branch is button-press's, line for line


TASKS = (ButtonPressWall(),)
