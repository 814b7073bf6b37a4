"""The task interface: what a Meta-World task adds to the shared Sawyer base.

A task is a small stateless object. It names the frames it reads (beyond the Sawyer ones), the
per-episode constants it takes from the official env after ``reset()`` (``constants``, run on the
host when reset tables are built), and two pure JAX functions: the object block of the observation
(``objects``) and the V2 reward with its info dict (``evaluate``), each a line-by-line port of the
official ``_get_pos_objects``/``_get_quat_objects`` and ``compute_reward``/``evaluate_state``.

The V1 reward (``reward_function_version="v1"``, the ``else:`` branch of each official
``compute_reward``) is ported beside V2. To add it to a task:

1. ``constants_v1(env)``: return (with ``read_attrs``) the attributes the V1 branch reads from ``self`` that are not
   already common constants (``maxPullDist``, ``heightTarget``, ``objHeight``, ...), read from
   ``env`` as they stand after ``reset()``. ``env`` is the official env built with
   ``reward_function_version="v1"`` (assembly's ``reset_model`` sets its V1 attributes only
   then), so read attributes, never recompute them. They reach the reward as ``c[...]``, float32,
   and exist only in an env built with ``reward_version="v1"`` (V2 states keep their shape).
2. ``reward_v1(obs, action, kin, c)``: the V1 branch line by line, every Python ``if`` on a
   traced value as ``jnp.where``; ``self._get_site_pos(name)`` is ``kin.pos("site:<name>")``
   (a frame only V1 reads goes in ``frames_v1``, so V2 models keep their sensors), ``fingerCOM``
   is ``tcp_center(kin)``; shared V1 shaping terms
   are in ``envs.rewards`` (``v1_progress``, ``v1_reach``). Return the reward only: success and
   the info dict stay ``evaluate``'s in both versions. A task that subclasses another task (not
   a shared base) defines its own ``reward_v1``: an inherited one does not count (``has_v1``).
3. Per-episode flags (``reachCompleted``, ``pickCompleted``, ``placeCompleted``): in metaworld
   3.0.0 every V1 branch assigns them on every call before reading them, so they are plain
   locals and V1 needs no memory between steps. ``tests/test_rewards_v1.py`` checks this on the
   official source of all 50 tasks and fails if a version ever carries one across steps (then it
   must become env state, reset with the episode).
4. Checks: ``tests/test_rewards_v1.py`` picks the task up by itself (every task whose class
   defines ``reward_v1``); the full table is ``python -m envs.parity --replay --reward-version v1``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs import rewards
from envs.control import MAX_PATH_LENGTH
from envs.types import OBS_OBJ1_POS, Kinematics

REWARD_VERSIONS = ("v2", "v1")  # official ``reward_function_version`` values; success is V2's in both
DEFAULT_REWARD_VERSION = "v2"


def check_reward_version(version) -> str:
    """The one validation of a reward version ('v1' | 'v2'); the error names the bad value and the choices."""
    if version not in REWARD_VERSIONS:
        raise ValueError(f"unknown reward version {version!r}; valid: {', '.join(REWARD_VERSIONS)}")
    return version

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
    frames_v1: tuple[str, ...] = ()  # frames only the V1 reward reads (sensed in V1 envs only)
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

    def constants_v1(self, env) -> dict[str, np.ndarray]:
        """The V1 reward's per-episode constants, read from the official env built with
        ``reward_function_version="v1"`` after reset (host side, numpy)."""
        return {}

    def reward_v1(self, obs: jax.Array, action: jax.Array, kin: Kinematics, c: dict) -> jax.Array:
        """The official V1 reward (the ``else:`` branch of ``compute_reward``), a scalar."""
        raise NotImplementedError

    @property
    def has_v1(self) -> bool:
        """Whether this task ports the V1 reward: its class or a shared base defines ``reward_v1``; one
        inherited from another task does not count (shelf-place subclasses pick-place, whose V1 differs)."""
        for k in type(self).__mro__:
            if k is not type(self) and "name" in vars(k):  # another task, or Task itself
                return False
            if "reward_v1" in vars(k):
                return k is not Task
        return False


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


def read_attrs(env, *names: str) -> dict[str, np.ndarray]:
    """{name: copy of env.<name>} for V1 constants, keyed by the official attribute name (``c["maxPullDist"]``)."""
    return {n: np.array(getattr(env, n), np.float64) for n in names}


def info(success, near_object, grasp_success, grasp_reward, in_place_reward, obj_to_target, unscaled_reward) -> dict:
    """The official info dict, every entry a float32 scalar."""
    vals = dict(
        success=success, near_object=near_object, grasp_success=grasp_success, grasp_reward=grasp_reward,
        in_place_reward=in_place_reward, obj_to_target=obj_to_target, unscaled_reward=unscaled_reward,
    )
    return {k: jnp.asarray(v, jnp.float32) for k, v in vals.items()}


class ReachThenMoveV1:
    """The V1 reward shared by door-lock/-unlock, faucet-open/-close and lever-pull: reach the object,
    then move it to the goal, -d_reach + pull term of ``maxPullDist`` (``rewards.v1_reach_then_progress``)."""

    def constants_v1(self, env):
        return read_attrs(env, "maxPullDist")

    def reward_v1(self, obs, action, kin, c):
        obj = obs[OBS_OBJ1_POS]
        return rewards.v1_reach_then_progress(
            jnp.linalg.norm(obj - tcp_center(kin)), jnp.linalg.norm(obj - c["target_pos"]), c["maxPullDist"]
        )


class PushV1:
    """The V1 reward of push-back, push-wall and soccer (official: push's V1 branch, line for line): reach
    the puck, then push it to the goal in xy, with ``maxPushDist`` (``rewards.v1_reach_then_progress``)."""

    def constants_v1(self, env):
        return read_attrs(env, "maxPushDist")

    def reward_v1(self, obs, action, kin, c):
        obj, goal = obs[OBS_OBJ1_POS], c["target_pos"]
        reach_dist = jnp.linalg.norm(tcp_center(kin) - obj)
        return rewards.v1_reach_then_progress(reach_dist, jnp.linalg.norm(obj[:2] - goal[:2]), c["maxPushDist"])
