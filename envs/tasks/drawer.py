"""drawer-open-v3 and drawer-close-v3 (metaworld/envs/sawyer_drawer_{open,close}_v3.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info

MAX_DIST = 0.2


class DrawerOpen(Task):
    name = "drawer-open"
    frames = ("body:drawer_link",)

    def objects(self, kin, c):
        f = kin.frames["body:drawer_link"]
        return f.pos + jnp.array([0.0, -0.16, 0.0]), f.quat

    def evaluate(self, obs, action, kin, c):
        gripper, handle, target = obs[:3], obs[4:7], c["target_pos"]
        handle_error = jnp.linalg.norm(handle - target)
        reward_for_opening = rewards.tolerance(handle_error, bounds=(0, 0.02), margin=MAX_DIST, sigmoid="long_tail")
        handle_pos_init = target + jnp.array([0.0, MAX_DIST, 0.0])
        scale = jnp.array([3.0, 3.0, 1.0])
        gripper_error = (handle - gripper) * scale
        gripper_error_init = (handle_pos_init - c["init_tcp"]) * scale
        reward_for_caging = rewards.tolerance(
            jnp.linalg.norm(gripper_error), bounds=(0, 0.01), margin=jnp.linalg.norm(gripper_error_init), sigmoid="long_tail"
        )
        reward = 5.0 * (reward_for_caging + reward_for_opening)
        gripper_dist = jnp.linalg.norm(handle - gripper)
        return reward, info(
            (handle_error <= 0.03).astype(jnp.float32), (gripper_dist <= 0.03).astype(jnp.float32),
            (obs[3] > 0).astype(jnp.float32), reward_for_caging, reward_for_opening, handle_error, reward,
        )
TASKS = (DrawerOpen(),)
