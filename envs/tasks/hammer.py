"""hammer-v3 (metaworld/envs/sawyer_hammer_v3.py): pick up the hammer and drive the nail into the block."""

from __future__ import annotations

import jax.numpy as jnp

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_HAND, OBS_OBJ1_POS, OBS_OBJ1_QUAT

HAMMER_HANDLE_LENGTH = 0.14
NAIL_QPOS = 16  # qpos address of 'NailSlideJoint' (checked against the official env in constants())


def _reward_pos(hammer_head, target_pos):
    """SawyerHammerEnvV3._reward_pos."""
    pos_error = target_pos - hammer_head
    a, b = 0.1, 0.9  # trying to lift the hammer / hitting the nail
    lifted = hammer_head[2] > 0.02
    return a * lifted + b * rewards.tolerance(jnp.linalg.norm(pos_error), bounds=(0, 0.02), margin=0.2, sigmoid="long_tail")


class Hammer(Task):
    name = "hammer"
    frames = ("body:hammer", "body:nail_link")
    frames_v1 = ("geom:HammerHead", "site:nailHead")

    def constants(self, env):
        m = env.model
        assert m.jnt_qposadr[m.joint("NailSlideJoint").id] == NAIL_QPOS
        return {}

    def objects(self, kin, c):
        # get_body_com / data.body(...).xquat (MuJoCo w, x, y, z) of the hammer, then of the nail
        h, n = kin.frames["body:hammer"], kin.frames["body:nail_link"]
        return jnp.concatenate([h.pos, n.pos]), jnp.concatenate([h.quat, n.quat])

    def evaluate(self, obs, action, kin, c):
        hand, hammer = obs[OBS_HAND], obs[OBS_OBJ1_POS]
        hammer_head = hammer + jnp.array([0.16, 0.06, 0.0])
        # the caging reward sees the hammer's x snapped to the hand's while within half a handle length
        threshold = HAMMER_HANDLE_LENGTH / 2.0
        hammer_threshed = hammer.at[0].set(jnp.where(jnp.abs(hammer[0] - hand[0]) < threshold, hand[0], hammer[0]))
        ideal = jnp.array([1.0, 0.0, 0.0, 0.0])  # laid-down hammer
        reward_quat = jnp.maximum(1.0 - jnp.linalg.norm(obs[OBS_OBJ1_QUAT] - ideal) / 0.4, 0.0)
        reward_grab = rewards.gripper_caging_reward(
            action, hammer_threshed, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"),
            tcp=tcp_center(kin), obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], object_reach_radius=0.01,
            obj_radius=0.015, pad_success_thresh=0.02, xz_thresh=0.01, high_density=True,
        )
        reward_in_place = _reward_pos(hammer_head, c["target_pos"])
        reward = (2.0 * reward_grab + 6.0 * reward_in_place) * reward_quat
        # success reads the nail joint from data, not the obs
        success = kin.qpos[NAIL_QPOS] > 0.09
        reward = jnp.where(success & (reward > 5.0), 10.0, reward)
        # official info: near_object is reward_quat (compute_reward's 3rd return value)
        return reward, info(success, reward_quat, reward_grab >= 0.5, reward_grab, reward_in_place, 0.0, reward)


    def constants_v1(self, env):
        return read_attrs(env, "heightTarget", "hammerHeight", "maxHammerDist")

    def reward_v1(self, obs, action, kin, c):
        """Pick the hammer up, then bring its head to the nail and the nail to the goal in y."""
        hammer, finger, nail = obs[OBS_OBJ1_POS], tcp_center(kin), kin.pos("site:nailHead")
        height_target, hammer_height = c["heightTarget"], c["hammerHeight"]
        hammer_dist = jnp.linalg.norm(nail - kin.pos("geom:HammerHead"))
        screw_dist = jnp.abs(nail[1] - c["target_pos"][1])
        reach_dist = jnp.linalg.norm(hammer - finger)
        reach = jnp.where(reach_dist < 0.05, -reach_dist + jnp.maximum(action[-1], 0.0) / 50, -reach_dist)
        pick_completed = hammer[2] >= height_target - 0.01
        dropped = (hammer[2] < hammer_height + 0.005) & (hammer_dist > 0.02) & (reach_dist > 0.02)
        held = (reach_dist < 0.1) & (hammer[2] > hammer_height + 0.005)
        pick = jnp.where(pick_completed & ~dropped, 100 * height_target,
                         jnp.where(held, 100 * jnp.minimum(height_target, hammer[2]), 0.0))
        d = hammer_dist + screw_dist
        hammer_rew = 1000 * (c["maxHammerDist"] - hammer_dist - screw_dist) + 1000 * (
            jnp.exp(-(d**2) / 0.01) + jnp.exp(-(d**2) / 0.001)
        )
        cond = pick_completed & (reach_dist < 0.1) & ~dropped
        return reach + pick + jnp.where(cond, jnp.maximum(hammer_rew, 0.0), 0.0)


TASKS = (Hammer(),)
