"""The in-jit sweep (`--sweep`): a grid of scalar hyperparameters x seeds vmapped through one compile."""

import json

import conftest_fake_env as fake
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_trainer_train import ENVS_PER_TASK, K, LENGTH, SWITCHES_OFF_FLAGS, TASKS4, small_config

from toppo_jax import config as cfg
from toppo_jax import learner, train


def test_sweep_points_form_the_grid_first_name_slowest():
    assert cfg.sweep_points("") == []
    assert cfg.sweep_points("learning_rate=1e-4,3e-4 cagrad_c=0.2") == [
        {"learning_rate": 1e-4, "cagrad_c": 0.2},
        {"learning_rate": 3e-4, "cagrad_c": 0.2},
    ]
    assert len(cfg.sweep_points("learning_rate=1,2,3;entropy_coef=0,1")) == 6


@pytest.mark.parametrize(
    "spec, mentions",
    [
        ("learning_rte=1e-4", "did you mean learning_rate"),
        ("clip_eps=0.2", "is not sweepable; choose from: learning_rate"),
        ("learning_rate", "is not NAME=v1,v2"),
        ("learning_rate=a,b", "values must be numbers"),
        ("learning_rate=1e-4 learning_rate=2e-4", "is given twice"),
        ("learning_rate=-1", "--learning-rate -1.0 is not valid"),
        ("popart_beta=1.5", "--popart-beta 1.5 is not valid"),
    ],
)
def test_bad_sweeps_are_one_line_errors(spec, mentions):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.validate(cfg.replace(cfg.Config(), train={"sweep": spec}))
    assert mentions in str(err.value) and "\n" not in str(err.value)


def test_a_swept_member_equals_the_run_with_that_value():
    """vmapping over (seed, learning rate, entropy coefficient, CAGrad c) changes nothing but batching."""
    config = small_config(actor_combiner="pcgrad", critic_combiner="cagrad")
    env = fake.make_fake_multitask(TASKS4, ENVS_PER_TASK, episode_length=15)
    trainer = learner.make_train(config, env)
    points = [{"learning_rate": 1e-3, "entropy_coef": 0.0, "cagrad_c": 0.2}, {"learning_rate": 3e-4, "entropy_coef": 0.01, "cagrad_c": 0.9}]
    hp = {k: jnp.asarray([p[k] for p in points], jnp.float32) for k in points[0]}
    keys = jnp.stack([jax.random.PRNGKey(7)] * 2)
    batched, batched_metrics = fake.fast_jit(jax.vmap(trainer.train_chunk))(fake.fast_jit(jax.vmap(trainer.init))(keys, hp))
    for i, point in enumerate(points):
        other = learner.make_train(cfg.with_hparams(config, point), env)  # the value baked into the config instead
        single, single_metrics = fake.fast_jit(other.train_chunk)(fake.fast_jit(other.init)(keys[i]))
        for a, b in zip(jax.tree_util.tree_leaves(batched.actor_params), jax.tree_util.tree_leaves(single.actor_params)):
            np.testing.assert_allclose(a[i], b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batched_metrics["value_loss"][i], single_metrics["value_loss"], rtol=1e-4)
    assert not np.allclose(batched_metrics["entropy"][0], batched_metrics["entropy"][1])


def test_sweep_run_logs_every_member_and_plots_the_sweep(tmp_path):
    out = tmp_path / "run"
    argv = [
        "--tasks", "fake4", "--total-env-steps", "640", "--out", str(out),
        "--envs-per-task", str(ENVS_PER_TASK), "--rollout-length", str(LENGTH), "--iterations-per-chunk", str(K),
        "--num-epochs", "2", "--num-minibatches", "4", "--actor-hidden", "32", "32", "--critic-hidden", "32", "32",
        "--eval-every", "640", "--eval-episodes", "5", "--worst-k", "1", "--num-seeds", "2", "--no-wandb",
        "--sweep", "learning_rate=1e-3,1e-4", *SWITCHES_OFF_FLAGS,
    ]  # fmt: skip
    code = train.main(argv, make_env=fake.fake_factory(episode_length=15), task_catalog=(fake.GROUPS, fake.TASKS), compiler_options=fake.FAST_COMPILE)
    assert code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["seeds"] == [0, 1, 0, 1] and saved["sweep"] == [{"learning_rate": 1e-3}, {"learning_rate": 1e-4}]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(x["env_steps"], x["member"], x["seed"], x["hp/learning_rate"]) for x in lines] == [
        (steps, m, m % 2, 1e-3 if m < 2 else 1e-4) for steps in (320, 640) for m in range(4)
    ]
    assert all("eval/success_mean" in x for x in lines[4:])
    assert (out / "plots" / "sweep.png").stat().st_size > 10_000
    assert lines[4]["train/value_loss"] != lines[6]["train/value_loss"]  # the learning rates differ


# ----------------------------------------------------------------------- sweep files (experiments/sweep.py)

from pathlib import Path  # noqa: E402

from experiments import sweep as sweeps  # noqa: E402

