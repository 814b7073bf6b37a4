"""disassemble-v3 (metaworld/envs/sawyer_disassemble_peg_v3.py): grasp the round nut by its handle, lift it off the peg."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.assembly import RoundNutTask
from envs.types import OBS_OBJ1_POS


def _reward_pos(wrench_center, target_pos):
    """SawyerNutDisassembleEnvV3._reward_pos: in_place only (no funnel, no success)."""
    pos_error = target_pos + jnp.array([0.0, 0.0, 0.1]) - wrench_center
    lifted = wrench_center[2] > 0.02
    return 0.1 * lifted + 0.9 * rewards.tolerance(
        jnp.linalg.norm(pos_error), bounds=(0, 0.02), margin=0.2, sigmoid="long_tail"
    )


class Disassemble(RoundNutTask):
    name = "disassemble"
    high_density = True

    def _in_place_and_success(self, obs, kin, c):
        in_place = _reward_pos(kin.pos("site:RoundNut"), c["target_pos"])
        success = obs[OBS_OBJ1_POS][2] > c["target_pos"][2]  # the handle's z (obs, not the nut centre) above the goal height
        return in_place, success


TASKS = (Disassemble(),)
