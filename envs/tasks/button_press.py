"""button-press-v3 (metaworld/envs/sawyer_button_press_v3.py): press the button in along +y.

Also holds the terms the +y button tasks share: ``button_terms`` (button-press, button-press-wall, coffee-button)
and ``press_reward``, the whole V2 reward of button-press and coffee-button (the same code up to one margin).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS


def button_terms(obs, kin, c, *, near_bound, pressed_margin):
    """(tcp_to_obj, obj_to_target, near_button, button_pressed) of a +y button, obj_to_target = |target_y - obj_y|.

    near = tol(tcp_to_obj, [0, near_bound], ||obj - init_tcp||); pressed = tol(obj_to_target, [0, 0.005], pressed_margin).
    """
    obj, tcp = obs[OBS_OBJ1_POS], tcp_center(kin)
    tcp_to_obj = jnp.linalg.norm(obj - tcp)
    tcp_to_obj_init = jnp.linalg.norm(obj - c["init_tcp"])
    obj_to_target = jnp.abs(c["target_pos"][1] - obj[1])
    near_button = rewards.tolerance(tcp_to_obj, bounds=(0, near_bound), margin=tcp_to_obj_init, sigmoid="long_tail")
    button_pressed = rewards.tolerance(obj_to_target, bounds=(0, 0.005), margin=pressed_margin, sigmoid="long_tail")
    return tcp_to_obj, obj_to_target, near_button, button_pressed


def press_reward(obs, kin, c, *, pressed_margin):
    """(reward, info): reward = 2 h(max(obs[OBS_GRIPPER], 0), near) + (8 pressed where tcp_to_obj <= 0.05), near on [0, 0.05]."""
    tcp_to_obj, obj_to_target, near_button, button_pressed = button_terms(
        obs, kin, c, near_bound=0.05, pressed_margin=pressed_margin
    )
    tcp_closed = jnp.maximum(obs[OBS_GRIPPER], 0.0)  # official name; obs[OBS_GRIPPER] is how far the fingers are apart
    reward = 2 * rewards.hamacher_product(tcp_closed, near_button)
    reward = jnp.where(tcp_to_obj <= 0.05, reward + 8 * button_pressed, reward)
    return reward, info(
        obj_to_target <= 0.02, tcp_to_obj <= 0.05, obs[OBS_GRIPPER] > 0, near_button, button_pressed, obj_to_target, reward,
    )


class ButtonPress(Task):
    name = "button-press"
    frames = ("body:button",)

    def constants(self, env):
        return {"obj_to_target_init": np.asarray(env._obj_to_target_init, np.float64)}

    def objects(self, kin, c):
        f = kin.frames["body:button"]
        return f.pos + jnp.array([0.0, -0.193, 0.0]), f.quat

    def evaluate(self, obs, action, kin, c):
        return press_reward(obs, kin, c, pressed_margin=c["obj_to_target_init"])

    def constants_v1(self, env):
        return read_attrs(env, "maxDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1: fingerCOM is the left end-effector site alone; press along y."""
        return rewards.v1_press(obs[OBS_OBJ1_POS], kin.pos("site:leftEndEffector"), c["target_pos"], 1, c["maxDist"])


TASKS = (ButtonPress(),)
