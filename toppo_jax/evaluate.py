"""Meta-World evaluation of a saved run, on the port and on official Meta-World (an entry point).

`python -m toppo_jax.evaluate --run DIR [--reference] [--episodes N] [--best] --json PATH`
(docs/design.md, "Contracts") evaluates a saved run: the jitted protocol (`policy.make_evaluate`) on
the port, and with `--reference` the same policy (`policy.make_policy`: tanh(mean), the checkpoint's
normaliser, the one-hot id appended as the port does) on official CPU Meta-World on the same goals,
with the per-task gap port - official.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from toppo_jax import config as cfg
from toppo_jax import networks as nets
from toppo_jax import ppo
from toppo_jax.loop import check_impl
from toppo_jax.policy import make_evaluate, make_policy, summarize, with_task_id
from toppo_jax.rundir import SavedPolicy, load_policy


def port_success(policy: SavedPolicy, episodes: int, make_env: Callable | None = None, impl: str | None = None,
                 modes: Sequence[bool] = (False,), reward_version: str | None = None) -> list[np.ndarray]:
    """Per-seed, per-task success [S, T] of the jitted protocol on the port, one array per mode of
    `modes` (False: tanh(mean), the protocol; True: acting with samples), all on one eval env."""
    if make_env is None:
        from envs import make_multitask

        def make_env(tasks, envs_per_task, **kwargs):
            return make_multitask(list(tasks), envs_per_task, **kwargs)

    impl = impl or policy.config.env.impl
    physics = cfg.physics_kwargs(policy.config.env) if impl == "jax" else {}  # the run's contact cap, on its own backend
    eval_env = make_env(policy.tasks, episodes, seed=policy.config.train.seed, impl=impl, staggered=False,
                        eval_mode=True, reward_version=reward_version or policy.config.env.reward_version, **physics)
    out = []
    for stochastic in modes:
        evaluate = jax.jit(make_evaluate(eval_env, policy.networks, stochastic=stochastic))
        out.append(np.stack([np.asarray(evaluate(*policy.seed(i), jax.random.PRNGKey(0))) for i in range(policy.num_seeds)]))
    return out


def make_policy_fn(networks: nets.Networks, actor_params, obs_stats: ppo.RunningStats, num_tasks: int) -> Callable:
    """act(obs [n, 39], task_index) -> tanh(mean) [n, 4]: the port's input (obs, one-hot id appended
    as envs/multitask.py does, the checkpoint's normaliser) for observations of official envs."""

    pi = make_policy(networks.actor.apply, stochastic=False)

    @jax.jit
    def act(obs, task_index):
        return pi(actor_params, obs_stats, with_task_id(obs, task_index, num_tasks)).action

    def policy(obs: np.ndarray, task_index: int) -> np.ndarray:
        return np.asarray(act(jnp.asarray(obs, jnp.float32), jnp.int32(task_index)), np.float32)

    return policy


