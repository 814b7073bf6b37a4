"""faucet-open-v3 and faucet-close-v3 (metaworld/envs/sawyer_faucet_{open,close}_v3.py).

The faucetBase fixture is placed at the rand_vec (= obj_init_pos); the handle turns on knob_Joint_1.
The obs object is a handle-end site lowered by 1 cm, with faucetBase's xquat.
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import ReachThenMoveV1, Task, info, tcp_center
from envs.types import OBS_OBJ1_POS

TARGET_RADIUS = 0.07  # self._target_radius
FAUCET_REACH_RADIUS = 0.01


class _Faucet(ReachThenMoveV1, Task):
    obj_offset = (0.0, 0.0, 0.0)  # open shifts obs[OBS_OBJ1_POS] before the reward; close does not

    def objects(self, kin, c):
        return kin.pos(self.frames[0]) + jnp.array([0.0, 0.0, -0.01]), kin.frames["body:faucetBase"].quat


    def evaluate(self, obs, action, kin, c):
        obj = obs[OBS_OBJ1_POS] + jnp.array(self.obj_offset)
        tcp, target = tcp_center(kin), c["target_pos"]
        target_to_obj = jnp.linalg.norm(obj - target)
        target_to_obj_init = jnp.linalg.norm(c["obj_init_pos"] - target)
        in_place = rewards.tolerance(
            target_to_obj, bounds=(0, TARGET_RADIUS), margin=jnp.abs(target_to_obj_init - TARGET_RADIUS),
            sigmoid="long_tail",
        )
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(c["obj_init_pos"] - c["init_tcp"])
        reach = rewards.tolerance(
            tcp_to_obj, bounds=(0, FAUCET_REACH_RADIUS), margin=jnp.abs(tcp_to_obj_init - FAUCET_REACH_RADIUS),
            sigmoid="gaussian",
        )
        reward = (2 * reach + 3 * in_place) * 2
        reward = jnp.where(target_to_obj <= TARGET_RADIUS, 10.0, reward)
        return reward, info(
            target_to_obj <= TARGET_RADIUS, tcp_to_obj <= 0.01, 1.0, reach, in_place, target_to_obj, reward,
        )


class FaucetOpen(_Faucet):
    name = "faucet-open"
    frames = ("site:handleStartOpen", "body:faucetBase")
    obj_offset = (-0.04, 0.0, 0.03)


class FaucetClose(_Faucet):
    name = "faucet-close"
    frames = ("site:handleStartClose", "body:faucetBase")


TASKS = (FaucetOpen(), FaucetClose())
