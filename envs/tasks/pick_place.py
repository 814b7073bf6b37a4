"""pick-place-v3 (metaworld/envs/sawyer_pick_place_v3.py): pick up the puck and place it at the goal in the air."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

TARGET_RADIUS = 0.05


def _gripper_caging_reward(action, obj_pos, kin, c):
    """SawyerPickPlaceEnvV3._gripper_caging_reward (its own variant, always high density)."""
    caging, _ = rewards.pad_caging(
        obj_pos, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp_center(kin),
        obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], obj_radius=0.015, x_z_success_margin=0.005,
        pad_success_margin=0.05,
    )
    gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), 1.0)
    gripping = jnp.where(caging > 0.97, gripper_closed, 0.0)
    caging_and_gripping = rewards.hamacher_product(caging, gripping)
    return (caging_and_gripping + caging) / 2


class PickPlace(Task):
    """pick-place's obs and V2 reward; shelf-place's are the same up to the grasp term, the lift radius and the
    in_place reduction (``object_grasped``, ``lift_radius``, ``reduce_in_place``)."""

    name = "pick-place"
    frames = ("body:obj", "geom:objGeom")
    lift_radius = 0.02  # tcp_to_obj below which the lift bonus counts

    def objects(self, kin, c):
        return kin.pos("body:obj"), rewards.scipy_quat_from_matrix(kin.frames["geom:objGeom"].mat)

    def object_grasped(self, action, obj, kin, c):
        return _gripper_caging_reward(action, obj, kin, c)

    def reduce_in_place(self, in_place, obj, target):
        """in_place as the lift bonus and the info see it (after the reward's hamacher term)."""
        return in_place

    def evaluate(self, obs, action, kin, c):
        tcp, obj, tcp_opened, target = tcp_center(kin), obs[OBS_OBJ1_POS], obs[OBS_GRIPPER], c["target_pos"]
        in_place, obj_to_target = rewards.target_in_place(obj, c["obj_init_pos"], target, TARGET_RADIUS)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        object_grasped = self.object_grasped(action, obj, kin, c)
        reward = rewards.hamacher_product(object_grasped, in_place)
        in_place = self.reduce_in_place(in_place, obj, target)
        lifted = (tcp_to_obj < self.lift_radius) & (tcp_opened > 0) & (obj[2] - 0.01 > c["obj_init_pos"][2])
        reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        # Official grasp_success also needs touching_main_object (pad contact forces), which the Kinematics do not
        # carry; tcp_to_obj < 0.02 stands in for it. Info only: reward and success do not use it.
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.02 > c["obj_init_pos"][2])
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place, obj_to_target, reward,
        )

    def constants_v1(self, env):
        return read_attrs(env, "heightTarget", "objHeight", "maxPlacingDist")

    def reward_v1(self, obs, action, kin, c):
        return v1_pick_place_reward(obs, action, kin, c)


def v1_pick_place_reward(obs, action, kin, c):
    """pick-place's V1 reward (box-close's and basketball's too, line for line)."""
    obj, finger = obs[OBS_OBJ1_POS], tcp_center(kin)
    reach = rewards.v1_reach(obj, finger, c["init_tcp"][-1], action, xy_radius=0.05, z_scale=2.0, grip_radius=0.05)
    return rewards.v1_pick_place(reach, jnp.linalg.norm(obj - finger), obj[2], jnp.linalg.norm(obj - c["target_pos"]),
                                 c["heightTarget"], c["objHeight"], c["maxPlacingDist"])


TASKS = (PickPlace(),)