class OfficialBatch:
    """Official Meta-World envs of one task, one per rand_vec, stepped together (in this process)."""

    def __init__(self, task: str, rand_vecs: np.ndarray):
        import warnings

        from envs import assets

        warnings.simplefilter("ignore")
        self.envs = [assets.official_class(task)() for _ in rand_vecs]
        for env, rv in zip(self.envs, rand_vecs):
            env.set_task(assets.make_task_data(task, rv))
        self.max_path_length = self.envs[0].max_path_length

    def reset(self) -> np.ndarray:
        return np.asarray([env.reset()[0] for env in self.envs], np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = [env.step(a) for env, a in zip(self.envs, actions)]
        return np.asarray([o[0] for o in out], np.float32), np.array([bool(o[4]["success"]) for o in out])

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _official_worker(conn, task: str, rand_vecs: np.ndarray) -> None:
    """Child process: an OfficialBatch driven over a pipe ('reset' | ('step', actions) | 'close')."""
    batch = OfficialBatch(task, rand_vecs)
    conn.send(batch.max_path_length)
    while True:
        msg = conn.recv()
        if msg == "close":
            batch.close()
            conn.close()
            return
        conn.send(batch.reset() if msg == "reset" else batch.step(msg[1]))


class ParallelOfficial:
    """The episodes split over ``workers`` processes, each an OfficialBatch; stepped in lockstep."""

    def __init__(self, task: str, rand_vecs: np.ndarray, workers: int):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # never fork a process that runs JAX threads
        self.chunks = [c for c in np.array_split(np.arange(len(rand_vecs)), workers) if len(c)]
        self.conns, self.procs = [], []
        for chunk in self.chunks:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_official_worker, args=(child, task, rand_vecs[chunk]), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        self.max_path_length = [c.recv() for c in self.conns][0]

    def reset(self) -> np.ndarray:
        for c in self.conns:
            c.send("reset")
        return np.concatenate([c.recv() for c in self.conns])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for c, chunk in zip(self.conns, self.chunks):
            c.send(("step", actions[chunk]))
        out = [c.recv() for c in self.conns]
        return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])

    def close(self) -> None:
        for c in self.conns:
            c.send("close")
        for p in self.procs:
            p.join(timeout=30)


def reference_rollouts(task: str, task_names: Sequence[str], episodes: int, seed: int, policy: Callable,
                       steps: int | None = None, workers: int = 1) -> dict[str, np.ndarray]:
    """`policy(obs, task_index)` on official Meta-World, one episode per goal i < episodes (mod 50) of
    the run's goal table, all goals stepped together (split over `workers` processes when > 1).
    Returns success [N] (any step) and obs [steps+1, N, 39]."""
    from envs import assets
    from envs.registry import benchmark_for

    table = assets.goal_table(benchmark_for(tuple(task_names)), seed)[task]
    rand_vecs = np.asarray([table[i % len(table)] for i in range(episodes)])
    index = list(task_names).index(task)
    workers = max(1, min(int(workers), episodes))
    official = OfficialBatch(task, rand_vecs) if workers == 1 else ParallelOfficial(task, rand_vecs, workers)
    try:
        obs = official.reset()
        length = official.max_path_length if steps is None else steps
        success = np.zeros(episodes, bool)
        history = [obs]
        for _ in range(length):
            obs, succ = official.step(policy(obs, index))
            success |= succ
            history.append(obs)
    finally:
        official.close()
    return {"success": success, "obs": np.stack(history)}


