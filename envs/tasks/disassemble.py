"""disassemble-v3 (metaworld/envs/sawyer_disassemble_peg_v3.py): grasp the round nut by its handle, lift it off the peg."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.assembly import RoundNutTask
from envs.tasks.base import read_attrs, tcp_center
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


    def constants_v1(self, env):
        return {**read_attrs(env, "heightTarget", "objHeight", "maxPlacingDist"),
                "peg_pos": np.array(env.model.body("peg").pos, np.float64)}

    def reward_v1(self, obs, action, kin, c):
        """Lift the nut off the peg; once it is more than 5 cm off the peg in x or y, the pick term alone (100 heightTarget)."""
        obj, finger, nut, peg = obs[OBS_OBJ1_POS], tcp_center(kin), kin.pos("body:RoundNut"), c["peg_pos"]
        height_target, obj_height = c["heightTarget"], c["objHeight"]
        reach_dist = jnp.linalg.norm(obj - finger)
        placing_dist = jnp.linalg.norm(obj - c["target_pos"])
        reach = rewards.v1_reach(obj, finger, c["init_tcp"][-1], action, xy_radius=0.04, z_scale=2.0, grip_radius=0.04)
        pick_completed = (obj[2] >= height_target - 0.01) & (reach_dist < 0.04)
        dropped = (obj[2] < obj_height + 0.005) & (placing_dist > 0.02) & (reach_dist > 0.02)
        held = (reach_dist < 0.04) & (obj[2] > obj_height + 0.005)
        pick = jnp.where(pick_completed & ~dropped, 100 * height_target,
                         jnp.where(held, 100 * jnp.minimum(height_target, obj[2]), 0.0))
        place = jnp.maximum(rewards.v1_progress(placing_dist, c["maxPlacingDist"]), 0.0)
        place = jnp.where(pick_completed & (reach_dist < 0.03) & ~dropped, place, 0.0)
        off_peg = (jnp.abs(nut[0] - peg[0]) > 0.05) | (jnp.abs(nut[1] - peg[1]) > 0.05)
        return jnp.where(off_peg, 0.0, reach) + jnp.where(off_peg, 100 * height_target, pick) + place


TASKS = (Disassemble(),)
