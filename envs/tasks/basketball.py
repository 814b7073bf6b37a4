"""basketball-v3 (metaworld/envs/sawyer_basketball_v3.py): pick up the ball and drop it through the hoop."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.tasks.pick_place import v1_pick_place_reward
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

TARGET_RADIUS = 0.08


class Basketball(Task):
    name = "basketball"
    frames = ("body:bsktball",)

    def constants(self, env):
        # Official _target_pos is data.site("goal").xpos: a live VIEW into data.site_xpos. The site sits at the
        # origin of 'hooplink' (site_sameframe), so its xpos is the hoop position, fixed during the episode; but
        # common_constants keeps the view itself (np.asarray does not copy), so every reset-table row would end
        # up holding the last goal's hoop. Copies here override the common 'goal' / 'target_pos'.
        target = np.array(env._target_pos, np.float64, copy=True)
        return {"goal": target, "target_pos": target.copy()}

    def objects(self, kin, c):
        f = kin.frames["body:bsktball"]
        return f.pos, f.quat  # get_body_com("bsktball"), data.body("bsktball").xquat (MuJoCo w, x, y, z)

    def evaluate(self, obs, action, kin, c):
        obj, init = obs[OBS_OBJ1_POS], c["obj_init_pos"]
        target = c["target_pos"].at[2].set(0.3)  # force target to be slightly above the hoop
        scale = jnp.array([1.0, 1.0, 2.0])
        target_to_obj = jnp.linalg.norm((obj - target) * scale)
        target_to_obj_init = jnp.linalg.norm((init - target) * scale)
        in_place = rewards.tolerance(target_to_obj, bounds=(0, TARGET_RADIUS), margin=target_to_obj_init, sigmoid="long_tail")
        tcp_opened = obs[OBS_GRIPPER]
        tcp = tcp_center(kin)
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=init, init_tcp=c["init_tcp"], object_reach_radius=0.01, obj_radius=0.025,
            pad_success_thresh=0.06, xz_thresh=0.005, high_density=True,
        )
        lifted = (tcp_to_obj < 0.035) & (tcp_opened > 0) & (obj[2] - 0.01 > init[2])
        object_grasped = jnp.where(lifted, 1.0, object_grasped)
        reward = rewards.hamacher_product(object_grasped, in_place)
        reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(target_to_obj < TARGET_RADIUS, 10.0, reward)
        grasp = (tcp_opened > 0) & (obj[2] - 0.03 > init[2])  # official, no contact term
        return reward, info(
            (target_to_obj <= TARGET_RADIUS).astype(jnp.float32), (tcp_to_obj <= 0.05).astype(jnp.float32), grasp,
            object_grasped, in_place, target_to_obj, reward,
        )

    def constants_v1(self, env):
        return read_attrs(env, "heightTarget", "objHeight", "maxPlacingDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1: pick-place's, line for line."""
        return v1_pick_place_reward(obs, action, kin, c)


TASKS = (Basketball(),)
