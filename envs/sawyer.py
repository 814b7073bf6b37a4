"""The single-task Sawyer env: official control, 39-d observation, V2 or V1 reward, episodes, auto-reset.

``SawyerEnv`` is batched: ``reset(rng, num_envs)`` / ``step(state, action)`` take and return a
``State`` whose leaves carry a leading env axis; both are pure and jittable (usable in
``lax.scan``). Per episode an env draws one of the task's 50 fixed goals (official benchmark
tables), exactly like the official ``RandomTaskSelectWrapper``; ``eval_mode`` pins env i to goal
i (mod 50), which makes one 500-step rollout from reset the Meta-World evaluation protocol.
Episodes never terminate; they truncate after 500 steps and the env resets itself, keeping the
true last observation in ``info['final_obs']`` for bootstrapping. ``reward_version`` picks the
official reward function (``"v2"``, the default, or ``"v1"``); success, the obs and the rest of
``info['step_info']`` are the same in both (``unscaled_reward`` is the reward returned).
"""

from __future__ import annotations

import hashlib
import inspect

import jax
import jax.numpy as jnp
import numpy as np

from envs import assets
from envs.backends import DEFAULT_IMPL, make_backend
from envs.control import ACTION_SIZE, GRIPPER_DISTANCE_SCALE, NUM_GOALS
from envs.tasks.base import DEFAULT_REWARD_VERSION, SAWYER_FRAMES, Task, check_reward_version, common_constants
from envs.types import OBJECTS_SIZE, OBS_FRAME, OBS_SIZE, Kinematics, State
STEP_INFO_KEYS = ("success", "near_object", "grasp_success", "grasp_reward", "in_place_reward", "obj_to_target", "unscaled_reward")