FAKE_FLAGS = {
    "tasks": {"value": "fake4"}, "total-env-steps": {"value": 320}, "envs-per-task": {"value": ENVS_PER_TASK},
    "rollout-length": {"value": LENGTH}, "iterations-per-chunk": {"value": K}, "num-epochs": {"value": 1},
    "num-minibatches": {"value": 4}, "actor-hidden": {"value": [32, 32]}, "critic-hidden": {"value": [32, 32]},
    "eval-episodes": {"value": 5}, "worst-k": {"value": [1]}, "wandb": {"value": False}, "videos": {"value": False},
}  # fmt: skip


def fake_train_main(argv):
    return train.main(argv, make_env=fake.fake_factory(episode_length=15), task_catalog=(fake.GROUPS, fake.TASKS), compiler_options=fake.FAST_COMPILE)


def test_committed_sweep_files_load_and_expand():
    files = sorted(Path("experiments/sweeps").glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        spec = sweeps.load(path)
        assert sweeps.points(spec)
        for point in sweeps.points(spec):
            cfg.validate(train.parse_args(sweeps.to_argv(point)))  # every point is a valid train command
    spec = sweeps.load("experiments/sweeps/mt10_critic_combiner.yaml")
    assert len(sweeps.points(spec)) == 8 and sweeps.in_jit_form(spec) is None  # combiners need their own compile
    fixed, sweep_spec = sweeps.in_jit_form(sweeps.load("experiments/sweeps/mt10_cagrad_c_injit.yaml"))
    assert sweep_spec == "cagrad_c=0.2,0.5,0.9 popart_beta=0.01,0.05,0.2" and "--num-seeds" in fixed


def test_bad_sweep_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: gird\nparameters: {learning-rate: {values: [1]}}\n")
    with pytest.raises(sweeps.SweepError, match="method 'gird' is not valid; choose one of: grid, random, bayes"):
        sweeps.load(bad)
    bad.write_text("method: grid\nparameters: {learning-rate: {min: 0.1, max: 1}}\n")
    with pytest.raises(sweeps.SweepError, match="grid search needs `values`"):
        sweeps.load(bad)
    assert sweeps.main(["local", str(tmp_path / "missing.yaml")]) == 2


def test_random_points_respect_ranges_and_log_scale():
    spec = {"method": "random", "parameters": {"learning-rate": {"min": 1e-5, "max": 1e-2, "distribution": "log_uniform_values"},
                                               "critic-combiner": {"values": ["mean", "cagrad"]}}}  # fmt: skip
    drawn = sweeps.points(spec, count=200)
    lrs = np.array([p["learning-rate"] for p in drawn])
    assert len(drawn) == 200 and lrs.min() >= 1e-5 and lrs.max() <= 1e-2
    assert 0.3 < np.mean(lrs < 3.16e-4) < 0.7  # log-uniform: half the draws below the geometric midpoint
    assert {p["critic-combiner"] for p in drawn} == {"mean", "cagrad"}


def test_local_grid_runs_every_point_and_ranks_them(tmp_path):
    spec = {"method": "grid", "parameters": {**FAKE_FLAGS, "critic-combiner": {"values": ["mean", "pcgrad"]}}}
    rows = sweeps.run_local(spec, "grid", train_main=fake_train_main, root=tmp_path, log=lambda *_: None)
    assert sorted(r["point"] for r in rows) == ["critic-combiner=mean", "critic-combiner=pcgrad"]
    assert all(r["env_steps"] == 320 and 0.0 <= r["success_mean"] <= 1.0 for r in rows)
    assert rows[0]["success_mean"] >= rows[1]["success_mean"]
    assert (tmp_path / "grid" / "000" / "metrics.jsonl").exists() and (tmp_path / "grid" / "summary.json").exists()


def test_local_scalar_grid_becomes_one_in_jit_run(tmp_path):
    spec = {"method": "grid", "parameters": {**FAKE_FLAGS, "learning-rate": {"values": [1e-3, 1e-4]}, "entropy-coef": {"values": [0.0, 0.01]}}}
    rows = sweeps.run_local(spec, "injit", train_main=fake_train_main, root=tmp_path, log=lambda *_: None)
    assert len(rows) == 4 and list((tmp_path / "injit").iterdir()) != []
    assert sorted(r["point"] for r in rows)[0] == "entropy_coef=0, learning_rate=0.0001"
    saved = json.loads((tmp_path / "injit" / "in-jit" / "config.json").read_text())
    assert len(saved["sweep"]) == 4


def test_agent_entry_names_the_run_dir_by_sweep_and_run_ids(monkeypatch):
    seen = {}
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")
    monkeypatch.setenv("WANDB_RUN_ID", "run7")
    monkeypatch.setattr(train, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    assert sweeps.run_point(["--learning_rate=0.0003", "--actor-hidden=[64, 64]", "--no-wandb"]) == 0
    assert seen["argv"] == ["--learning-rate", "0.0003", "--actor-hidden", "64", "64", "--no-wandb", "--out", "runs/sweeps/abc123/run7"]
