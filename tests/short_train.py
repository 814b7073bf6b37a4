"""A shortened `python -m toppo_jax.train` on the real port for one physics backend (slow tests of
the MJX backends): rollout, update, checkpoint and the evaluation of every task, end to end."""

from __future__ import annotations

import json


def run_short_training(out, tasks: str, impl: str, total_env_steps: int, envs_per_task: int = 1) -> None:
    """Train ``tasks`` on ``impl`` for ``total_env_steps`` (rollouts of 10 steps) into
    ``out``; assert the run recorded the backend and ended with an evaluation."""
    from toppo_jax import train

    argv = [
        "--tasks", tasks, "--impl", impl, "--seed", "0", "--total-env-steps", str(total_env_steps), "--out", str(out),
        "--envs-per-task", str(envs_per_task), "--rollout-length", "10", "--num-epochs", "1", "--num-minibatches", "2",
        "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--eval-episodes", "1", "--eval-every", "0",
        "--no-wandb", "--no-videos",
    ]  # fmt: skip
    assert train.main(argv, compiler_options={"xla_backend_optimization_level": 0}) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["env"]["impl"] == impl and config["physics"] == impl
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["env_steps"] == total_env_steps and 0.0 <= last["eval/success_mean"] <= 1.0
