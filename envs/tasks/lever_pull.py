"""lever-pull-v3 (metaworld/envs/sawyer_lever_pull_v3.py): lift the lever (hinge LeverAxis) to point straight up."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import ReachThenMoveV1, Task, info
from envs.types import OBS_HAND, OBS_OBJ1_POS

LEVER_QPOS = 9  # qpos address of 'LeverAxis' (checked against the official env in constants())


class LeverPull(ReachThenMoveV1, Task):
    name = "lever-pull"
    frames = ("site:leverStart", "geom:objGeom")

    def constants(self, env):
        assert env.model.jnt_qposadr[env.model.joint("LeverAxis").id] == LEVER_QPOS
        # Set in reset_model: obj_init_pos + [0.12, -LEVER_RADIUS, 0.25].
        return {"lever_pos_init": np.asarray(env._lever_pos_init, np.float64)}

    def objects(self, kin, c):
        return kin.pos("site:leverStart"), rewards.scipy_quat_from_matrix(kin.frames["geom:objGeom"].mat)

    def evaluate(self, obs, action, kin, c):
        gripper, lever = obs[OBS_HAND], obs[OBS_OBJ1_POS]  # gripper is the (clipped) hand body position, not the tcp
        scale = jnp.array([4.0, 1.0, 4.0])
        offset = jnp.array([0.0, 0.055, 0.07])
        shoulder_to_lever = (gripper + offset - lever) * scale
        shoulder_to_lever_init = (c["init_tcp"] + offset - c["lever_pos_init"]) * scale
        ready_to_lift = rewards.tolerance(
            jnp.linalg.norm(shoulder_to_lever), bounds=(0, 0.02), margin=jnp.linalg.norm(shoulder_to_lever_init),
            sigmoid="long_tail",
        )
        lever_angle = -kin.qpos[LEVER_QPOS]
        lever_error = jnp.abs(lever_angle - np.pi / 2.0)
        lever_engagement = rewards.tolerance(
            lever_error, bounds=(0, np.pi / 48.0), margin=(np.pi / 2.0) - (np.pi / 12.0), sigmoid="long_tail"
        )
        target = c["target_pos"]
        obj_to_target = jnp.linalg.norm(lever - target)
        in_place_margin = jnp.linalg.norm(c["lever_pos_init"] - target)
        in_place = rewards.tolerance(obj_to_target, bounds=(0, 0.04), margin=in_place_margin, sigmoid="long_tail")
        reward = 10.0 * rewards.hamacher_product(ready_to_lift, in_place)
        shoulder_dist = jnp.linalg.norm(shoulder_to_lever)
        # Official info quirks kept: obj_to_target reports the shoulder-to-lever distance, in_place_reward the
        # (reward-unused) lever_engagement, grasp_success is ready_to_lift > 0.9 (no pad-contact test).
        return reward, info(
            (lever_error <= np.pi / 24).astype(jnp.float32), (shoulder_dist < 0.03).astype(jnp.float32),
            (ready_to_lift > 0.9).astype(jnp.float32), ready_to_lift, lever_engagement, shoulder_dist, reward,
        )



TASKS = (LeverPull(),)