def _table(rows: dict, reference: bool) -> str:
    noisy = any("port_stochastic" in row for row in rows.values())
    head = f"{'task':28s} {'port':>7s}" + (f" {'sampled':>8s}" if noisy else "") + (f" {'official':>9s} {'gap':>7s}" if reference else "")
    lines = [head]
    for name, row in rows.items():
        line = f"{name:28s} {row['port']:7.3f}"
        if noisy:
            line += f" {row['port_stochastic']:8.3f}"
        if reference:
            line += f" {row['official']:9.3f} {row['gap']:+7.3f}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, make_env: Callable | None = None) -> int:
    """CLI entry (docs/design.md, "Contracts"). Bad input: one line on stderr, exit code 2."""
    import argparse
    import json
    import sys
    import time

    from toppo_jax.config import REWARD_VERSIONS, ConfigError

    parser = argparse.ArgumentParser(prog="python -m toppo_jax.evaluate", description="Meta-World evaluation of a trained run.")
    parser.add_argument("--run", required=True, help="run directory written by toppo_jax.train")
    parser.add_argument("--reference", action="store_true", help="also evaluate on official CPU Meta-World and report the gap")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task, one per goal of the 50-goal table (default 50)")
    parser.add_argument("--best", action="store_true", help="the best-by-eval checkpoint instead of the latest")
    parser.add_argument("--impl", default=None, help="port physics backend: auto, mujoco, warp or jax (default: the run's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for the --reference envs (default: one per CPU core)")
    parser.add_argument("--reward-version", default=None,
                        help="the port env's reward, v2 or v1 (default: the run's); success, what is evaluated, is the same function in both")
    parser.add_argument("--worst-k", type=int, nargs="+", default=None, help="k's for worst-k (default: the run's)")
    parser.add_argument("--stochastic", action="store_true",
                        help="also evaluate the port acting with policy samples (the training policy) beside tanh(mean)")
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise ConfigError(f"--episodes {args.episodes} is not valid; it must be > 0")
        if args.workers is not None and args.workers <= 0:
            raise ConfigError(f"--workers {args.workers} is not valid; it must be > 0")
        policy = load_policy(args.run, best=args.best)
        impl = args.impl or policy.config.env.impl
        reward_version = args.reward_version or policy.config.env.reward_version
        if reward_version not in REWARD_VERSIONS:
            raise ConfigError(f"--reward-version {reward_version!r} is not valid; choose one of: {', '.join(REWARD_VERSIONS)}")
        if make_env is None:
            impl = check_impl(impl, policy.tasks)  # auto resolves by platform, as in train
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ks = tuple(args.worst_k or policy.config.train.worst_k)
    t0 = time.perf_counter()
    modes = (False, True) if args.stochastic else (False,)
    port, *sampled = port_success(policy, args.episodes, make_env, impl, modes, reward_version)  # [S, T] each
    port_s = time.perf_counter() - t0
    noisy = sampled[0] if sampled else None
    official = None
    if args.reference:
        t0 = time.perf_counter()
        official = np.zeros_like(port)
        for s in range(policy.num_seeds):
            act = make_policy_fn(policy.networks, *policy.seed(s), len(policy.tasks))
            for t, task in enumerate(policy.tasks):
                rollout = reference_rollouts(task, policy.tasks, args.episodes, policy.config.train.seed, act,
                                             workers=args.workers or os.cpu_count() or 1)
                official[s, t] = rollout["success"].mean()
        official_s = time.perf_counter() - t0
    rows = {}
    for t, task in enumerate(policy.tasks):
        row = {"port": float(port[:, t].mean()), "episodes": args.episodes}
        if noisy is not None:
            row["port_stochastic"] = float(noisy[:, t].mean())
        if official is not None:
            row.update(official=float(official[:, t].mean()), gap=float(port[:, t].mean() - official[:, t].mean()))
        rows[task] = row
    result = {
        "run": str(args.run),
        "checkpoint": "best" if args.best else "latest",
        "checkpoint_step": policy.step,
        "episodes": args.episodes,
        "impl": impl,
        "reward_version": reward_version,
        "seeds": list(policy.seeds),
        "tasks": rows,
        "mean_port": float(port.mean()),
        **summarize(port.mean(axis=0), policy.tasks, ks),
        "port_s": port_s,
        "per_seed": [{"seed": seed, "mean_port": float(port[i].mean())} for i, seed in enumerate(policy.seeds)],
    }
    if noisy is not None:
        result["stochastic"] = summarize(noisy.mean(axis=0), policy.tasks, ks, prefix="eval_stochastic")
    if official is not None:
        result.update(mean_official=float(official.mean()), gap=float(port.mean() - official.mean()), official_s=official_s)
        result["reference"] = summarize(official.mean(axis=0), policy.tasks, ks)
        for i, entry in enumerate(result["per_seed"]):
            entry["mean_official"] = float(official[i].mean())
    print(_table(rows, official is not None))
    summary = f"mean port {result['mean_port']:.3f}"
    if noisy is not None:
        summary += f"  stochastic {float(noisy.mean()):.3f}"
    if official is not None:
        summary += f"  official {result['mean_official']:.3f}  gap {result['gap']:+.3f}"
    print(f"{summary}  (checkpoint {result['checkpoint']} at {policy.step:,} env steps)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
