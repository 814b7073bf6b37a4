"""plate-slide-v3, plate-slide-side-v3, plate-slide-back-v3, plate-slide-back-side-v3
(metaworld/envs/sawyer_plate_slide{,_side,_back,_back_side}_v3.py): slide the plate (puck on two slide joints) into /
out of the goal cabinet.

Reset mechanics are tabulated (not reimplemented); what the rewards read from ``self.`` comes from the common
constants: ``obj_init_pos`` (= rand_vec[:3], NOT the plate's actual start for -back/-back-side, which the official
margins use as is), ``init_tcp`` and ``_target_pos``. ``maxDist`` is only read by the V1 reward (the same in all four).
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_OBJ1_POS

TARGET_RADIUS = 0.05


class _PlateSlide(Task):
    frames = ("geom:puck",)

    def objects(self, kin, c):
        f = kin.frames["geom:puck"]
        return f.pos, rewards.scipy_quat_from_matrix(f.mat)

    def _terms(self, obs, kin, c, margin_offset):
        tcp, obj, target = tcp_center(kin), obs[OBS_OBJ1_POS], c["target_pos"]
        obj_to_target = jnp.linalg.norm(obj - target)
        in_place_margin = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(
            obj_to_target, bounds=(0, TARGET_RADIUS), margin=in_place_margin - margin_offset, sigmoid="long_tail"
        )
        tcp_to_obj = jnp.linalg.norm(tcp - obj)
        obj_grasped_margin = jnp.linalg.norm(c["init_tcp"] - c["obj_init_pos"])
        object_grasped = rewards.tolerance(
            tcp_to_obj, bounds=(0, TARGET_RADIUS), margin=obj_grasped_margin - margin_offset, sigmoid="long_tail"
        )
        return tcp, tcp_to_obj, obj_to_target, object_grasped, in_place

    def constants_v1(self, env):
        return read_attrs(env, "maxDist")

    def reward_v1(self, obs, action, kin, c):
        """All four V1 branches: reach the plate, then slide it to the goal in xy (pullDist)."""
        obj, goal = obs[OBS_OBJ1_POS], c["target_pos"]
        reach_dist = jnp.linalg.norm(obj - tcp_center(kin))
        return rewards.v1_reach_then_progress(reach_dist, jnp.linalg.norm(obj[:2] - goal[:2]), c["maxDist"])

    @staticmethod
    def _info(reward, tcp_to_obj, obj_to_target, object_grasped, in_place):
        # Official grasp_success is the literal 0.0 in all four plate-slide envs (no pad-contact test).
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), 0.0,
            object_grasped, in_place, obj_to_target, reward,
        )


class PlateSlide(_PlateSlide):
    name = "plate-slide"

    def evaluate(self, obs, action, kin, c):
        _, tcp_to_obj, obj_to_target, object_grasped, in_place = self._terms(obs, kin, c, 0.0)
        reward = 8 * rewards.hamacher_product(object_grasped, in_place)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        return self._info(reward, tcp_to_obj, obj_to_target, object_grasped, in_place)


class _PlateSlideVariant(_PlateSlide):
    """side / back / back-side: margins less TARGET_RADIUS, 1.5 * reach, then 2 + 7 * in_place once the tcp is low and near."""

    def evaluate(self, obs, action, kin, c):
        tcp, tcp_to_obj, obj_to_target, object_grasped, in_place = self._terms(obs, kin, c, TARGET_RADIUS)
        reward = 1.5 * object_grasped
        reward = jnp.where((tcp[2] <= 0.03) & (tcp_to_obj < 0.07), 2.0 + 7.0 * in_place, reward)
        reward = jnp.where(obj_to_target < TARGET_RADIUS, 10.0, reward)
        return self._info(reward, tcp_to_obj, obj_to_target, object_grasped, in_place)


class PlateSlideSide(_PlateSlideVariant):
    name = "plate-slide-side"


class PlateSlideBack(_PlateSlideVariant):
    name = "plate-slide-back"


class PlateSlideBackSide(_PlateSlideVariant):
    name = "plate-slide-back-side"


TASKS = (PlateSlide(), PlateSlideSide(), PlateSlideBack(), PlateSlideBackSide())
