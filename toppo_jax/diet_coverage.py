"""Collision-diet coverage of a trained policy (an entry point; issue 19).

    python -m toppo_jax.diet_coverage --run DIR [--episodes 3] [--sampled] [--best] [--tasks a,b] [--json PATH] [--grow]

The MJX ``jax`` backend lets only the geom pairs of a task's collision diet collide (``envs/diet.py``,
``envs/diet.json``), a table made from the official scripted experts' and random episodes. A learning
policy may find contacts those never make, and a pair outside the diet is silently off in MJX. This
replays the run's policy (each seed's ``tanh(mean)``, or with ``--sampled`` its samples, the policy that
collects training data) on official Meta-World (C MuJoCo, every substep recorded by
``envs.diet.coverage``) and reports, per task, the contacts outside the diet with how many substeps
each was seen. Exit status 1 if there is any (0 if none, 2 on bad input), like ``python -m envs.diet --check``.
With ``--grow`` those contacts join the table (``envs.diet.grow``: one more survey round, recorded with
the run and step it came from) and the exit status is 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from toppo_jax.policy import make_policy, with_task_id
from toppo_jax.rundir import SavedPolicy, load_policy


def official_actor(policy: SavedPolicy, seed_index: int, task_index: int, sampled: bool, rng_seed: int = 0) -> Callable:
    """obs [39] of an official env -> action [4]: the run's policy on that task (its one-hot id, its
    normaliser), ``tanh(mean)`` or, with ``sampled``, a fresh sample per call."""
    actor_params, obs_stats = policy.seed(seed_index)
    pi = make_policy(policy.networks.actor.apply, stochastic=sampled)
    num_tasks = len(policy.tasks)

    @jax.jit
    def act(obs, rng):
        x = with_task_id(obs[None], jnp.int32(task_index), num_tasks)
        return pi(actor_params, obs_stats, x, rng).action[0]

    key = [jax.random.PRNGKey(rng_seed)]

    def actor(obs: np.ndarray) -> np.ndarray:
        key[0], sub = jax.random.split(key[0])
        return np.asarray(act(jnp.asarray(obs, jnp.float32), sub), np.float64)

    return actor


def run_coverage(policy: SavedPolicy, tasks: Sequence[str], episodes: int, sampled: bool, log=print) -> dict:
    """Per task: {"outside": {pair: substeps by kind}, "seen": n pairs, "episodes": n} over every seed."""
    from envs import diet

    out = {}
    for task in tasks:
        t0 = time.perf_counter()
        index = policy.tasks.index(task)
        outside: dict[str, dict] = {}
        seen = 0
        for s in range(policy.num_seeds):
            res = diet.coverage(task, expert_goals=(), noisy=(), random_goals=(), reach_goals=(),
                                actor=official_actor(policy, s, index, sampled, rng_seed=s),
                                policy_goals=range(episodes))
            seen = max(seen, res["seen"])
            for pair, counts in res["outside"].items():
                outside[pair] = diet.add_substeps(outside.get(pair, {}), counts)
        out[task] = {"outside": outside, "seen": seen, "episodes": episodes * policy.num_seeds}
        log(f"{task:28s} pairs seen {seen:3d}  outside the diet {len(outside)}"
            f"{'  ' + '; '.join(f'{k} {v}' for k, v in outside.items()) if outside else ''}"
            f"  ({time.perf_counter() - t0:.0f} s)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry. Bad input: one line on stderr, exit code 2."""
    from envs import diet

    p = argparse.ArgumentParser(prog="python -m toppo_jax.diet_coverage", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="run directory written by toppo_jax.train")
    p.add_argument("--episodes", type=int, default=3, help="episodes per task and seed, on goals 0.. of the diet's goal table (default 3)")
    p.add_argument("--sampled", action="store_true", help="act with policy samples (the training policy) instead of tanh(mean)")
    p.add_argument("--best", action="store_true", help="the best-by-eval checkpoint instead of the latest")
    p.add_argument("--tasks", default=None, help="comma-separated subset of the run's tasks (default: all of them)")
    p.add_argument("--json", default=None, help="write the result here")
    p.add_argument("--grow", action="store_true",
                   help="add the contacts found outside the diet to envs/diet.json (one more survey round per task)")
    args = p.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise ValueError(f"--episodes {args.episodes} is not valid; it must be > 0")
        policy = load_policy(args.run, best=args.best)
        tasks = policy.tasks if args.tasks is None else tuple(t.strip() for t in args.tasks.split(",") if t.strip())
        bad = [t for t in tasks if t not in policy.tasks]
        if bad:
            raise ValueError(f"--tasks {','.join(bad)}: not tasks of this run; valid: {', '.join(policy.tasks)}")
        for task in tasks:
            diet.entry(task)
    except (ValueError, FileNotFoundError, diet.NoDietError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = run_coverage(policy, tasks, args.episodes, args.sampled)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"run": str(args.run), "checkpoint_step": policy.step, "sampled": args.sampled,
                       "seeds": list(policy.seeds), "tasks": result}, f, indent=1)
    if args.grow:
        source = f"policy of {args.run} at step {policy.step} ({'samples' if args.sampled else 'tanh(mean)'})"
        for task, res in result.items():
            if res["outside"]:
                grown = diet.grow(task, res, source)
                print(f"{task:28s} grown: {len(grown['pairs'])} pairs (envs/diet.json)")
        return 0
    return 1 if any(r["outside"] for r in result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
