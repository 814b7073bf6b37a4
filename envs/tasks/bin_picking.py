"""bin-picking-v3 (metaworld/envs/sawyer_bin_picking_v3.py): pick the cube out of one bin and drop it in the other."""

from __future__ import annotations

import jax.numpy as jnp
import mujoco
import numpy as np

from envs import rewards
from envs.control import MOCAP_QUAT
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_HAND, OBS_OBJ1_POS

TARGET_RADIUS = 0.05  # base class SawyerXYZEnv.TARGET_RADIUS


def _first_step_target_to_obj(env) -> float:
    """Official ``_target_to_obj_init``: set lazily to ``target_to_obj`` of the FIRST compute_reward of an episode.

    That is the cube after the first control step. The cube rests on the bin floor, out of the hand's reach, so
    that step does not depend on the action (checked: identical for any action, the cube moves ~1e-15 m); it is
    replayed here on a scratch copy of the post-reset state with a zero action.
    """
    m = env.model
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    buf = np.zeros(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, env.data, buf, spec)
    d = mujoco.MjData(m)
    mujoco.mj_setState(m, d, buf, spec)
    d.mocap_quat[0] = MOCAP_QUAT  # set_xyz_action(0): mocap_pos unchanged
    d.ctrl[:] = 0.0  # do_simulation([0, -0])
    mujoco.mj_step(m, d, nstep=env.frame_skip)
    mujoco.mj_forward(m, d)
    obj = np.array(d.body("obj").xpos, np.float64)  # obs[OBS_OBJ1_POS] (objects are not clipped)
    return float(np.linalg.norm(obj - np.asarray(env._target_pos)))


class BinPicking(Task):
    name = "bin-picking"
    frames = ("body:obj",)

    def constants(self, env):
        # _target_pos is get_body_com("bin_goal"), a live VIEW into data.xpos (a world-fixed body, so constant);
        # common_constants keeps the view itself, so copy it here (overrides the common 'goal' / 'target_pos').
        target = np.array(env._target_pos, np.float64, copy=True)
        return {"goal": target, "target_pos": target.copy(), "target_to_obj_init": np.asarray(_first_step_target_to_obj(env))}

    def objects(self, kin, c):
        f = kin.frames["body:obj"]
        return f.pos, f.quat  # get_body_com("obj"), data.body("obj").xquat (MuJoCo w, x, y, z)

    def evaluate(self, obs, action, kin, c):
        hand, obj, target, init = obs[OBS_HAND], obs[OBS_OBJ1_POS], c["target_pos"], c["obj_init_pos"]
        target_to_obj = jnp.linalg.norm(obj - target)
        in_place = rewards.tolerance(
            target_to_obj, bounds=(0, TARGET_RADIUS), margin=c["target_to_obj_init"], sigmoid="long_tail"
        )
        threshold = 0.03
        radii = jnp.stack([jnp.linalg.norm(hand[:2] - init[:2]), jnp.linalg.norm(hand[:2] - target[:2])])
        # floor is a pair of 3D funnels centered on the initial and the target positions (log guarded)
        floors = jnp.where(radii > threshold, 0.02 * jnp.log(jnp.where(radii > threshold, radii - threshold, 1.0)) + 0.2, 0.0)
        floor = jnp.min(floors)
        above_floor = jnp.where(
            hand[2] >= floor, 1.0,
            rewards.tolerance(jnp.maximum(floor - hand[2], 0.0), bounds=(0.0, 0.01), margin=0.05, sigmoid="long_tail"),
        )
        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"),
            tcp=tcp_center(kin),
            obj_init_pos=init, init_tcp=c["init_tcp"], obj_radius=0.015, pad_success_thresh=0.05,
            object_reach_radius=0.01, xz_thresh=0.01, desired_gripper_effort=0.7, high_density=True,
        )
        reward = rewards.hamacher_product(object_grasped, in_place)
        near_object = jnp.linalg.norm(obj - hand) < 0.04
        pinched_without_obj = obs[OBS_GRIPPER] < 0.43
        lifted = obj[2] - 0.02 > init[2]
        grasp_success = near_object & lifted & ~pinched_without_obj  # official, no contact term
        reward = jnp.where(grasp_success, reward + 1.0 + 5.0 * rewards.hamacher_product(above_floor, in_place), reward)
        reward = jnp.where(target_to_obj < TARGET_RADIUS, 10.0, reward)
        return reward, info(
            (target_to_obj <= 0.05).astype(jnp.float32), near_object, grasp_success, object_grasped, in_place,
            target_to_obj, reward,
        )


    def constants_v1(self, env):
        return read_attrs(env, "heightTarget", "objHeight", "maxPlacingDist")

    def reward_v1(self, obs, action, kin, c):
        """Pick the cube, carry it over the target bin; once it is in the bin (placeCompleted) the reward is only
        -200 action[-1] (open the gripper) + the placing term."""
        obj, goal, finger = obs[OBS_OBJ1_POS], c["target_pos"], tcp_center(kin)
        height_target, obj_height = c["heightTarget"], c["objHeight"]
        reach_dist = jnp.linalg.norm(obj - finger)
        placing_dist = jnp.linalg.norm(obj[:2] - goal[:2])
        reach = rewards.v1_reach(obj, finger, c["init_tcp"][-1], action, xy_radius=0.06, z_scale=1.0, grip_radius=0.05)
        pick_completed = obj[2] >= height_target - 0.01
        dropped = (obj[2] < obj_height + 0.005) & (placing_dist > 0.02) & (reach_dist > 0.02)
        over_bin = (jnp.abs(obj[0] - goal[0]) < 0.05) & (jnp.abs(obj[1] - goal[1]) < 0.05)
        place_completed = over_bin & (obj[2] < obj_height + 0.05)
        held = (reach_dist < 0.1) & (obj[2] > obj_height + 0.005)
        pick = jnp.where(place_completed | (pick_completed & ~dropped), 100 * height_target,
                         jnp.where(held, 100 * jnp.minimum(height_target, obj[2]), 0.0))
        place = jnp.maximum(rewards.v1_progress(placing_dist, c["maxPlacingDist"]), 0.0)
        release = -200 * action[-1] + place
        cond = pick_completed & (reach_dist < 0.1) & ~dropped
        carried = reach + pick + jnp.where(cond, jnp.where(over_bin, release, place), 0.0)
        return jnp.where(place_completed, release, carried)


TASKS = (BinPicking(),)
