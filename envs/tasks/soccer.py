"""soccer-v3 (metaworld/envs/sawyer_soccer_v3.py): push the ball into the goal."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import PushV1, Task, info, tcp_center
from envs.tasks.push_back import pad_caging_reward
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

OBJ_RADIUS = 0.013
TARGET_RADIUS = 0.07


class Soccer(PushV1, Task):
    name = "soccer"
    frames = ("body:soccer_ball",)

    def objects(self, kin, c):
        f = kin.frames["body:soccer_ball"]  # quat: scipy quat of the BODY xmat (x, y, z, w)
        return f.pos, rewards.scipy_quat_from_matrix(f.mat)

    def evaluate(self, obs, action, kin, c):
        obj, tcp_opened, target = obs[OBS_OBJ1_POS], obs[OBS_GRIPPER], c["target_pos"]
        x_scaling = jnp.array([3.0, 1.0, 1.0])
        tcp_to_obj = jnp.linalg.norm(obj - tcp_center(kin))
        target_to_obj = jnp.linalg.norm((obj - target) * x_scaling)
        # Official quirk: the margin uses the CURRENT ball position (obj - obj_init_pos), not the initial distance.
        target_to_obj_init = jnp.linalg.norm((obj - c["obj_init_pos"]) * x_scaling)
        in_place = rewards.tolerance(target_to_obj, bounds=(0, TARGET_RADIUS), margin=target_to_obj_init, sigmoid="long_tail")
        goal_line = target[1] - 0.1
        off_goal = (obj[1] > goal_line) & (jnp.abs(obj[0] - target[0]) > 0.10)
        in_place = jnp.where(off_goal, jnp.clip(in_place - 2 * ((obj[1] - goal_line) / (1 - goal_line)), 0.0, 1.0), in_place)
        object_grasped = pad_caging_reward(
            action, obj, kin, c, obj_radius=OBJ_RADIUS, grip_extra=0.01, x_z_success_margin=0.005
        )
        reward = 3 * object_grasped + 6.5 * in_place
        reward = jnp.where(target_to_obj < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success also needs touching_main_object (pad contact forces), which the Kinematics do not
        # carry; tcp_to_obj < 0.02 stands in for it. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.02 > c["obj_init_pos"][2])
        # compute_reward returns the UNSCALED distance in the slot evaluate_state calls target_to_obj, so success
        # (<= 0.07) tests the plain distance while the reward's 10.0 tests the x-scaled one (< TARGET_RADIUS).
        obj_to_target = jnp.linalg.norm(obj - target)
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place, obj_to_target, reward,
        )



TASKS = (Soccer(),)
