"""Expert parity and state replay against official Meta-World (contract 1 in DESIGN.md).

    python -m envs.parity --tasks mt10 --episodes 20 --seed 0 [--impl mujoco] --json parity.json

Runs the official scripted experts (``metaworld.policies``) on official Meta-World and on the port,
on the same goals (N distinct goals drawn from each task's 50-goal table with seed S), one episode
per goal; success = success at any step. Actions are cast to float32 on both sides (the port's
action dtype), so both sides see identical actions.

``official_trajectory`` / ``replay_errors`` are the state-replay oracle used by the tests: the
official state at every step of an expert episode is copied into the port, one step is taken with
the same action, and the port's obs, reward and success are compared with the official ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from envs import assets
from envs.registry import UnknownTaskError, benchmark_for, resolve_tasks

EPISODE_LENGTH = 500


class _Expert:
    """An official scripted policy fed a copy of the obs: some (door-*, button-press) edit it in place."""

    def __init__(self, policy):
        self.policy = policy

    def get_action(self, obs):
        return self.policy.get_action(np.array(obs, dtype=np.float64, copy=True))


def expert(task: str) -> _Expert:
    from metaworld.policies import ENV_POLICY_MAP

    return _Expert(ENV_POLICY_MAP[f"{task}-v3"]())


def goal_indices(episodes: int, seed: int) -> np.ndarray:
    """``episodes`` goal indices: a seeded permutation of the 50 goals, distinct while episodes <= 50."""
    perm = np.random.default_rng(seed).permutation(50)
    return np.resize(perm, episodes)


def official_trajectory(task: str, rand_vec: np.ndarray, tm: assets.TaskModel, steps: int = EPISODE_LENGTH):
    """Run the official expert on the official env; record port-layout states, actions, obs, rewards, success.

    ``*_cold`` entries are the official results of the same step taken from the same state with the
    solver's warm start cleared, which is how the ``mujoco`` backend starts every control step.
    """
    import mujoco

    env = assets.official_env(task)
    env.set_task(assets.make_task_data(task, rand_vec))
    policy = expert(task)
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    saved = np.zeros(mujoco.mj_stateSize(env.model, spec))
    keys = ("state", "obs", "action", "reward", "success", "obs_cold", "reward_cold", "success_cold")
    rec = {k: [] for k in keys}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs, _ = env.reset()
        rec["state"].append(assets.official_state_to_port(tm, env))
        rec["obs"].append(obs)
        for _ in range(steps):
            a = np.clip(policy.get_action(obs), -1, 1).astype(np.float32)
            mujoco.mj_getState(env.model, env.data, saved, spec)
            prev, length = env._prev_obs.copy(), env.curr_path_length
            env.data.qacc_warmstart[:] = 0
            cold = env.step(a)
            mujoco.mj_setState(env.model, env.data, saved, spec)
            env._prev_obs, env.curr_path_length = prev, length
            obs, r, _, trunc, info = env.step(a)
            for k, v in (("state", assets.official_state_to_port(tm, env)), ("obs", obs), ("action", a), ("reward", r),
                         ("success", info["success"]), ("obs_cold", cold[0]), ("reward_cold", cold[1]),
                         ("success_cold", cold[4]["success"])):
                rec[k].append(v)
            if trunc:
                break
    return {k: np.asarray(v) for k, v in rec.items()}


def replay_errors(env, goal: int, traj: dict) -> dict[str, np.ndarray]:
    """Copy each official state into the port, step with the official action; per-step |port - official|."""
    from envs.backends.mujoco_backend import to_bits

    n = len(traj["action"])
    qpos = env.task_model.state_slices()["qpos"]
    state = env.reset(jax.random.PRNGKey(0), n, goals=jnp.full((n,), goal))
    data = state.data.replace(state=jnp.asarray(to_bits(traj["state"][:n])))
    info = {**state.info, "prev": jnp.asarray(traj["obs"][:n, :18], jnp.float32)}
    out = jax.jit(env.step)(state.replace(data=data, info=info), jnp.asarray(traj["action"]))
    obs = np.asarray(out.info["final_obs"])
    qpos_port = from_bits_np(out.data.state)[:, qpos]
    return {
        # the port against official stepped the way the port steps (cold solver start): exactness
        "obs": np.abs(obs - traj["obs_cold"]).max(axis=-1),
        "reward": np.abs(np.asarray(out.reward) - traj["reward_cold"]),
        "success": np.abs(np.asarray(out.info["step_info"]["success"]) - traj["success_cold"]),
        # the port against the official trajectory itself (includes the warm-start difference)
        "obs_warm": np.abs(obs - traj["obs"][1 : n + 1]).max(axis=-1),
        "reward_warm": np.abs(np.asarray(out.reward) - traj["reward"]),
        "qpos_warm": np.abs(qpos_port - traj["state"][1 : n + 1, qpos]).max(axis=-1),
    }


def from_bits_np(x) -> np.ndarray:
    from envs.backends.mujoco_backend import from_bits

    return from_bits(np.asarray(x))


def official_success(task: str, goals: np.ndarray) -> np.ndarray:
    """Any-step success of the official expert on the official env, one episode per rand_vec."""
    env = assets.official_env(task)
    policy = expert(task)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rv in goals:
            env.set_task(assets.make_task_data(task, rv))
            obs, _ = env.reset()
            success = 0.0
            for _ in range(EPISODE_LENGTH):
                obs, _, _, trunc, info = env.step(np.clip(policy.get_action(obs), -1, 1).astype(np.float32))
                success = max(success, float(info["success"]))
                if trunc:
                    break
            out.append(success)
    return np.asarray(out)


def port_success(env, goals: np.ndarray) -> np.ndarray:
    """Any-step success of the official expert on the port, all episodes batched in one env."""
    policy = expert(env.name)
    n = len(goals)
    state = env.reset(jax.random.PRNGKey(0), n, goals=jnp.asarray(goals))
    step = jax.jit(env.step)
    success = np.zeros(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(EPISODE_LENGTH):
            obs = np.asarray(state.obs, np.float64)
            action = np.stack([np.clip(policy.get_action(o), -1, 1) for o in obs]).astype(np.float32)
            state = step(state, jnp.asarray(action))
            success = np.maximum(success, np.asarray(state.info["step_info"]["success"]))
    return success


def run(tasks, episodes: int, seed: int, impl: str = "mujoco", log=print) -> dict:
    from envs.sawyer import SawyerEnv

    names = resolve_tasks(tasks)
    bench = benchmark_for(names)
    table = assets.goal_table(bench, seed)
    idx = goal_indices(episodes, seed)
    result = {"tasks": {}, "impl": impl, "episodes": episodes, "seed": seed, "benchmark": bench}
    log(f"{'task':28s} {'official':>9s} {'port':>7s} {'gap':>7s}  time")
    for name in names:
        t0 = time.perf_counter()
        env = SawyerEnv(name, seed=seed, benchmark=bench, impl=impl, eval_mode=True)
        off = official_success(name, table[name][idx])
        port = port_success(env, idx)
        row = {"official": float(off.mean()), "port": float(port.mean()), "episodes": episodes}
        result["tasks"][name] = row
        log(f"{name:28s} {row['official']:9.2f} {row['port']:7.2f} {row['port'] - row['official']:+7.2f}  {time.perf_counter() - t0:.0f}s")
    result["mean_official"] = float(np.mean([r["official"] for r in result["tasks"].values()]))
    result["mean_port"] = float(np.mean([r["port"] for r in result["tasks"].values()]))
    log(f"{'mean':28s} {result['mean_official']:9.3f} {result['mean_port']:7.3f}")
    return result


def replay_report(tasks, goals=(0, 17, 33), seed: int = 0, log=print) -> dict:
    """Max state-replay errors per task over expert episodes on the given goal indices."""
    from envs.sawyer import SawyerEnv

    names = resolve_tasks(tasks)
    bench = benchmark_for(names)
    out = {}
    log(f"{'task':24s} {'obs':>9s} {'reward':>9s} {'success':>8s} {'obs(warm)':>10s} {'qpos(warm)':>10s}")
    for name in names:
        env = SawyerEnv(name, seed=seed, benchmark=bench, eval_mode=True)
        errs = [replay_errors(env, g, official_trajectory(name, env.goals[g], env.task_model)) for g in goals]
        row = {k: float(max(e[k].max() for e in errs)) for k in errs[0]}
        row["success"] = int(sum(e["success"].sum() for e in errs))
        out[name] = row
        log(f"{name:24s} {row['obs']:9.1e} {row['reward']:9.1e} {row['success']:8d} {row['obs_warm']:10.1e} {row['qpos_warm']:10.1e}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m envs.parity", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="mt10", help="mt10, mt50, or comma-separated task names")
    p.add_argument("--episodes", type=int, default=20, help="episodes per task (distinct goals up to 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--impl", default="mujoco", help="physics backend: mujoco, warp, jax")
    p.add_argument("--json", default=None, help="write the result here")
    p.add_argument("--replay", action="store_true", help="state-replay error table instead of expert parity")
    args = p.parse_args(argv)
    if args.episodes <= 0:
        print(f"error: --episodes must be positive, got {args.episodes}", file=sys.stderr)
        return 2
    if args.impl not in ("mujoco", "warp", "jax", "auto"):
        print(f"error: unknown --impl '{args.impl}'; valid: auto, mujoco, warp, jax", file=sys.stderr)
        return 2
    try:
        resolve_tasks(args.tasks)
        if args.replay:
            result = replay_report(args.tasks, seed=args.seed)
        else:
            result = run(args.tasks, args.episodes, args.seed, args.impl)
    except UnknownTaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
