"""The port as a ``brax.envs.Env``: a Brax/Playground user switches to Meta-World by changing the env line.

    from brax.training.agents.ppo import train as ppo
    import envs.brax

    env = envs.brax.make("reach")                      # one env, like brax.envs.get_environment("ant")
    make_policy, params, metrics = ppo.train(environment=env, episode_length=500, num_timesteps=..., ...)

    mt = envs.brax.make_multitask("mt10", envs_per_task=16)   # already batched: 160 envs, obs 39 + 10
    ppo.train(environment=mt, wrap_env=False, num_envs=mt.num_envs, num_eval_envs=mt.num_envs,
              episode_length=500, ...)

Two adapters, because Brax has two ways to get a batch of envs (docs/brax.md):

* ``BraxEnv`` (``make``) is ONE env, with no batch axis, as Brax's and Playground's envs are; Brax's
  default training wrap (``brax.envs.training.wrap``: ``VmapWrapper``, ``EpisodeWrapper``,
  ``AutoResetWrapper``) batches it, cuts episodes and resets them. Its ``step`` never ends an
  episode (Meta-World has no terminal states): ``EpisodeWrapper(episode_length=500)`` truncates
  (``done = 1``, ``info["truncation"] = 1``, so Brax's GAE treats the step as a time-out, not a
  terminal). ``AutoResetWrapper`` restarts a finished env from ``info["first_pipeline_state"]`` /
  ``info["first_obs"]``; the adapter refreshes those two at every step with a new reset draw, so every
  episode gets a new goal of the task's 50, as official's ``RandomTaskSelectWrapper`` does (without
  the refresh an env would replay its first goal forever). Backend: ``mujoco`` only, whose host
  callback batches under ``jax.vmap`` (``vmap_method="broadcast_all"``); the ``warp`` backend sizes
  its buffers for the whole batch and is not vmappable env by env: use ``make_multitask``.
* ``BraxMultiTaskEnv`` (``make_multitask``) is already a batch of ``num_envs`` envs (``MultiTaskEnv``:
  MT10, MT50, any task list, or one task) that runs its own episodes: at the 500th step ``done = 1``
  and ``info["truncation"] = 1``, the env has reset itself to a new goal and ``obs`` is the new
  episode's first observation (the last one: ``state.pipeline_state.info["final_obs"]``). It carries
  the ``info`` fields Brax's trainers read (``steps``, ``truncation``, ``episode_done``,
  ``episode_metrics``), so ``ppo.train(..., wrap_env=False)`` uses it as is; every backend works.

Success: ``state.metrics["success"]`` is 1 at the step where the episode first succeeds and 0
otherwise, so its sum over an episode (what ``EpisodeWrapper`` and Brax's evaluator report as
``episode_success``) is the official episode success, 0 or 1, and its mean over episodes the success
rate. ``pipeline_state`` is the port's ``envs.State`` (physics and task state).

``envs`` never imports this module (``import envs`` stays free of brax); ``import envs.brax``.

JAX compatibility: brax 0.14.2's trainers (PPO, SAC, APG, ``brax.training.pmap``) call
``jax.device_put_replicated``, which JAX removed in 0.10 (this project pins jax 0.10.2), so
``ppo.train`` fails with AttributeError before its first step. Importing this module defines it
again when it is missing, bound to JAX's own implementation that 0.10.2 still ships in
``jax._src.api`` (``_restore_device_put_replicated``); nothing else in JAX is touched.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.envs import base as brax_base

from envs.backends import DEFAULT_IMPL, EXACT_IMPL, check_impl
from envs.control import ACTION_SIZE, MAX_PATH_LENGTH
from envs.multitask import MultiTaskEnv
from envs.sawyer import SawyerEnv
from envs.tasks.base import DEFAULT_REWARD_VERSION
from envs.types import OBS_SIZE



def _restore_device_put_replicated() -> None:
    """Define ``jax.device_put_replicated`` again if this JAX removed it (0.10+): JAX's own implementation,
    still in ``jax._src.api``, which returns the pmap-sharded arrays brax's ``jax.pmap`` code expects
    (a ``jax.device_put`` with a NamedSharding, the migration guide's drop-in, gives arrays on another
    mesh than pmap's, which brax's evaluator then rejects: measured)."""
    try:
        jax.device_put_replicated  # noqa: B018  (present before JAX 0.10: leave it alone)
    except AttributeError:
        from jax._src import api

        jax.device_put_replicated = api.device_put_replicated


_restore_device_put_replicated()

EPISODE_LENGTH = MAX_PATH_LENGTH  # pass as ppo.train(episode_length=...): Meta-World's 500-step episodes
METRICS = ("success",)


def _check_key(rng: jax.Array, shapes: tuple[tuple[int, ...], ...], what: str) -> None:
    shape = tuple(jnp.shape(rng))
    if shape not in shapes:
        valid = " or ".join(str(s) for s in shapes)
        raise ValueError(f"{what}: rng has shape {shape}; expected {valid} (a jax.random.PRNGKey or a batch of them)")


class BraxEnv(brax_base.Env):
    """One ported task as one Brax env (no batch axis); batch it with Brax's wrappers (module docstring).

    Args:
        task: a task name ('reach' or 'reach-v3'; ``envs.TASKS``).
        seed: benchmark seed of the task's 50 goals (``envs.make``).
        impl: 'mujoco' (or 'auto' on CPU); other backends: ``make_multitask``.
        reward_version: 'v2' (default) or 'v1', as ``envs.make``.
    """

    def __init__(self, task: str, *, seed: int = 0, impl: str = EXACT_IMPL, reward_version: str = DEFAULT_REWARD_VERSION):
        picked = check_impl(impl)
        if picked != EXACT_IMPL:
            raise ValueError(
                f"impl={impl!r} (-> {picked!r}): the single-env Brax adapter runs the '{EXACT_IMPL}' backend only "
                f"(Brax's VmapWrapper batches it env by env); valid: '{EXACT_IMPL}', or 'auto' on CPU. For "
                f"'{picked}' use envs.brax.make_multitask('{task}', envs_per_task=N, impl={impl!r}) with ppo.train(wrap_env=False)"
            )
        self.port = SawyerEnv(task, seed=seed, impl=picked, reward_version=reward_version)
        self.task_name = self.port.name
        self.episode_length = EPISODE_LENGTH

    @property
    def observation_size(self) -> int:
        return OBS_SIZE

    @property
    def action_size(self) -> int:
        return ACTION_SIZE

    @property
    def backend(self) -> str:
        return self.port.impl

    def _port_reset(self, rng: jax.Array):
        # The port's own batched reset with one env: a goal drawn from the task's 50, physics from its table.
        return self.port.reset(rng, 1)

    def reset(self, rng: jax.Array) -> brax_base.State:
        """One env: the port's ``reset(rng, 1)`` (same rng, same goal and obs) without the batch axis."""
        _check_key(rng, ((2,),), "BraxEnv.reset (one env; Brax's VmapWrapper batches it)")
        port = self._port_reset(rng)
        zero = jnp.zeros((), jnp.float32)
        return brax_base.State(pipeline_state=port, obs=port.obs[0], reward=zero, done=zero,
                               metrics={"success": zero}, info={})

    def step(self, state: brax_base.State, action: jax.Array) -> brax_base.State:
        """One control step of the port. Never done: episodes are cut by Brax's EpisodeWrapper."""
        action = jnp.asarray(action)
        if action.shape != (ACTION_SIZE,):
            raise ValueError(f"BraxEnv.step: action has shape {tuple(action.shape)}; expected ({ACTION_SIZE},) "
                             "(one env; Brax's VmapWrapper batches it)")
        port = state.pipeline_state
        # The port's step counter stays at 0, so its own 500-step time-out and auto-reset never fire here:
        # EpisodeWrapper decides where an episode ends and AutoResetWrapper restarts it.
        port = port.replace(info={**port.info, "steps": jnp.zeros_like(port.info["steps"])})
        nxt = self.port.step(port, action[None])
        # 1 at the first success of the episode: the port's running max of success rises there.
        first = nxt.metrics["success"][0] - port.metrics["success"][0]
        info = dict(state.info)
        if "first_pipeline_state" in info:
            # Brax's AutoResetWrapper restarts finished envs from these: a new draw each step gives each
            # episode a new goal (its key comes from the port's per-env stream, advanced every step).
            fresh = self._port_reset(jax.random.fold_in(nxt.info["rng"][0], 1))
            info["first_pipeline_state"] = fresh
            info["first_obs"] = fresh.obs[0]
        return state.replace(pipeline_state=nxt, obs=nxt.obs[0], reward=nxt.reward[0],
                             done=jnp.zeros_like(state.done), metrics={**state.metrics, "success": first}, info=info)


