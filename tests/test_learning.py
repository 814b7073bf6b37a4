"""Learning checks on the real port (CPU, mujoco backend), marked slow: `make test-slow`.

Budgets were measured on 2 CPU cores (2026-11-25): MT1 reach reached 0.92 eval success (50 goals,
deterministic) at 300K env steps in 7.7 minutes with these settings.
"""

import json

import pytest

from toppo_jax import train

REACH_FLAGS = [
    "--envs-per-task", "16", "--rollout-length", "125", "--num-epochs", "8", "--num-minibatches", "4",
    "--eval-every", "50000", "--iterations-per-chunk", "5",
]  # fmt: skip


@pytest.mark.slow
def test_mt1_reach_reaches_090_eval_success_within_400k_steps(tmp_path):
    out = tmp_path / "reach"
    argv = ["--tasks", "reach", "--seed", "0", "--total-env-steps", "400000", "--out", str(out), *REACH_FLAGS]
    assert train.main(argv) == 0
    evals = [json.loads(line) for line in open(out / "metrics.jsonl") if "eval/success_mean" in line]
    best = max(e["eval/success_mean"] for e in evals)
    assert best >= 0.9, [e["eval/success_mean"] for e in evals]


@pytest.mark.slow
def test_three_tasks_each_learn(tmp_path):
    """reach, drawer-open and drawer-close: every task's eval success rises above 0.5.

    Budget: 1M env steps per task. Measured on 2 CPU cores (2026-12-02): drawer-open alone (same
    settings) first solves its 50 eval goals at 700K-900K env steps (eval 0.00 through 600K, 0.18 at
    700K, 1.00 at 900K), so the earlier budget of 300K per task could not pass on drawer-open with
    TOPPO or with plain MT-PPO; reach and drawer-close pass within 300K. At 3M (2026-12-02) the
    maxima were reach 1.00, drawer-open 0.62 (0 at most evaluations: see README), drawer-close 1.00.
    With the log-std bound at 0 (the default since 2026-12-02; these flags, measured the same day):
    drawer-open 0.00 through 1.02M, then 0.38, 0.64, 1.00, 0.64, 0.02, 0.36, 0.84, 0.86 at 3M.
    """
    out = tmp_path / "three"
    argv = ["--tasks", "reach,drawer-open,drawer-close", "--seed", "0", "--total-env-steps", "3000000", "--out", str(out),
            *REACH_FLAGS, "--eval-every", "250000"]  # fmt: skip
    assert train.main(argv) == 0
    evals = [json.loads(line) for line in open(out / "metrics.jsonl") if "eval/success_mean" in line]
    for task in ("reach", "drawer-open", "drawer-close"):
        assert max(e[f"eval/success/{task}"] for e in evals) > 0.5, (task, [e[f"eval/success/{task}"] for e in evals])
