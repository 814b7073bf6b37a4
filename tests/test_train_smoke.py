"""End-to-end smoke: `python -m toppo_jax.train` on the real port (two tasks, tiny budget) writes a
config and metrics with the contract-2 keys, and evaluation runs the Meta-World protocol."""

import json

from toppo_jax import train


def test_train_cli_on_the_real_port(tmp_path):
    out = tmp_path / "run"
    argv = [
        "--tasks", "reach,drawer-open", "--seed", "0", "--total-env-steps", "400", "--out", str(out),
        "--envs-per-task", "2", "--rollout-length", "50", "--num-epochs", "1", "--num-minibatches", "2",
        "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--eval-episodes", "2", "--eval-every", "0",
    ]  # fmt: skip
    assert train.main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["tasks"] == ["reach", "drawer-open"]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["env_steps"] for line in lines] == [200, 400]
    last = lines[-1]
    for key in ("sps", "train/value_loss", "train/policy_loss", "eval/success_mean", "eval/success_worst_1",
                "eval/success/reach", "eval/success/drawer-open"):
        assert key in last, key
    assert 0.0 <= last["eval/success_mean"] <= 1.0
