"""sweep-v3 and sweep-into-v3 (metaworld/envs/sawyer_sweep_v3.py, sawyer_sweep_into_goal_v3.py)."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, tcp_center
from envs.tasks.push_back import pad_caging_reward
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

OBJ_RADIUS = 0.02
TARGET_RADIUS = 0.05


class _Sweep(Task):
    grip_extra = 0.0
    x_z_success_margin = 0.0

    def _target(self, obj, c):
        raise NotImplementedError

    def evaluate(self, obs, action, kin, c):
        obj, tcp_opened = obs[OBS_OBJ1_POS], obs[OBS_GRIPPER]
        target = self._target(obj, c)
        obj_to_target = jnp.linalg.norm(obj - target)
        tcp_to_obj = jnp.linalg.norm(obj - tcp_center(kin))
        in_place_margin = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(obj_to_target, bounds=(0, TARGET_RADIUS), margin=in_place_margin, sigmoid="long_tail")
        object_grasped = pad_caging_reward(
            action, obj, kin, c, obj_radius=OBJ_RADIUS, grip_extra=self.grip_extra,
            x_z_success_margin=self.x_z_success_margin,
        )
        in_place_and_object_grasped = rewards.hamacher_product(object_grasped, in_place)
        reward = 2 * object_grasped + 6 * in_place_and_object_grasped
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success is touching_main_object (pad contact forces) and tcp_opened > 0; the Kinematics do
        # not carry contacts, so tcp_to_obj < 0.02 stands in for the touch. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0)
        return reward, info(
            (obj_to_target <= 0.05).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place, obj_to_target, reward,
        )


class Sweep(_Sweep):
    name = "sweep"
    frames = ("body:obj",)
    grip_extra = 0.01
    x_z_success_margin = 0.005

    def objects(self, kin, c):
        f = kin.frames["body:obj"]
        return f.pos, f.quat  # body xpos and xquat (w, x, y, z), as official

    def _target(self, obj, c):
        return c["target_pos"]


class SweepInto(_Sweep):
    name = "sweep-into"
    frames = ("body:obj", "geom:objGeom")
    grip_extra = 0.005
    x_z_success_margin = 0.01

    def objects(self, kin, c):
        return kin.pos("body:obj"), rewards.scipy_quat_from_matrix(kin.frames["geom:objGeom"].mat)

    def _target(self, obj, c):
        # the target takes the puck's current height
        return jnp.stack([c["target_pos"][0], c["target_pos"][1], obj[2]])


TASKS = (Sweep(), SweepInto())
