"""The in-jit sweep (`--sweep`): a grid of scalar hyperparameters x seeds vmapped through one compile."""

import json

import conftest_fake_env as fake
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_trainer_train import ENVS_PER_TASK, K, LENGTH, SWITCHES_OFF_FLAGS, TASKS4, small_config

from toppo_jax import config as cfg
from toppo_jax import train


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
    trainer = train.make_train(config, env)
    points = [{"learning_rate": 1e-3, "entropy_coef": 0.0, "cagrad_c": 0.2}, {"learning_rate": 3e-4, "entropy_coef": 0.01, "cagrad_c": 0.9}]
    hp = {k: jnp.asarray([p[k] for p in points], jnp.float32) for k in points[0]}
    keys = jnp.stack([jax.random.PRNGKey(7)] * 2)
    batched, batched_metrics = fake.fast_jit(jax.vmap(trainer.train_chunk))(fake.fast_jit(jax.vmap(trainer.init))(keys, hp))
    for i, point in enumerate(points):
        other = train.make_train(cfg.with_hparams(config, point), env)  # the value baked into the config instead
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
