"""window-open-v3 and window-close-v3 (metaworld/envs/sawyer_window_{open,close}_v3.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_OBJ1_POS

TARGET_RADIUS = 0.05
HANDLE_RADIUS = 0.02


class _Window(Task):
    reach_sigmoid = ""

    def constants(self, env):
        return {"window_handle_pos_init": np.asarray(env.window_handle_pos_init, np.float64)}

    def objects(self, kin, c):
        return kin.pos(self.frames[0]), jnp.zeros(4)

    def _obj_init_x(self, c):
        raise NotImplementedError

    def evaluate(self, obs, action, kin, c):
        obj, target = kin.pos(self.frames[0]), c["target_pos"]
        target_to_obj = jnp.abs(obj[0] - target[0])
        target_to_obj_init = jnp.abs(self._obj_init_x(c) - target[0])
        in_place = rewards.tolerance(
            target_to_obj, bounds=(0, TARGET_RADIUS), margin=jnp.abs(target_to_obj_init - TARGET_RADIUS), sigmoid="long_tail"
        )
        tcp_to_obj = jnp.linalg.norm(obj - tcp_center(kin))
        tcp_to_obj_init = jnp.linalg.norm(c["window_handle_pos_init"] - c["init_tcp"])
        reach = rewards.tolerance(
            tcp_to_obj, bounds=(0, HANDLE_RADIUS), margin=jnp.abs(tcp_to_obj_init - HANDLE_RADIUS), sigmoid=self.reach_sigmoid
        )
        reward = 10 * rewards.hamacher_product(reach, in_place)
        return reward, info(target_to_obj <= TARGET_RADIUS, tcp_to_obj <= 0.05, 1.0, reach, in_place, target_to_obj, reward)

    def constants_v1(self, env):
        return read_attrs(env, "maxPullDist")

    def reward_v1(self, obs, action, kin, c):
        """The same V1 reward for window-open and window-close; the pull term is not floored at 0 (official)."""
        obj = obs[OBS_OBJ1_POS]
        pull_dist = jnp.abs(obj[0] - c["target_pos"][0])
        reach_dist = jnp.linalg.norm(obj - tcp_center(kin))
        return -reach_dist + jnp.where(reach_dist < 0.05, rewards.v1_progress(pull_dist, c["maxPullDist"]), 0.0)


class WindowOpen(_Window):
    name = "window-open"
    frames = ("site:handleOpenStart",)
    reach_sigmoid = "long_tail"

    def _obj_init_x(self, c):
        return c["obj_init_pos"][0]


class WindowClose(_Window):
    name = "window-close"
    frames = ("site:handleCloseStart",)
    reach_sigmoid = "gaussian"

    def _obj_init_x(self, c):
        return c["window_handle_pos_init"][0]
TASKS = (WindowOpen(), WindowClose())