class BraxMultiTaskEnv(brax_base.Env):
    """Ported tasks as one already-batched Brax env that runs its own episodes (module docstring).

    Use with ``ppo.train(environment=env, wrap_env=False, num_envs=env.num_envs,
    num_eval_envs=env.num_envs, episode_length=500)``.

    Args:
        tasks: 'mt10' | 'mt50' | a task name | a list (``envs.resolve_tasks``).
        envs_per_task: envs per task; env i runs task i // envs_per_task.
        seed, impl, reward_version: as ``envs.make_multitask``.
        staggered: spread the first episodes' phases (training); keep False for an eval env (Brax's
            evaluator counts each env's first episode only, which must then be a full one).
        one_hot: append the one-hot task id to the obs; default: only with more than one task.
    """

    def __init__(self, tasks, envs_per_task: int = 1, *, seed: int = 0, impl: str = DEFAULT_IMPL, staggered: bool = False,
                 one_hot: bool | None = None, reward_version: str = DEFAULT_REWARD_VERSION):
        self.port = MultiTaskEnv(tasks, envs_per_task, seed=seed, impl=impl, staggered=staggered,
                                 reward_version=reward_version)
        self.task_names = self.port.task_names
        self.one_hot = self.port.num_tasks > 1 if one_hot is None else bool(one_hot)
        self.episode_length = EPISODE_LENGTH

    @property
    def num_envs(self) -> int:
        return self.port.num_envs

    @property
    def observation_size(self) -> int:
        return self.port.observation_size if self.one_hot else OBS_SIZE

    @property
    def action_size(self) -> int:
        return ACTION_SIZE

    @property
    def backend(self) -> str:
        return self.port.impl

    def _obs(self, obs: jax.Array) -> jax.Array:
        return obs if self.one_hot else obs[:, :OBS_SIZE]

    def reset(self, rng: jax.Array) -> brax_base.State:
        """Every env: the port's ``MultiTaskEnv.reset`` of one key. ``rng``: one key, or the
        ``num_envs`` keys ppo.train passes (then the first one is used)."""
        n = self.num_envs
        _check_key(rng, ((2,), (n, 2)), f"BraxMultiTaskEnv.reset ({n} envs; pass num_envs={n} and num_eval_envs={n} to ppo.train)")
        port = self.port.reset(rng if rng.ndim == 1 else rng[0])
        zero = jnp.zeros(n, jnp.float32)
        info = {"steps": port.info["steps"].astype(jnp.float32), "truncation": zero, "episode_done": zero,
                "episode_metrics": {"sum_reward": zero, "length": zero, **{k: zero for k in METRICS}}}
        return brax_base.State(pipeline_state=port, obs=self._obs(port.obs), reward=zero, done=zero,
                               metrics={"success": zero}, info=info)

    def step(self, state: brax_base.State, action: jax.Array) -> brax_base.State:
        """Every env one control step; at an episode's 500th step ``done`` and ``info["truncation"]``
        are 1 and the env has already reset (new goal), as Brax's AutoResetWrapper would leave it."""
        port = state.pipeline_state
        nxt = self.port.step(port, action)
        # The port keeps the ending episode's running max of success in info["episode_success"].
        first = nxt.info["episode_success"] - port.metrics["success"]
        done = nxt.done
        info = state.info
        # Episode sums as Brax's EpisodeWrapper keeps them: cleared after a finished episode.
        keep = 1.0 - info["episode_done"]
        metrics = {"success": first}
        episode = {"sum_reward": info["episode_metrics"]["sum_reward"] * keep + nxt.reward,
                   "length": info["episode_metrics"]["length"] * keep + 1.0,
                   **{k: info["episode_metrics"][k] * keep + metrics[k] for k in METRICS}}
        info = {**info, "steps": jnp.where(done > 0, float(EPISODE_LENGTH), nxt.info["steps"].astype(jnp.float32)),
                "truncation": nxt.info["truncation"], "episode_done": done, "episode_metrics": episode}
        return state.replace(pipeline_state=nxt, obs=self._obs(nxt.obs), reward=nxt.reward, done=done,
                             metrics={**state.metrics, **metrics}, info=info)


def make(task: str, **kwargs) -> BraxEnv:
    """One task as one Brax env (``BraxEnv``); kwargs: seed, impl, reward_version."""
    return BraxEnv(task, **kwargs)


def make_multitask(tasks, envs_per_task: int = 1, **kwargs) -> BraxMultiTaskEnv:
    """'mt10' | 'mt50' | task list | one task -> an already-batched Brax env (``BraxMultiTaskEnv``);
    kwargs: seed, impl, staggered, one_hot, reward_version."""
    return BraxMultiTaskEnv(tasks, envs_per_task, **kwargs)
