"""box-close-v3 (metaworld/envs/sawyer_box_close_v3.py): grasp the lid and put it on the box."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs
from envs.tasks.pick_place import v1_pick_place_reward
from envs.types import OBS_HAND, OBS_OBJ1_POS, OBS_OBJ1_QUAT


def _reward_pos(obs, target_pos):
    """SawyerBoxCloseEnvV3._reward_pos: (ready_to_lift, lifted)."""
    hand = obs[OBS_HAND]
    lid = obs[OBS_OBJ1_POS] + jnp.array([0.0, 0.0, 0.02])
    threshold = 0.02
    # floor is a 3D funnel centered on the lid's handle (log argument guarded so the unused branch stays finite)
    radius = jnp.linalg.norm(hand[:2] - lid[:2])
    floor = jnp.where(radius <= threshold, 0.0, 0.04 * jnp.log(jnp.where(radius > threshold, radius - threshold, 1.0)) + 0.4)
    above_floor = jnp.where(
        hand[2] >= floor, 1.0,
        rewards.tolerance(floor - hand[2], bounds=(0.0, 0.01), margin=floor / 2.0, sigmoid="long_tail"),
    )
    in_place = rewards.tolerance(jnp.linalg.norm(hand - lid), bounds=(0, 0.02), margin=0.5, sigmoid="long_tail")
    ready_to_lift = rewards.hamacher_product(above_floor, in_place)
    pos_error = target_pos - lid
    error_scale = jnp.array([1.0, 1.0, 3.0])
    a, b = 0.2, 0.8
    lifted = a * (lid[2] > 0.04) + b * rewards.tolerance(
        jnp.linalg.norm(pos_error * error_scale), bounds=(0, 0.05), margin=0.25, sigmoid="long_tail"
    )
    return ready_to_lift, lifted


class BoxClose(Task):
    name = "box-close"
    frames = ("body:top_link",)

    def objects(self, kin, c):
        f = kin.frames["body:top_link"]
        return f.pos, f.quat  # get_body_com("top_link"), data.body("top_link").xquat (MuJoCo w, x, y, z)

    def evaluate(self, obs, action, kin, c):
        target = c["target_pos"]
        reward_grab = jnp.clip((jnp.clip(action[3], -1, 1) + 1.0) / 2.0, 0.0, 1.0)
        ideal = jnp.array([0.707, 0, 0, 0.707])  # upright lid
        reward_quat = jnp.maximum(1.0 - jnp.linalg.norm(obs[OBS_OBJ1_QUAT] - ideal) / 0.2, 0.0)
        ready_to_lift, lifted = _reward_pos(obs, target)
        reward = 2.0 * rewards.hamacher_product(reward_grab, ready_to_lift) + 8.0 * lifted
        success = jnp.linalg.norm(obs[OBS_OBJ1_POS] - target) < 0.08
        reward = jnp.where(success, 10.0, reward)
        reward = reward * reward_quat
        return reward, info(success, ready_to_lift, reward_grab >= 0.5, reward_grab, lifted, 0.0, reward)

    def constants_v1(self, env):
        return read_attrs(env, "heightTarget", "objHeight", "maxPlacingDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1: pick-place's, line for line."""
        return v1_pick_place_reward(obs, action, kin, c)


TASKS = (BoxClose(),)
