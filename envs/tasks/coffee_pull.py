"""coffee-pull-v3 (metaworld/envs/sawyer_coffee_pull_v3.py): pull the mug from under the coffee machine to the goal.

The mug's free joint comes first in this model (qpos[0:7], the arm follows); the task reads no qpos.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS


class _CoffeeMug(Task):
    """Shared by coffee-pull-v3 and coffee-push-v3, whose V2 rewards and success are identical."""

    frames = ("body:obj", "geom:mug")

    def constants(self, env):
        # Official grasp_success is touching_main_object and tcp_open > 0, where the main object is geom 'mug': a
        # visual mesh (contype = conaffinity = 0) that never has contacts, so official grasp_success is always 0.
        g = env.model.geom("mug")
        assert g.contype[0] == 0 and g.conaffinity[0] == 0, "the 'mug' geom became collidable"
        return {}

    def objects(self, kin, c):
        return kin.pos("body:obj"), rewards.scipy_quat_from_matrix(kin.frames["geom:mug"].mat)

    def evaluate(self, obs, action, kin, c):
        obj, target = obs[OBS_OBJ1_POS], c["target_pos"]
        scale = jnp.array([2.0, 2.0, 1.0])  # emphasise x and y errors
        target_to_obj = jnp.linalg.norm((obj - target) * scale)
        target_to_obj_init = jnp.linalg.norm((c["obj_init_pos"] - target) * scale)
        in_place = rewards.tolerance(target_to_obj, bounds=(0, 0.05), margin=target_to_obj_init, sigmoid="long_tail")
        tcp_opened = obs[OBS_GRIPPER]
        tcp = tcp_center(kin)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], object_reach_radius=0.04, obj_radius=0.02,
            pad_success_thresh=0.05, xz_thresh=0.05, desired_gripper_effort=0.7, medium_density=True,
        )
        reward = rewards.hamacher_product(object_grasped, in_place)
        reward = jnp.where((tcp_to_obj < 0.04) & (tcp_opened > 0), reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(target_to_obj < 0.05, 10.0, reward)
        obj_to_target = jnp.linalg.norm(obj - target)  # official recomputes it without the scale
        # grasp_success: exactly 0, see constants().
        return reward, info(
            obj_to_target <= 0.07, tcp_to_obj <= 0.03, 0.0, object_grasped, in_place, obj_to_target, reward,
        )


class CoffeePull(_CoffeeMug):
    name = "coffee-pull"

    def constants_v1(self, env):
        return read_attrs(env, "maxPullDist")

    def reward_v1(self, obs, action, kin, c):
        obj, goal = obs[OBS_OBJ1_POS], c["target_pos"]
        reach_dist = jnp.linalg.norm(tcp_center(kin) - obj)
        pull_dist = jnp.linalg.norm(obj[:2] - goal[:2])
        # official reachDistxy is the norm of the point (obj x, obj y, init tcp z), not of a difference
        reach_xy = jnp.linalg.norm(jnp.concatenate([obj[:-1], c["init_tcp"][-1:]]))
        near = -reach_dist + 0.1 + jnp.where(reach_dist < 0.05, jnp.maximum(action[-1], 0.0) / 50, 0.0)
        reach = jnp.where(reach_xy < 0.05, near, -reach_xy)
        pull = jnp.where(reach_dist < 0.05, jnp.maximum(rewards.v1_progress(pull_dist, c["maxPullDist"]), 0.0), 0.0)
        return reach + pull


TASKS = (CoffeePull(),)
