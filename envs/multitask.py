"""MultiTaskEnv: any subset of ported tasks in one jittable, batched env.

Tasks are stepped as one vmapped group per task inside the same jit (50 different MuJoCo models
cannot share one vmap; ``lax.switch`` on a task id under vmap would run every branch). Env ``i``
belongs to task ``i // envs_per_task``; observations get the one-hot task id appended (size =
number of tasks in the set, as metaworld's one-hot wrapper does). The leading axis of every leaf
of the returned ``State`` is the env axis, so trainers need no vmap.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs.registry import benchmark_for, resolve_tasks
from envs.backends import DEFAULT_IMPL
from envs.control import ACTION_SIZE
from envs.sawyer import SawyerEnv
from envs.tasks.base import DEFAULT_REWARD_VERSION, check_reward_version
from envs.types import OBS_SIZE, State


class MultiTaskEnv:
    def __init__(self, tasks, envs_per_task: int, *, seed: int = 0, impl: str = DEFAULT_IMPL, staggered: bool = True,
                 eval_mode: bool = False, mesh=None, reward_version: str = DEFAULT_REWARD_VERSION, **backend_kwargs):
        if not isinstance(envs_per_task, int) or envs_per_task <= 0:
            raise ValueError(f"envs_per_task must be a positive integer, got {envs_per_task!r}")
        self.task_names = resolve_tasks(tasks)
        self.reward_version = check_reward_version(reward_version)
        self.benchmark = benchmark_for(self.task_names)
        self.envs_per_task = envs_per_task
        self.staggered = staggered and not eval_mode
        self.eval_mode = eval_mode
        self.envs = [
            SawyerEnv(t, seed=seed, benchmark=self.benchmark, impl=impl, eval_mode=eval_mode, reward_version=reward_version,
                      **backend_kwargs)
            for t in self.task_names
        ]
        self.impl = self.envs[0].impl
        # Data parallel: every task's envs are split over the mesh axis 'data', and each device steps
        # its share (its own host callback / Warp call) under shard_map.
        self.mesh = mesh
        if mesh is not None and envs_per_task % mesh.size:
            raise ValueError(f"envs_per_task {envs_per_task} is not divisible by the {mesh.size} devices of the mesh")
        self._onehot = jnp.repeat(jnp.eye(self.num_tasks, dtype=jnp.float32), envs_per_task, axis=0)
        self._task_id = jnp.repeat(jnp.arange(self.num_tasks, dtype=jnp.int32), envs_per_task)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def num_envs(self) -> int:
        return self.num_tasks * self.envs_per_task

    @property
    def observation_size(self) -> int:
        return OBS_SIZE + self.num_tasks

    @property
    def action_size(self) -> int:
        return ACTION_SIZE

    def _merge(self, states: list[State]) -> State:
        """Concatenate per-task states; physics data and reward constants stay per task (their shapes differ)."""
        data = tuple({"physics": s.data, "consts": s.info["consts"]} for s in states)
        rest = [s.replace(data=None, info={k: v for k, v in s.info.items() if k != "consts"}) for s in states]
        merged = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *rest)
        info = {**merged.info, "task_id": self._task_id,
                "final_obs": jnp.concatenate([merged.info["final_obs"], self._onehot], axis=-1)}
        return merged.replace(data=data, obs=jnp.concatenate([merged.obs, self._onehot], axis=-1), info=info)

    def _split(self, state: State) -> list[State]:
        n = self.envs_per_task
        out = []
        for i in range(self.num_tasks):
            sl = lambda x: x[i * n : (i + 1) * n]  # noqa: E731
            info = {k: v for k, v in state.info.items() if k != "task_id"}
            info["final_obs"] = info["final_obs"][:, :OBS_SIZE]
            part = state.replace(data=None, obs=state.obs[:, :OBS_SIZE], info=info)
            part = jax.tree.map(sl, part)
            out.append(part.replace(data=state.data[i]["physics"], info={**part.info, "consts": state.data[i]["consts"]}))
        return out

    def reset(self, rng: jax.Array) -> State:
        keys = jax.random.split(rng, self.num_tasks)
        return self._merge([e.reset(k, self.envs_per_task, staggered=self.staggered) for e, k in zip(self.envs, keys)])

    def step(self, state: State, action: jax.Array) -> State:
        action = jnp.asarray(action)
        if action.shape != (self.num_envs, ACTION_SIZE):
            raise ValueError(f"action has shape {tuple(action.shape)}; expected (num_envs={self.num_envs}, {ACTION_SIZE})")
        n = self.envs_per_task
        parts = self._split(state)
        actions = [action[i * n : (i + 1) * n] for i in range(self.num_tasks)]
        return self._merge(self._sharded(self._step_groups)(parts, actions))

    def _step_groups(self, parts: list[State], actions: list[jax.Array]) -> list[State]:
        """Every task group's physics through the backend class's ``step_groups`` (mujoco: one host
        callback for all groups; warp: each group's own step), then each task's logic."""
        backends = [e.backend for e in self.envs]
        actions = [a.astype(jnp.float32) for a in actions]
        physics = type(backends[0]).step_groups(backends, [p.data for p in parts], actions)
        return [e.finish(p, data, kin, a) for e, p, (data, kin), a in zip(self.envs, parts, physics, actions)]

    def _sharded(self, step):
        """``step`` as is, or per device on its share of the envs (leading axis split over 'data')."""
        if self.mesh is None:
            return step
        from jax.sharding import PartitionSpec as P

        return jax.shard_map(step, mesh=self.mesh, in_specs=P("data"), out_specs=P("data"), check_vma=False)


def make_multitask(tasks, envs_per_task: int = 1, **kwargs) -> MultiTaskEnv:
    """'mt10' | 'mt50' | 'reach,push' | list of names -> MultiTaskEnv (kwargs: seed, impl, staggered, eval_mode,
    reward_version='v2' | 'v1')."""
    return MultiTaskEnv(tasks, envs_per_task, **kwargs)