class SawyerEnv:
    """One Meta-World task on a physics backend, batched over envs."""

    def __init__(self, task: str, *, seed: int = 0, benchmark: str | None = None, impl: str = DEFAULT_IMPL,
                 eval_mode: bool = False, reward_version: str = DEFAULT_REWARD_VERSION, **backend_kwargs):
        from envs.registry import benchmark_for, canonical
        from envs.tasks import PORTED

        self.name = canonical(task)
        self.task: Task = PORTED[self.name]
        self.reward_version = check_reward_version(reward_version)
        if reward_version == "v1" and not self.task.has_v1:
            with_v1 = sorted(n for n, t in PORTED.items() if t.has_v1)
            raise ValueError(f"task '{self.name}' has no V1 reward ported yet; tasks with V1: {', '.join(with_v1)}")
        self.seed = seed
        self.benchmark = benchmark or benchmark_for((self.name,))
        self.eval_mode = eval_mode
        self.max_path_length = self.task.max_path_length

        self.goals = assets.goal_table(self.benchmark, seed)[self.name]
        fixtures = assets.fixture_bodies(self.name, self.goals)
        task_frames = self.task.frames + (self.task.frames_v1 if reward_version == "v1" else ())
        self.frames = SAWYER_FRAMES + tuple(dict.fromkeys(f for f in task_frames if f not in SAWYER_FRAMES))
        self.task_model = assets.task_model(self.name, self.frames, fixtures)
        # Cache key of the reset table: the source of every module the task's class comes from (its own,
        # a sibling task it subclasses, and envs/tasks/base.py with the common constants).
        modules = dict.fromkeys(inspect.getmodule(k) for k in type(self.task).__mro__ if k.__module__.startswith("envs."))
        source = "".join(inspect.getsource(m) for m in modules)
        tag = hashlib.sha1(source.encode()).hexdigest()[:8]
        version_tag = "" if reward_version == "v2" else f"_{reward_version}"
        table = assets.reset_table(self.name, self.task_model, self.goals, self._constants,
                                   f"{self.benchmark}{seed}_{tag}{version_tag}", reward_version)
        self.obs_low = jnp.asarray(table["obs_low"], jnp.float32)
        self.obs_high = jnp.asarray(table["obs_high"], jnp.float32)
        self._t_obs = jnp.asarray(table["obs"], jnp.float32)
        self._t_consts = {k[len("const/"):]: jnp.asarray(v, jnp.float32) for k, v in table.items() if k.startswith("const/")}
        env = assets.official_env(self.name)
        self.backend = make_backend(impl, self.task_model, env.mocap_low, env.mocap_high, **backend_kwargs)
        self.impl = self.backend.name
        self._t_data = self.backend.init_table(table["state"])

    def _constants(self, env) -> dict[str, np.ndarray]:
        v1 = self.task.constants_v1(env) if self.reward_version == "v1" else {}
        return {**common_constants(env), **self.task.constants(env), **v1}

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def observation_size(self) -> int:
        return OBS_SIZE

    @property
    def action_size(self) -> int:
        return ACTION_SIZE

    # ---- per-env pieces ----------------------------------------------------------------------
    def _reset_fields(self, goal: jax.Array):
        data = jax.tree.map(lambda t: t[goal], self._t_data)
        obs = self._t_obs[goal]
        consts = jax.tree.map(lambda t: t[goal], self._t_consts)
        return data, obs, consts

    def _reset_one(self, rng: jax.Array, goal: jax.Array, steps: jax.Array) -> State:
        data, obs, consts = self._reset_fields(goal)
        zero = jnp.zeros((), jnp.float32)
        info = {
            "goal_index": goal.astype(jnp.int32),
            "steps": steps.astype(jnp.int32),
            "prev": obs[OBS_FRAME],
            "consts": consts,
            "rng": rng,
            "truncation": zero,
            "final_obs": obs,
            "episode_success": zero,
            "step_info": {k: zero for k in STEP_INFO_KEYS},
        }
        return State(data=data, obs=obs, reward=zero, done=zero, metrics={"success": zero}, info=info)

    def observe(self, kin: Kinematics, prev: jax.Array, consts: dict) -> tuple[jax.Array, jax.Array]:
        """(clipped 39-d obs, unclipped current 18-d frame): SawyerXYZEnv._get_obs + the clip in step().

        Layout: ``envs.types.OBS_*`` (hand, gripper, two objects, previous frame, goal)."""
        hand = kin.pos("body:hand")
        gripper = jnp.clip(jnp.linalg.norm(kin.pos("body:rightclaw") - kin.pos("body:leftclaw")) / GRIPPER_DISTANCE_SCALE, 0.0, 1.0)
        pos, quat = self.task.objects(kin, consts)
        blocks = [jnp.concatenate([pos[3 * i : 3 * i + 3], quat[4 * i : 4 * i + 4]]) for i in range(pos.shape[0] // 3)]
        objs = jnp.concatenate(blocks)
        objs = jnp.pad(objs, (0, OBJECTS_SIZE - objs.shape[0]))
        curr = jnp.concatenate([hand, gripper[None], objs]).astype(jnp.float32)
        obs = jnp.concatenate([curr, prev, consts["goal"]])
        return jnp.clip(obs, self.obs_low, self.obs_high), curr

    def _finish_one(self, state: State, data, kin: Kinematics, action: jax.Array) -> State:
        """Per env, after the physics step: obs, reward, success, truncation and auto-reset."""
        info = state.info
        obs, curr = self.observe(kin, info["prev"], info["consts"])
        reward, rinfo = self.task.evaluate(obs, action, kin, info["consts"])
        if self.reward_version == "v1":
            reward = self.task.reward_v1(obs, action, kin, info["consts"]).astype(jnp.float32)
            rinfo = {**rinfo, "unscaled_reward": reward}
        success = rinfo["success"]
        steps = info["steps"] + 1
        truncation = steps >= self.max_path_length
        episode_success = jnp.maximum(state.metrics["success"], success)

        rng, key = jax.random.split(info["rng"])
        goal = info["goal_index"] if self.eval_mode else jax.random.randint(key, (), 0, NUM_GOALS)
        reset = self._reset_one(rng, goal, jnp.zeros((), jnp.int32))
        cont = State(
            data=data, obs=obs, reward=reward, done=jnp.zeros(()), metrics={"success": episode_success},
            info={**info, "steps": steps, "prev": curr, "rng": rng},
        )
        nxt = jax.tree.map(lambda r, c: jnp.where(truncation, r, c), reset, cont)
        flag = truncation.astype(jnp.float32)
        return nxt.replace(
            reward=reward.astype(jnp.float32),
            done=flag,
            info={**nxt.info, "truncation": flag, "final_obs": obs, "episode_success": episode_success,
                  "step_info": rinfo},
        )

    # ---- batched API -------------------------------------------------------------------------
    def reset(self, rng: jax.Array, num_envs: int, *, staggered: bool = False, goals: jax.Array | None = None) -> State:
        """Batched reset; env i of an eval env runs goal i mod 50 (or ``goals[i]``); staggered starts spread episode phases."""
        k_goal, k_steps, k_env = jax.random.split(rng, 3)
        if goals is not None:
            goals = jnp.asarray(goals, jnp.int32)
        elif self.eval_mode:
            goals = jnp.arange(num_envs) % NUM_GOALS
        else:
            goals = jax.random.randint(k_goal, (num_envs,), 0, NUM_GOALS)
        steps = (
            jax.random.randint(k_steps, (num_envs,), 0, self.max_path_length) if staggered else jnp.zeros(num_envs, jnp.int32)
        )
        return jax.vmap(self._reset_one)(jax.random.split(k_env, num_envs), goals, steps)

    def step(self, state: State, action: jax.Array) -> State:
        """Batched step. ``action``: float32 [num_envs, 4] in [-1, 1]."""
        action = jnp.asarray(action)
        if action.ndim != 2 or action.shape[-1] != ACTION_SIZE or action.shape[0] != state.obs.shape[0]:
            raise ValueError(
                f"action has shape {tuple(action.shape)}; expected (num_envs={state.obs.shape[0]}, {ACTION_SIZE})"
            )
        action = action.astype(jnp.float32)
        data, kin = self.backend.step(state.data, action)
        return self.finish(state, data, kin, action)

    def finish(self, state: State, data, kin: Kinematics, action: jax.Array) -> State:
        """Batched: the task logic after a physics step that gave ``data`` and ``kin`` (see ``step``)."""
        return jax.vmap(self._finish_one)(state, data, kin, action.astype(jnp.float32))

    # ---- host side: states for rendering and replay --------------------------------------------
    def render_model(self):
        """The ``mujoco.MjModel`` to draw this env's states with: the port's model of the task (the
        official XML, fixtures as mocap bodies, frame sensors). Pair it with ``physics_state`` and
        ``envs.render.set_state``."""
        return self.task_model.model

    def physics_state(self, state) -> np.ndarray:
        """Host side, any backend: the physics of a ``State`` (or of its ``data``) as float64 port-layout
        states [B, nstate] (FULLPHYSICS, then every mocap position and quaternion; ``data`` leaves may
        carry a time axis instead of the env axis, e.g. one env recorded along a ``lax.scan``)."""
        data = state.data if isinstance(state, State) else state
        return self.backend.physics_state(jax.device_get(data))


def make(task: str, **kwargs) -> SawyerEnv:
    """One task by name ('drawer-open' or 'drawer-open-v3'); kwargs go to ``SawyerEnv`` (seed, impl, eval_mode,
    reward_version='v2' | 'v1')."""
    return SawyerEnv(task, **kwargs)
