"""assembly-v3 (metaworld/envs/sawyer_assembly_peg_v3.py): grasp the round nut by its handle, drop it over the peg.

Also holds ``RoundNutTask``, the obs and reward skeleton that assembly and disassemble share (they differ in the
caging density, ``_reward_pos`` and success).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_HAND, OBS_OBJ1_POS, OBS_OBJ1_QUAT

WRENCH_HANDLE_LENGTH = 0.02
IDEAL_QUAT = np.array([0.707, 0.0, 0.0, 0.707], np.float32)  # numpy: importing a task starts no JAX backend


def reward_quat(obs):
    """_reward_quat: 1 - ||nut quat - [.707, 0, 0, .707]|| / 0.4, floored at 0 (obs quat is MuJoCo w, x, y, z)."""
    return jnp.maximum(1.0 - jnp.linalg.norm(obs[OBS_OBJ1_QUAT] - IDEAL_QUAT) / 0.4, 0.0)


def wrench_threshed(obs):
    """The handle position with x snapped to the hand's x while within half a handle length of it."""
    hand, wrench = obs[OBS_HAND], obs[OBS_OBJ1_POS]
    snap = jnp.abs(wrench[0] - hand[0]) < WRENCH_HANDLE_LENGTH / 2.0
    return wrench.at[0].set(jnp.where(snap, hand[0], wrench[0]))


def _reward_pos(wrench_center, target_pos):
    """SawyerNutAssemblyEnvV3._reward_pos: (in_place, success)."""
    pos_error = target_pos - wrench_center
    radius = jnp.linalg.norm(pos_error[:2])
    aligned = radius < 0.02
    hooked = pos_error[2] > 0.0
    success = aligned & hooked
    threshold = jnp.where(success, 0.02, 0.01)
    # log argument guarded so the unused branch stays finite
    target_height = jnp.where(
        radius > threshold, 0.02 * jnp.log(jnp.where(radius > threshold, radius - threshold, 1.0)) + 0.2, 0.0
    )
    pos_error = pos_error.at[2].set(target_height - wrench_center[2])
    scale = jnp.array([1.0, 1.0, 3.0])
    lifted = (wrench_center[2] > 0.02) | (radius < threshold)
    in_place = 0.1 * lifted + 0.9 * rewards.tolerance(
        jnp.linalg.norm(pos_error * scale), bounds=(0, 0.02), margin=0.4, sigmoid="long_tail"
    )
    return in_place, success


class RoundNutTask(Task):
    """The nut tasks' obs and V2 reward: (2 grab + 6 in_place) * reward_quat, 10 on success.

    grab is the base caging reward at the threshed handle; a task sets its density and ``_in_place_and_success``.
    """

    frames = ("site:RoundNut-8", "body:RoundNut", "site:RoundNut")
    high_density = False
    medium_density = False

    def objects(self, kin, c):
        return kin.pos("site:RoundNut-8"), kin.frames["body:RoundNut"].quat

    def _in_place_and_success(self, obs, kin, c):
        """(in_place, success)."""
        raise NotImplementedError

    def evaluate(self, obs, action, kin, c):
        r_quat = reward_quat(obs)
        reward_grab = rewards.gripper_caging_reward(
            action, wrench_threshed(obs), left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"),
            tcp=tcp_center(kin), obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], object_reach_radius=0.01,
            obj_radius=0.015, pad_success_thresh=0.02, xz_thresh=0.01, high_density=self.high_density,
            medium_density=self.medium_density,
        )
        in_place, success = self._in_place_and_success(obs, kin, c)
        reward = (2.0 * reward_grab + 6.0 * in_place) * r_quat
        reward = jnp.where(success, 10.0, reward)
        # Official info: near_object is reward_quat, obj_to_target is a literal 0.
        return reward, info(success, r_quat, reward_grab >= 0.5, reward_grab, in_place, 0.0, reward)


class Assembly(RoundNutTask):
    name = "assembly"
    medium_density = True

    def _in_place_and_success(self, obs, kin, c):
        return _reward_pos(kin.pos("site:RoundNut"), c["target_pos"])


    def constants_v1(self, env):
        return read_attrs(env, "obj_height", "heightTarget", "maxPlacingDist")  # set by a V1 env's reset only

    def reward_v1(self, obs, action, kin, c):
        """Reach the handle, lift the nut (pick), bring it over the peg in xy (place), then down (placingDistFinal)."""
        grasp, obj, goal, finger = obs[OBS_OBJ1_POS], kin.pos("body:RoundNut"), c["target_pos"], tcp_center(kin)
        height_target, obj_height = c["heightTarget"], c["obj_height"]
        reach_dist = jnp.linalg.norm(grasp - finger)
        placing_dist = jnp.linalg.norm(obj[:2] - goal[:2])
        placing_final = jnp.abs(obj[2] - obj_height)
        reach = rewards.v1_reach(grasp, finger, c["init_tcp"][-1], action, xy_radius=0.04, z_scale=1.0, grip_radius=0.04)
        pick_completed = (obj[2] >= height_target - 0.01) & (reach_dist < 0.03)
        dropped = (obj[2] < obj_height + 0.005) & (placing_dist > 0.02) & (reach_dist > 0.02)
        place_completed = (jnp.abs(obj[0] - goal[0]) < 0.03) & (jnp.abs(obj[1] - goal[1]) < 0.03)
        held = (reach_dist < 0.04) & (obj[2] > obj_height + 0.005)
        pick = jnp.where(place_completed | (pick_completed & ~dropped), 100 * height_target,
                         jnp.where(held, 100 * jnp.minimum(height_target, obj[2]), 0.0))
        place = rewards.v1_progress(placing_dist, c["maxPlacingDist"])
        down = 2000 * (height_target - placing_final) + 2000 * (
            jnp.exp(-(placing_final**2) / 0.003) + jnp.exp(-(placing_final**2) / 0.0003)
        )
        place = jnp.maximum(place + jnp.where(place_completed, down, 0.0), 0.0)
        cond = place_completed | (pick_completed & (reach_dist < 0.04) & ~dropped)
        return reach + pick + jnp.where(cond, place, 0.0)


TASKS = (Assembly(),)
