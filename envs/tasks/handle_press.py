"""handle-press-v3 and handle-press-side-v3 (metaworld/envs/sawyer_handle_press{,_side}_v3.py).

The 'box' fixture is placed at the rand_vec; the handle slides on qpos[9] (reset to -0.001). The
obs object is the handleStart site, no quaternion. Both rewards are the same code.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_OBJ1_POS

TARGET_RADIUS = 0.02  # the class attribute overrides SawyerXYZEnv.TARGET_RADIUS (0.05)
HANDLE_RADIUS = 0.02


class _HandlePress(Task):
    frames = ("site:handleStart",)

    def constants(self, env):
        return {"handle_init_pos": np.asarray(env._handle_init_pos, np.float64)}

    def objects(self, kin, c):
        return kin.pos("site:handleStart"), jnp.zeros(4)

    def constants_v1(self, env):
        return read_attrs(env, "maxDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1, the same for handle-press and -side: left end-effector site, press along z."""
        return rewards.v1_press(obs[OBS_OBJ1_POS], kin.pos("site:leftEndEffector"), c["target_pos"], 2, c["maxDist"])

    def evaluate(self, obs, action, kin, c):
        obj, tcp, target = kin.pos("site:handleStart"), tcp_center(kin), c["target_pos"]
        target_to_obj = jnp.abs(obj[2] - target[2])
        target_to_obj_init = jnp.abs(c["handle_init_pos"][2] - target[2])
        in_place = rewards.tolerance(
            target_to_obj, bounds=(0, TARGET_RADIUS), margin=jnp.abs(target_to_obj_init - TARGET_RADIUS),
            sigmoid="long_tail",
        )
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        tcp_to_obj_init = jnp.linalg.norm(c["handle_init_pos"] - c["init_tcp"])
        reach = rewards.tolerance(
            tcp_to_obj, bounds=(0, HANDLE_RADIUS), margin=jnp.abs(tcp_to_obj_init - HANDLE_RADIUS), sigmoid="long_tail"
        )
        success = target_to_obj <= TARGET_RADIUS
        reward = 10 * jnp.where(success, 1.0, rewards.hamacher_product(reach, in_place))
        return reward, info(success, tcp_to_obj <= 0.05, 1.0, reach, in_place, target_to_obj, reward)


class HandlePress(_HandlePress):
    name = "handle-press"


class HandlePressSide(_HandlePress):
    name = "handle-press-side"


TASKS = (HandlePress(), HandlePressSide())
