"""dial-turn-v3 (metaworld/envs/sawyer_dial_turn_v3.py): turn the dial until its rim marker reaches the goal."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_OBJ1_POS

KNOB_QPOS = 9  # qpos address of 'knob_Joint_1' (checked against the official env in constants())
TARGET_RADIUS = 0.07  # the dial class overrides SawyerXYZEnv.TARGET_RADIUS = 0.05
DIAL_RADIUS = 0.05
PUSH_OFFSET = np.array([0.05, 0.02, 0.09])


def _dial_marker(kin):
    """Official _get_pos_objects: the point on the dial rim at the knob angle."""
    angle = kin.qpos[KNOB_QPOS]
    return kin.pos("body:dial") + DIAL_RADIUS * jnp.stack([jnp.sin(angle), -jnp.cos(angle), 0.0])


class DialTurn(Task):
    name = "dial-turn"
    frames = ("body:dial",)

    def constants(self, env):
        assert env.model.joint("knob_Joint_1").qposadr[0] == KNOB_QPOS
        assert env.TARGET_RADIUS == TARGET_RADIUS, env.TARGET_RADIUS
        # Set in reset_model from the dial position at that time; fixed for the episode.
        return {"dial_push_position": np.asarray(env.dial_push_position, np.float64)}

    def objects(self, kin, c):
        return _dial_marker(kin), kin.frames["body:dial"].quat

    def evaluate(self, obs, action, kin, c):
        # Official compute_reward recomputes the object position from the simulation (not the obs).
        obj = _dial_marker(kin)
        dial_push_position = obj + PUSH_OFFSET
        tcp = tcp_center(kin)
        target = c["target_pos"]
        target_to_obj = jnp.linalg.norm(obj - target)
        target_to_obj_init = jnp.linalg.norm(c["dial_push_position"] - target)
        in_place = rewards.tolerance(
            target_to_obj, bounds=(0, TARGET_RADIUS), margin=jnp.abs(target_to_obj_init - TARGET_RADIUS),
            sigmoid="long_tail",
        )
        dial_reach_radius = 0.005
        tcp_to_obj = jnp.linalg.norm(dial_push_position - tcp)
        tcp_to_obj_init = jnp.linalg.norm(c["dial_push_position"] - c["init_tcp"])
        reach = rewards.tolerance(
            tcp_to_obj, bounds=(0, dial_reach_radius), margin=jnp.abs(tcp_to_obj_init - dial_reach_radius),
            sigmoid="gaussian",
        )
        gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), 1.0)
        reach = rewards.hamacher_product(reach, gripper_closed)
        reward = 10 * rewards.hamacher_product(reach, in_place)
        return reward, info(target_to_obj <= TARGET_RADIUS, tcp_to_obj <= 0.01, 1.0, reach, in_place, target_to_obj, reward)


    def constants_v1(self, env):
        return read_attrs(env, "maxPullDist")

    def reward_v1(self, obs, action, kin, c):
        """Reach the dial, then turn it to the goal in y; this branch's exponential widths are 0.001 and 0.0001."""
        obj = obs[OBS_OBJ1_POS]
        return rewards.v1_reach_then_progress(
            jnp.linalg.norm(obj - tcp_center(kin)), jnp.abs(obj[1] - c["target_pos"][1]), c["maxPullDist"],
            c2=0.001, c3=0.0001,
        )


TASKS = (DialTurn(),)
