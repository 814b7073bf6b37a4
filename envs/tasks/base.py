"""The task interface: what a Meta-World task adds to the shared Sawyer base.

A task is a small stateless object. It names the frames it reads (beyond the Sawyer ones), the
per-episode constants it takes from the official env after ``reset()`` (``constants``, run on the
host when reset tables are built), and two pure JAX functions: the object block of the observation
(``objects``) and the V2 reward with its info dict (``evaluate``), each a line-by-line port of the
official ``_get_pos_objects``/``_get_quat_objects`` and ``compute_reward``/``evaluate_state``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.control import MAX_PATH_LENGTH
from envs.types import Kinematics

SAWYER_FRAMES = (
    "body:hand",
    "body:rightclaw",
    "body:leftclaw",
    "body:rightpad",
    "body:leftpad",
    "site:rightEndEffector",
    "site:leftEndEffector",
)


def tcp_center(kin: Kinematics) -> jax.Array:
    """SawyerXYZEnv.tcp_center: midpoint of the two end-effector sites."""
    return (kin.pos("site:rightEndEffector") + kin.pos("site:leftEndEffector")) / 2.0


class Task:
    name: str = ""
    frames: tuple[str, ...] = ()
    max_path_length: int = MAX_PATH_LENGTH

    def constants(self, env) -> dict[str, np.ndarray]:
        """Per-episode constants read from the official env after reset (host side, numpy)."""
        return {}

    def objects(self, kin: Kinematics, c: dict) -> tuple[jax.Array, jax.Array]:
        """(positions [3k], quaternions [4k]) of the task's objects, as the official obs builds them."""
        raise NotImplementedError

    def evaluate(self, obs: jax.Array, action: jax.Array, kin: Kinematics, c: dict) -> tuple[jax.Array, dict]:
        """(reward, info) of the official ``evaluate_state`` (V2 reward); info holds 'success'."""
        raise NotImplementedError


def common_constants(env) -> dict[str, np.ndarray]:
    """Constants every task has after an official reset (copies: some official attributes are live
    views into MjData, e.g. basketball's `_target_pos = data.site("goal").xpos`)."""
    return {
        "goal": np.array(env._get_pos_goal(), np.float64),
        "target_pos": np.array(env._target_pos, np.float64),
        "init_tcp": np.array(env.init_tcp, np.float64),
        "hand_init_pos": np.array(env.hand_init_pos, np.float64),
        "obj_init_pos": np.zeros(3) if env.obj_init_pos is None else np.array(env.obj_init_pos, np.float64).reshape(-1)[:3],
    }


def info(success, near_object, grasp_success, grasp_reward, in_place_reward, obj_to_target, unscaled_reward) -> dict:
    """The official info dict, every entry a float32 scalar."""
    vals = dict(
        success=success, near_object=near_object, grasp_success=grasp_success, grasp_reward=grasp_reward,
        in_place_reward=in_place_reward, obj_to_target=obj_to_target, unscaled_reward=unscaled_reward,
    )
    return {k: jnp.asarray(v, jnp.float32) for k, v in vals.items()}
