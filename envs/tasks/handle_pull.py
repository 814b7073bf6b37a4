"""handle-pull-v3 and handle-pull-side-v3 (metaworld/envs/sawyer_handle_pull{,_side}_v3.py).

The 'box' fixture is placed at the rand_vec; the handle slides on qpos[9] (reset to -0.1) and is
pulled up to the goalPull site. No quaternion in the obs. Both use the base gripper-caging reward,
and both keep SawyerXYZEnv.TARGET_RADIUS (0.05), unlike the press variants.
"""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

TARGET_RADIUS = 0.05  # SawyerXYZEnv.TARGET_RADIUS


class _HandlePull(Task):
    pad_success_thresh = 0.0
    obj_radius = 0.0
    success_radius = 0.0
    lift_axis = 2  # index of obj compared with obj_init_pos[2] in the reward's lift bonus

    def objects(self, kin, c):
        return kin.pos(self.frames[0]), jnp.zeros(4)

    def constants_v1(self, env):
        return read_attrs(env, "maxDist")

    def reward_v1(self, obs, action, kin, c):
        """Official V1, the same for handle-pull and -side: left end-effector site, pull along z."""
        return rewards.v1_press(obs[OBS_OBJ1_POS], kin.pos("site:leftEndEffector"), c["target_pos"], 2, c["maxDist"])

    def _target_to_obj(self, obj, c):
        raise NotImplementedError

    def evaluate(self, obs, action, kin, c):
        obj, tcp = obs[OBS_OBJ1_POS], tcp_center(kin)
        target_to_obj, target_to_obj_init = self._target_to_obj(obj, c)
        in_place = rewards.tolerance(
            target_to_obj, bounds=(0, TARGET_RADIUS), margin=target_to_obj_init, sigmoid="long_tail"
        )
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], pad_success_thresh=self.pad_success_thresh,
            obj_radius=self.obj_radius, object_reach_radius=0.01, xz_thresh=0.01, high_density=True,
        )
        reward = rewards.hamacher_product(object_grasped, in_place)
        tcp_opened = obs[OBS_GRIPPER]
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        lifted = (tcp_to_obj < 0.035) & (tcp_opened > 0) & (obj[self.lift_axis] - 0.01 > c["obj_init_pos"][2])
        reward = jnp.where(lifted, reward + 1.0 + 5.0 * in_place, reward)
        reward = jnp.where(target_to_obj < TARGET_RADIUS, 10.0, reward)
        # grasp_success here is official's own formula (no pad-contact test), so it is exact.
        grasp = (tcp_opened > 0) & (obj[2] - 0.03 > c["obj_init_pos"][2])
        return reward, info(
            target_to_obj <= self.success_radius, tcp_to_obj <= 0.05, grasp, object_grasped, in_place, target_to_obj,
            reward,
        )


class HandlePull(_HandlePull):
    name = "handle-pull"
    frames = ("site:handleRight",)
    pad_success_thresh = 0.05
    obj_radius = 0.022
    success_radius = TARGET_RADIUS
    lift_axis = 1  # official quirk: `obj[1] - 0.01 > self.obj_init_pos[2]` compares y with the box's z

    def _target_to_obj(self, obj, c):
        # obj_init_pos is the box (fixture) position, the rand_vec
        target = c["target_pos"]
        return jnp.abs(target[2] - obj[2]), jnp.abs(target[2] - c["obj_init_pos"][2])


class HandlePullSide(_HandlePull):
    name = "handle-pull-side"
    frames = ("site:handleCenter",)
    pad_success_thresh = 0.06
    obj_radius = 0.032
    success_radius = 0.08

    def _target_to_obj(self, obj, c):
        # obj_init_pos is reassigned at the end of reset_model to the handleCenter site position
        target = c["target_pos"]
        return jnp.linalg.norm(obj - target), jnp.linalg.norm(c["obj_init_pos"] - target)


TASKS = (HandlePull(), HandlePullSide())
