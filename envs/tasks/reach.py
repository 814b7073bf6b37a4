"""reach-v3 (metaworld/envs/sawyer_reach_v3.py): move the TCP to the goal; the puck is ignored."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center


class Reach(Task):
    name = "reach"
    frames = ("body:obj", "geom:objGeom")

    def objects(self, kin, c):
        return kin.pos("body:obj"), rewards.scipy_quat_from_matrix(kin.frames["geom:objGeom"].mat)

    def evaluate(self, obs, action, kin, c):
        tcp_to_target = jnp.linalg.norm(tcp_center(kin) - c["target_pos"])
        in_place_margin = jnp.linalg.norm(c["hand_init_pos"] - c["target_pos"])
        in_place = rewards.tolerance(tcp_to_target, bounds=(0, 0.05), margin=in_place_margin, sigmoid="long_tail")
        reward = 10 * in_place
        success = (tcp_to_target <= 0.05).astype(jnp.float32)
        return reward, info(success, tcp_to_target, 1.0, tcp_to_target, in_place, tcp_to_target, reward)

    def constants_v1(self, env):
        return read_attrs(env, "maxReachDist")

    def reward_v1(self, obs, action, kin, c):
        reach_dist = jnp.linalg.norm(tcp_center(kin) - c["target_pos"])
        return jnp.maximum(rewards.v1_progress(reach_dist, c["maxReachDist"]), 0.0)
TASKS = (Reach(),)
