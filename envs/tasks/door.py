"""door-open-v3 and door-close-v3 (metaworld/envs/sawyer_door_v3.py, sawyer_door_close_v3.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_HAND, OBS_OBJ1_POS

DOOR_QPOS = 9  # qpos address of 'doorjoint' (checked against the official env in constants())


class _Door(Task):
    frames = ("geom:handle",)

    def constants(self, env):
        assert env.door_qpos_adr == DOOR_QPOS, env.door_qpos_adr
        return {}

    def objects(self, kin, c):
        f = kin.frames["geom:handle"]
        return f.pos, rewards.scipy_quat_from_matrix(f.mat)

    def constants_v1(self, env):
        return read_attrs(env, "maxPullDist")

    def reward_v1(self, obs, action, kin, c):
        """The same V1 reward for door-open and door-close: reach the handle, then bring it to the goal in xy."""
        obj = obs[OBS_OBJ1_POS]
        pull_dist = jnp.linalg.norm(obj[:-1] - c["target_pos"][:-1])
        reach_dist = jnp.linalg.norm(obj - tcp_center(kin))
        pull = jnp.where(reach_dist < 0.05, jnp.maximum(rewards.v1_progress(pull_dist, c["maxPullDist"]), 0.0), 0.0)
        return -reach_dist + pull


class DoorOpen(_Door):
    name = "door-open"

    def evaluate(self, obs, action, kin, c):
        theta = kin.qpos[DOOR_QPOS]
        reward_grab = (jnp.clip(action[3], -1, 1) + 1.0) / 2.0

        # _reward_pos
        hand = obs[OBS_HAND]
        door = obs[OBS_OBJ1_POS] + jnp.array([-0.05, 0.0, 0.0])
        threshold = 0.12
        radius = jnp.linalg.norm(hand[:2] - door[:2])
        # log argument guarded so the unused branch stays finite
        floor = jnp.where(radius <= threshold, 0.0, 0.04 * jnp.log(jnp.where(radius > threshold, radius - threshold, 1.0)) + 0.4)
        above_floor = jnp.where(
            hand[2] >= floor, 1.0,
            rewards.tolerance(floor - hand[2], bounds=(0.0, 0.01), margin=floor / 2.0, sigmoid="long_tail"),
        )
        in_place = rewards.tolerance(
            jnp.linalg.norm(hand - door - jnp.array([0.05, 0.03, -0.01])),
            bounds=(0, threshold / 2.0), margin=0.5, sigmoid="long_tail",
        )
        ready_to_open = rewards.hamacher_product(above_floor, in_place)
        door_angle = -theta
        opened = 0.2 * (theta < -np.pi / 90.0) + 0.8 * rewards.tolerance(
            np.pi / 2.0 + np.pi / 6 - door_angle, bounds=(0, 0.5), margin=np.pi / 3.0, sigmoid="long_tail"
        )

        success = jnp.abs(obs[OBS_OBJ1_POS][0] - c["target_pos"][0]) <= 0.08
        reward = 2.0 * rewards.hamacher_product(ready_to_open, reward_grab) + 8.0 * opened
        reward = jnp.where(success, 10.0, reward)
        return reward, info(success, ready_to_open, reward_grab >= 0.5, reward_grab, opened, 0.0, reward)


class DoorClose(_Door):
    name = "door-close"

    def evaluate(self, obs, action, kin, c):
        radius = 0.05
        obj, target = obs[OBS_OBJ1_POS], c["target_pos"]
        tcp_to_target = jnp.linalg.norm(tcp_center(kin) - target)
        obj_to_target = jnp.linalg.norm(obj - target)
        in_place_margin = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(obj_to_target, bounds=(0, radius), margin=in_place_margin, sigmoid="gaussian")
        hand_margin = jnp.linalg.norm(c["hand_init_pos"] - obj) + 0.1
        hand_in_place = rewards.tolerance(tcp_to_target, bounds=(0, 0.25 * radius), margin=hand_margin, sigmoid="gaussian")
        reward = jnp.where(obj_to_target < radius, 10.0, 3 * hand_in_place + 6 * in_place)
        return reward, info(obj_to_target <= 0.08, 0.0, 1.0, 1.0, hand_in_place, obj_to_target, reward)
TASKS = (DoorOpen(), DoorClose())
