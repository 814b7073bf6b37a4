"""disassemble-v3 (metaworld/envs/sawyer_disassemble_peg_v3.py): grasp the round nut by its handle, lift it off the peg."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.assembly import reward_quat, wrench_threshed
from envs.tasks.base import Task, info, tcp_center


def _reward_pos(wrench_center, target_pos):
    """SawyerNutDisassembleEnvV3._reward_pos: in_place only (no funnel, no success)."""
    pos_error = target_pos + jnp.array([0.0, 0.0, 0.1]) - wrench_center
    lifted = wrench_center[2] > 0.02
    return 0.1 * lifted + 0.9 * rewards.tolerance(
        jnp.linalg.norm(pos_error), bounds=(0, 0.02), margin=0.2, sigmoid="long_tail"
    )


class Disassemble(Task):
    name = "disassemble"
    frames = ("site:RoundNut-8", "body:RoundNut", "site:RoundNut")

    def objects(self, kin, c):
        return kin.pos("site:RoundNut-8"), kin.frames["body:RoundNut"].quat

    def evaluate(self, obs, action, kin, c):
        r_quat = reward_quat(obs)
        reward_grab = rewards.gripper_caging_reward(
            action, wrench_threshed(obs), left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"),
            tcp=tcp_center(kin), obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], object_reach_radius=0.01,
            obj_radius=0.015, pad_success_thresh=0.02, xz_thresh=0.01, high_density=True,
        )
        in_place = _reward_pos(kin.pos("site:RoundNut"), c["target_pos"])
        reward = (2.0 * reward_grab + 6.0 * in_place) * r_quat
        success = obs[6] > c["target_pos"][2]  # the handle's z (obs, not the nut centre) above the goal height
        reward = jnp.where(success, 10.0, reward)
        # Official info: near_object is reward_quat, obj_to_target is a literal 0.
        return reward, info(success, r_quat, reward_grab >= 0.5, reward_grab, in_place, 0.0, reward)


TASKS = (Disassemble(),)
