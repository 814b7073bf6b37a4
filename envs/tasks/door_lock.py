"""door-lock-v3 and door-unlock-v3 (metaworld/envs/sawyer_door_lock_v3.py, sawyer_door_unlock_v3.py).

Both use sawyer_door_lock.xml: the 'door' fixture (moved at reset) holds door_link, whose child
lock_link turns on a hinge (qpos[9]). The obs object is a site on the lock with door_link's xquat.
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import ReachThenMoveV1, Task, info, tcp_center
from envs.types import OBS_GRIPPER, OBS_HAND, OBS_OBJ1_POS

LOCK_LENGTH = 0.1  # self._lock_length


class _DoorLockBase(ReachThenMoveV1, Task):
    def objects(self, kin, c):
        return kin.pos(self.frames[0]), kin.frames["body:door_link"].quat



class DoorLock(_DoorLockBase):
    name = "door-lock"
    frames = ("site:lockStartLock", "body:door_link")

    def evaluate(self, obs, action, kin, c):
        obj = obs[OBS_OBJ1_POS]
        tcp = kin.pos("body:leftpad")  # official reads get_body_com("leftpad"), not tcp_center
        scale = jnp.array([0.25, 1.0, 0.5])
        tcp_to_obj = jnp.linalg.norm((obj - tcp) * scale)
        # self.init_left_pad is a live view into data.xpos (get_body_com in __init__), i.e. the CURRENT left pad,
        # so tcp_to_obj_init equals tcp_to_obj at every step.
        tcp_to_obj_init = jnp.linalg.norm((obj - kin.pos("body:leftpad")) * scale)
        obj_to_target = jnp.abs(c["target_pos"][2] - obj[2])
        tcp_opened = jnp.maximum(obs[OBS_GRIPPER], 0.0)
        near_lock = rewards.tolerance(tcp_to_obj, bounds=(0, 0.01), margin=tcp_to_obj_init, sigmoid="long_tail")
        lock_pressed = rewards.tolerance(obj_to_target, bounds=(0, 0.005), margin=LOCK_LENGTH, sigmoid="long_tail")
        reward = 2 * rewards.hamacher_product(tcp_opened, near_lock) + 8 * lock_pressed
        return reward, info(
            obj_to_target <= 0.02, tcp_to_obj <= 0.05, obs[OBS_GRIPPER] > 0, near_lock, lock_pressed, obj_to_target, reward,
        )


class DoorUnlock(_DoorLockBase):
    name = "door-unlock"
    frames = ("site:lockStartUnlock", "body:door_link", "body:lock_link")

    def evaluate(self, obs, action, kin, c):
        gripper, lock = obs[OBS_HAND], obs[OBS_OBJ1_POS]
        offset = jnp.array([0.0, 0.055, 0.07])
        scale = jnp.array([0.25, 1.0, 0.5])
        shoulder_to_lock = (gripper + offset - lock) * scale
        # self.obj_init_pos = data.body("lock_link").xpos is a live view: the CURRENT lock_link position.
        shoulder_to_lock_init = (c["init_tcp"] + offset - kin.pos("body:lock_link")) * scale
        ready_to_push = rewards.tolerance(
            jnp.linalg.norm(shoulder_to_lock), bounds=(0, 0.02), margin=jnp.linalg.norm(shoulder_to_lock_init),
            sigmoid="long_tail",
        )
        obj_to_target = jnp.abs(c["target_pos"][0] - lock[0])
        pushed = rewards.tolerance(obj_to_target, bounds=(0, 0.005), margin=LOCK_LENGTH, sigmoid="long_tail")
        reward = 2 * ready_to_push + 8 * pushed
        return reward, info(
            obj_to_target <= 0.02, jnp.linalg.norm(shoulder_to_lock) <= 0.05, obs[OBS_GRIPPER] > 0, ready_to_push, pushed,
            obj_to_target, reward,
        )


TASKS = (DoorLock(), DoorUnlock())
