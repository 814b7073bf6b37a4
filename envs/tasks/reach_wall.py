"""reach-wall-v3 (metaworld/envs/sawyer_reach_wall_v3.py): reach the goal behind the wall; the puck is ignored."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center

TARGET_RADIUS = 0.05


class ReachWall(Task):
    name = "reach-wall"
    frames = ("body:obj", "geom:objGeom")

    def objects(self, kin, c):
        return kin.pos("body:obj"), rewards.scipy_quat_from_matrix(kin.frames["geom:objGeom"].mat)

    def evaluate(self, obs, action, kin, c):
        target = c["target_pos"]
        tcp_to_target = jnp.linalg.norm(tcp_center(kin) - target)
        in_place_margin = jnp.linalg.norm(c["hand_init_pos"] - target)
        in_place = rewards.tolerance(tcp_to_target, bounds=(0, TARGET_RADIUS), margin=in_place_margin, sigmoid="long_tail")
        reward = 10 * in_place
        success = (tcp_to_target <= 0.05).astype(jnp.float32)
        # Unlike reach-v3, the official info reports near_object, grasp_success and grasp_reward as 0.
        return reward, info(success, 0.0, 0.0, 0.0, in_place, tcp_to_target, reward)

    def constants_v1(self, env):
        return read_attrs(env, "maxReachDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1: reach's (the wall is not in it)."""
        reach_dist = jnp.linalg.norm(tcp_center(kin) - c["target_pos"])
        return jnp.maximum(rewards.v1_progress(reach_dist, c["maxReachDist"]), 0.0)


TASKS = (ReachWall(),)
