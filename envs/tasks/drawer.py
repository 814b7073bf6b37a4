"""drawer-open-v3 and drawer-close-v3 (metaworld/envs/sawyer_drawer_{open,close}_v3.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_HAND, OBS_OBJ1_POS

MAX_DIST = 0.2


class _Drawer(Task):
    def constants_v1(self, env):
        return read_attrs(env, "maxDist")

    def reward_v1(self, obs, action, kin, c):
        """The same V1 reward for drawer-open and drawer-close: reach the handle, then move it to the goal in y."""
        obj = obs[OBS_OBJ1_POS]
        pull_dist = jnp.abs(obj[1] - c["target_pos"][1])
        reach_dist = jnp.linalg.norm(obj - tcp_center(kin))
        pull = jnp.where(reach_dist < 0.05, jnp.maximum(rewards.v1_progress(pull_dist, c["maxDist"]), 0.0), 0.0)
        return -reach_dist + pull


class DrawerOpen(_Drawer):
    name = "drawer-open"
    frames = ("body:drawer_link",)

    def objects(self, kin, c):
        f = kin.frames["body:drawer_link"]
        return f.pos + jnp.array([0.0, -0.16, 0.0]), f.quat

    def evaluate(self, obs, action, kin, c):
        gripper, handle, target = obs[OBS_HAND], obs[OBS_OBJ1_POS], c["target_pos"]
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
            (obs[OBS_GRIPPER] > 0).astype(jnp.float32), reward_for_caging, reward_for_opening, handle_error, reward,
        )


class DrawerClose(_Drawer):
    name = "drawer-close"
    frames = ("body:drawer_link",)
    target_radius = 0.05  # official code reads self.TARGET_RADIUS (base 0.05), not its own _TARGET_RADIUS = 0.04

    def objects(self, kin, c):
        return kin.pos("body:drawer_link") + jnp.array([0.0, -0.16, 0.05]), jnp.zeros(4)

    def evaluate(self, obs, action, kin, c):
        obj, target = obs[OBS_OBJ1_POS], c["target_pos"]
        target_to_obj = jnp.linalg.norm(obj - target)
        target_to_obj_init = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(
            target_to_obj, bounds=(0, self.target_radius), margin=jnp.abs(target_to_obj_init - self.target_radius),
            sigmoid="long_tail",
        )
        handle_reach_radius = 0.005
        tcp_to_obj = jnp.linalg.norm(obj - tcp_center(kin))
        tcp_to_obj_init = jnp.linalg.norm(c["obj_init_pos"] - c["init_tcp"])
        reach = rewards.tolerance(
            tcp_to_obj, bounds=(0, handle_reach_radius), margin=jnp.abs(tcp_to_obj_init - handle_reach_radius),
            sigmoid="gaussian",
        )
        gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), 1.0)
        reach = rewards.hamacher_product(reach, gripper_closed)
        success = target_to_obj <= self.target_radius + 0.015
        reward = 10 * jnp.where(success, 1.0, rewards.hamacher_product(reach, in_place))
        return reward, info(success, tcp_to_obj <= 0.01, 1.0, reach, in_place, target_to_obj, reward)
TASKS = (DrawerOpen(), DrawerClose())
