"""peg-insert-side-v3 (metaworld/envs/sawyer_peg_insertion_side_v3.py): grasp the peg, insert it sideways into the box."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.tasks.base import Task, info, read_attrs, tcp_center
from envs.types import OBS_GRIPPER, OBS_OBJ1_POS

TARGET_RADIUS = 0.07
_BOXES = (
    ("site:bottom_right_corner_collision_box_1", "site:top_left_corner_collision_box_1"),
    ("site:bottom_right_corner_collision_box_2", "site:top_left_corner_collision_box_2"),
)


class PegInsertSide(Task):
    name = "peg-insert-side"
    frames = ("site:pegGrasp", "site:pegHead") + tuple(k for box in _BOXES for k in box)

    def constants(self, env):
        return {"peg_head_pos_init": np.asarray(env.peg_head_pos_init, np.float64)}

    def objects(self, kin, c):
        return kin.pos("site:pegGrasp"), rewards.scipy_quat_from_matrix(kin.frames["site:pegGrasp"].mat)

    def evaluate(self, obs, action, kin, c):
        tcp, obj, tcp_opened, target = tcp_center(kin), obs[OBS_OBJ1_POS], obs[OBS_GRIPPER], c["target_pos"]
        obj_head = kin.pos("site:pegHead")
        tcp_to_obj = jnp.linalg.norm(obj - tcp)
        scale = jnp.array([1.0, 2.0, 2.0])
        obj_to_target = jnp.linalg.norm((obj_head - target) * scale)
        in_place_margin = jnp.linalg.norm((c["peg_head_pos_init"] - target) * scale)
        in_place = rewards.tolerance(obj_to_target, bounds=(0, TARGET_RADIUS), margin=in_place_margin, sigmoid="long_tail")
        (brc1, tlc1), (brc2, tlc2) = ((kin.pos(a), kin.pos(b)) for a, b in _BOXES)
        collision_box_bottom_1 = rewards.rect_prism_tolerance(curr=obj_head, one=tlc1, zero=brc1)
        collision_box_bottom_2 = rewards.rect_prism_tolerance(curr=obj_head, one=tlc2, zero=brc2)
        collision_boxes = rewards.hamacher_product(collision_box_bottom_2, collision_box_bottom_1)
        in_place = rewards.hamacher_product(in_place, collision_boxes)

        object_grasped = rewards.gripper_caging_reward(
            action, obj, left_pad=kin.pos("body:leftpad"), right_pad=kin.pos("body:rightpad"), tcp=tcp,
            obj_init_pos=c["obj_init_pos"], init_tcp=c["init_tcp"], object_reach_radius=0.01, obj_radius=0.0075,
            pad_success_thresh=0.03, xz_thresh=0.005, high_density=True,
        )
        lifted = (tcp_to_obj < 0.08) & (tcp_opened > 0) & (obj[2] - 0.01 > c["obj_init_pos"][2])
        object_grasped = jnp.where(lifted, 1.0, object_grasped)
        reward = rewards.hamacher_product(object_grasped, in_place)
        reward = jnp.where(lifted, reward + 1.0 + 5 * in_place, reward)
        reward = jnp.where(obj_to_target <= 0.07, 10.0, reward)
        grasp = (tcp_to_obj < 0.02) & (tcp_opened > 0) & (obj[2] - 0.01 > c["obj_init_pos"][2])
        return reward, info(
            (obj_to_target <= 0.07).astype(jnp.float32), (tcp_to_obj <= 0.03).astype(jnp.float32), grasp,
            object_grasped, in_place, obj_to_target, reward,
        )


    def constants_v1(self, env):
        return read_attrs(env, "heightTarget", "objHeight", "maxPlacingDist")

    def reward_v1(self, obs, action, kin, c):
        obj, goal, finger = obs[OBS_OBJ1_POS], c["target_pos"], tcp_center(kin)
        placing_dist_head = jnp.linalg.norm(kin.pos("site:pegHead") - goal)
        placing_dist = jnp.linalg.norm(obj - goal)
        reach = rewards.v1_reach(obj, finger, c["init_tcp"][-1], action, xy_radius=0.05, z_scale=1.0, grip_radius=0.05)
        # placing term on the peg's grasp point once its head is within 5 cm of the goal, else on the head
        place_dist = jnp.where(placing_dist_head <= 0.05, placing_dist, placing_dist_head)
        return rewards.v1_pick_place(reach, jnp.linalg.norm(obj - finger), obj[2], placing_dist, c["heightTarget"],
                                     c["objHeight"], c["maxPlacingDist"], progress_dist=place_dist)


TASKS = (PegInsertSide(),)
