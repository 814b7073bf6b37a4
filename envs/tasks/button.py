"""button-press-topdown-v3 (metaworld/envs/sawyer_button_press_topdown_v3.py): press the button down from above."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS


class ButtonPressTopdown(Task):
    name = "button-press-topdown"
    frames = ("body:button",)

    def constants(self, env):
        return {"obj_to_target_init": np.asarray(env._obj_to_target_init, np.float64)}

    def objects(self, kin, c):
        f = kin.frames["body:button"]
        return f.pos + jnp.array([0.0, 0.0, 0.193]), f.quat

    def evaluate(self, obs, action, kin, c):
        obj, tcp = obs[OBS_OBJ1_POS], tcp_center(kin)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(obj - c["init_tcp"])
        obj_to_target = jnp.abs(c["target_pos"][2] - obj[2])
        tcp_closed = 1 - obs[OBS_GRIPPER]
        near_button = rewards.tolerance(tcp_to_obj, bounds=(0, 0.01), margin=tcp_to_obj_init, sigmoid="long_tail")
        button_pressed = rewards.tolerance(
            obj_to_target, bounds=(0, 0.005), margin=c["obj_to_target_init"], sigmoid="long_tail"
        )
        reward = 5 * rewards.hamacher_product(tcp_closed, near_button)
        reward = jnp.where(tcp_to_obj <= 0.03, reward + 5 * button_pressed, reward)
        return reward, info(
            (obj_to_target <= 0.024).astype(jnp.float32), (tcp_to_obj <= 0.05).astype(jnp.float32),
            (obs[OBS_GRIPPER] > 0).astype(jnp.float32), near_button, button_pressed, obj_to_target, reward,
        )


    def constants_v1(self, env):
        return read_attrs(env, "maxDist")

    def reward_v1(self, obs, action, kin, c):
        obj = obs[OBS_OBJ1_POS]
        press_dist = jnp.abs(obj[2] - c["target_pos"][2])
        reach_dist = jnp.linalg.norm(obj - tcp_center(kin))
        press = jnp.where(reach_dist < 0.05, rewards.v1_progress(press_dist, c["maxDist"]), 0.0)
        return -reach_dist + jnp.maximum(press, 0.0)


TASKS = (ButtonPressTopdown(),)
