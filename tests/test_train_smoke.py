"""End-to-end smoke: `python -m toppo_jax.train --tasks mt50` on the real port (one env per task, one
short chunk) writes a config and metrics with the contract-2 keys, and evaluation runs the
Meta-World protocol on all 50 tasks."""

import json

import envs
from toppo_jax import train

# The XLA CPU backend's optimisations only lengthen the compile of this one-chunk run.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def test_train_cli_on_the_real_port_mt50(tmp_path):
    out = tmp_path / "run"
    argv = [
        "--tasks", "mt50", "--seed", "0", "--total-env-steps", "500", "--out", str(out),
        "--envs-per-task", "1", "--rollout-length", "10", "--num-epochs", "1", "--num-minibatches", "2",
        "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--eval-episodes", "1", "--eval-every", "0",
        "--no-wandb", "--no-videos",
    ]  # fmt: skip
    assert train.main(argv, compiler_options=FAST_COMPILE) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["tasks"] == list(envs.MT50) and len(config["tasks"]) == 50
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["env_steps"] for line in lines] == [500]
    last = lines[-1]
    for key in ("sps", "perf/compile_s", "perf/wall_s", "perf/eval_s", "train/value_loss", "train/policy_loss", "eval/success_mean", "eval/success_worst_10",
                "eval/success/reach", "eval/success/stick-pull", "train/popart_sigma/assembly"):  # fmt: skip
        assert key in last, key
    assert 0.0 <= last["eval/success_mean"] <= 1.0
