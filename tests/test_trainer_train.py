"""The trainer on the fake multi-task env: one jitted chunk, switches, vmapped seeds, evaluation, main()."""

import json

import conftest_fake_env as fake
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toppo_jax import config as cfg
from toppo_jax import learner, loop, policy, popart, train

TASKS4 = fake.TASKS[:4]
ENVS_PER_TASK, LENGTH, K = 4, 10, 2


def small_config(**toppo):
    return cfg.replace(
        cfg.Config(),
        env={"tasks": "fake4", "envs_per_task": ENVS_PER_TASK},
        ppo={"rollout_length": LENGTH, "num_epochs": 2, "num_minibatches": 4},
        network={"actor_hidden": (32, 32), "critic_hidden": (32, 32)},
        toppo=toppo,
        train={"iterations_per_chunk": K},
    )


def _make(config, tasks=TASKS4, eval_tasks=None):
    env = fake.make_fake_multitask(tasks, ENVS_PER_TASK, episode_length=15)
    trainer = learner.make_train(config, env)
    if eval_tasks is None:
        return trainer
    eval_env = fake.make_fake_multitask(eval_tasks, 50, eval_mode=True, episode_length=15)
    evaluate, noisy = (policy.on_train_state(policy.make_evaluate(eval_env, trainer.networks, stochastic=s)) for s in (False, True))
    return trainer, evaluate, noisy


@pytest.fixture(scope="module")
def toppo_run():
    """The default TOPPO switches (PopArt, LN critic, PCGrad actor, CAGrad critic): init and one chunk."""
    trainer = _make(small_config())
    state = fake.fast_jit(trainer.init)(jax.random.PRNGKey(0))
    initial = jax.device_get(state)
    new_state, metrics = fake.fast_jit(trainer.train_chunk, donate_argnums=0)(state)
    return trainer, initial, jax.device_get(new_state), jax.device_get(metrics)


# Plain multi-task PPO (PopArt and LN off, mean gradients) with one critic head per task: the same
# program as main()'s smoke run below, so the persistent compilation cache compiles it once.
SWITCHES_OFF_FLAGS = [
    "--no-popart", "--no-critic-layer-norm", "--critic-heads", "per_task",
    "--actor-combiner", "mean", "--critic-combiner", "mean",
]  # fmt: skip


@pytest.fixture(scope="module")
def switches_off_trainer():
    config = small_config(popart=False, critic_layer_norm=False, actor_combiner="mean", critic_combiner="mean")
    trainer = _make(cfg.replace(config, network={"critic_heads": "per_task"}))
    return trainer, fake.fast_jit(trainer.train_chunk, donate_argnums=0)


def test_chunk_counts_steps_and_samples(toppo_run):
    trainer, initial, state, metrics = toppo_run
    num_envs = len(TASKS4) * ENVS_PER_TASK
    assert trainer.env_steps_per_chunk == K * LENGTH * num_envs
    assert int(initial.env_steps) == 0 and int(state.env_steps) == K * LENGTH * num_envs
    assert int(state.iteration) == K and int(metrics["env_steps"]) == int(state.env_steps)
    assert float(state.obs_stats.count) == K * LENGTH * num_envs  # every rollout obs, once
    assert state.obs_stats.mean.shape == (39,)  # the one-hot task id is not normalised
    # One PopArt statistics update per iteration, from that iteration's targets.
    np.testing.assert_array_equal(state.popart.count, np.full(4, float(K)))
    # 15-step episodes, staggered starts: every env ends one or two episodes in 20 steps.
    assert metrics["episodes"].shape == (4,) and np.all(metrics["episodes"] >= ENVS_PER_TASK)


def test_chunk_metrics_are_finite_and_named_per_task(toppo_run):
    trainer, _, state, metrics = toppo_run
    for key, value in metrics.items():
        assert np.all(np.isfinite(value)), key
    for key in ("grad_norm", "actor_grad_norm", "popart_sigma", "popart_mean", "episodes", "successes"):
        assert metrics[key].shape == (4,), key
    named = loop.chunk_metrics(metrics, trainer.task_names)
    for key in ("train/value_loss", "train/policy_loss", "train/entropy", "train/d1", "train/d2", "train/d1_shared",
                "train/d2_shared", "train/success_mean"):
        assert key in named
    assert named["train/popart_sigma/fake-reach-2"] == pytest.approx(float(metrics["popart_sigma"][2]))
    np.testing.assert_allclose(metrics["popart_sigma"], popart.popart_sigma(state.popart), rtol=1e-6)
    assert all(f"train/grad_norm/{t}" in named for t in TASKS4)


def test_chunk_updates_params_and_popart_scales_follow_reward_scales(toppo_run):
    _, initial, state, metrics = toppo_run
    for before, after in zip(jax.tree_util.tree_leaves(initial.actor_params), jax.tree_util.tree_leaves(state.actor_params)):
        assert not np.allclose(before, after)
    # Task rewards are scaled 0.1, 1, 10, 0.1: the return statistics order the same way.
    mean = np.asarray(state.popart.mean)
    assert mean[2] > mean[1] > max(mean[0], mean[3])
    # The per-task affine of the scalar head is trained (and ART-rescaled after the first update).
    affine = state.critic_params["params"]["popart"]
    assert affine["scale"].shape == (4,) and not np.allclose(affine["scale"], 1.0)
    assert not np.allclose(affine["shift"], 0.0)


def _one_chunk(config):
    trainer = _make(config)
    return jax.device_get(fake.fast_jit(trainer.train_chunk, donate_argnums=0)(fake.fast_jit(trainer.init)(jax.random.PRNGKey(0))))


def test_advantage_norm_per_minibatch_differs_from_per_iteration_only_with_several_minibatches(toppo_run):
    # One minibatch: it is the iteration's batch, so both normalisations train the same parameters.
    one = {"num_minibatches": 1, "num_epochs": 1}
    whole = _one_chunk(cfg.replace(small_config(), ppo=one))[0].actor_params
    minib = _one_chunk(cfg.replace(small_config(), ppo={**one, "advantage_norm": "minibatch"}))[0].actor_params
    for a, b in zip(jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(minib)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Four minibatches (the fixture's config): each is normalised on its own statistics.
    _, _, state, _ = toppo_run
    four = _one_chunk(cfg.replace(small_config(), ppo={"advantage_norm": "minibatch"}))[0].actor_params
    assert not all(np.allclose(a, b) for a, b in zip(jax.tree_util.tree_leaves(state.actor_params), jax.tree_util.tree_leaves(four)))


def test_switches_off_leave_popart_statistics_untouched(switches_off_trainer):
    trainer, chunk = switches_off_trainer
    state = fake.fast_jit(trainer.init)(jax.random.PRNGKey(0))
    assert state.critic_params["params"]["head"]["kernel"].shape == (32, 4)  # one head per task
    assert not any("LayerNorm" in name for name in state.critic_params["params"])
    state, metrics = chunk(state)
    np.testing.assert_array_equal(state.popart.mean, 0.0)
    np.testing.assert_array_equal(metrics["popart_sigma"], np.ones(4))
    np.testing.assert_array_equal(state.popart.count, 0.0)


def test_vmapped_seeds_equal_separate_runs(switches_off_trainer):
    trainer, chunk = switches_off_trainer
    keys = jnp.stack([jax.random.PRNGKey(3), jax.random.PRNGKey(4)])
    batched_chunk = fake.fast_jit(jax.vmap(trainer.train_chunk), donate_argnums=0)
    batched, batched_metrics = batched_chunk(fake.fast_jit(jax.vmap(trainer.init))(keys))
    single, single_metrics = chunk(fake.fast_jit(trainer.init)(keys[1]))
    for a, b in zip(jax.tree_util.tree_leaves(batched.actor_params), jax.tree_util.tree_leaves(single.actor_params)):
        np.testing.assert_allclose(a[1], b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batched_metrics["value_loss"][1], single_metrics["value_loss"], rtol=1e-4)
    assert not np.allclose(batched_metrics["value_loss"][0], batched_metrics["value_loss"][1])


def test_evaluation_protocol_on_goals_at_and_away_from_the_start():
    # With the actor's head zeroed the mean action is 0: the point never moves. Every goal of
    # "fake-home" is at the start (success on every episode); the reach tasks' goals are >= 0.1 away.
    tasks = fake.TASKS  # four reach tasks, one more reach task and fake-home
    trainer, evaluate, evaluate_stochastic = _make(small_config(actor_combiner="mean", critic_combiner="mean"), tasks=tasks, eval_tasks=tasks)
    state = fake.fast_jit(trainer.init)(jax.random.PRNGKey(0))
    head = state.actor_params["params"]["head"]
    zero_head = jax.tree_util.tree_map(jnp.zeros_like, head)
    state = state.replace(actor_params={"params": {**state.actor_params["params"], "head": zero_head}})
    per_task = np.asarray(fake.fast_jit(evaluate)(state))
    np.testing.assert_array_equal(per_task, [0, 0, 0, 0, 0, 1])
    summary = policy.summarize(per_task, tasks, (1, 3, 6, 10))
    assert summary["eval/success_mean"] == pytest.approx(1 / 6)
    assert summary["eval/success_worst_1"] == 0.0 and summary["eval/success_worst_6"] == pytest.approx(1 / 6)
    assert "eval/success_worst_10" not in summary and summary["eval/success/fake-home"] == 1.0
    # Acting with samples (std 1 with the zeroed head) the point wanders: some episodes leave home for
    # good, some reach a goal; the same key gives the same result.
    noisy = fake.fast_jit(evaluate_stochastic)
    sampled = np.asarray(noisy(state))
    assert sampled[-1] < 1.0 and sampled[:-1].sum() > 0.0, sampled
    np.testing.assert_array_equal(sampled, np.asarray(noisy(state)))


def test_worst_k_by_hand():
    per_task = np.array([1.0, 0.5, 0.0, 0.25])
    summary = policy.summarize(per_task, ["a", "b", "c", "d"], (1, 2, 3, 4))
    assert summary["eval/success_mean"] == pytest.approx(0.4375)
    assert summary["eval/success_worst_1"] == 0.0
    assert summary["eval/success_worst_2"] == pytest.approx(0.125)
    assert summary["eval/success_worst_3"] == pytest.approx(0.25)
    assert summary["eval/success_worst_4"] == pytest.approx(0.4375)  # k = T is the mean


@pytest.mark.parametrize("num_seeds", [1, 2])
def test_main_writes_config_and_metrics(tmp_path, num_seeds, capsys):
    out = tmp_path / "run"
    argv = [
        "--tasks", "fake4", "--total-env-steps", "1500", "--out", str(out),
        "--envs-per-task", str(ENVS_PER_TASK), "--rollout-length", str(LENGTH), "--iterations-per-chunk", str(K),
        "--num-epochs", "2", "--num-minibatches", "4", "--actor-hidden", "32", "32", "--critic-hidden", "32", "32",
        "--eval-every", "640", "--eval-episodes", "5", "--worst-k", "1", "2", "--num-seeds", str(num_seeds), "--no-wandb",
        "--log-every", "2", *SWITCHES_OFF_FLAGS,
    ]  # fmt: skip
    code = train.main(
        argv,
        make_env=fake.fake_factory(episode_length=15),
        task_catalog=(fake.GROUPS, fake.TASKS),
        compiler_options=fake.FAST_COMPILE,
    )
    assert code == 0
    # stderr is not a terminal here: a plain progress line every 2 chunks and at the last, not a silent bar.
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("toppo ")]
    assert [line.split(" env steps")[0] for line in progress] == ["toppo 640/1,600", "toppo 1,280/1,600", "toppo 1,600/1,600"]
    assert " sps | eval " in progress[-1] and "worst-1 " in progress[-1] and "ETA 0:00:00" in progress[-1]
    saved = json.loads((out / "config.json").read_text())
    seeds = list(range(num_seeds))
    assert saved["tasks"] == list(TASKS4) and saved["seeds"] == seeds
    assert cfg.from_dict(saved["config"]).network.critic_heads == "per_task"
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # One line per seed per chunk of 2 x 10 x 16 = 320 env steps; ceil(1500 / 320) = 5 chunks;
    # evaluations after crossing 640 and 1280, and at the end.
    assert [(line["seed"], line["env_steps"]) for line in lines] == [(s, 320 * i) for i in range(1, 6) for s in seeds]
    assert [line["env_steps"] for line in lines if "eval/success_mean" in line] == [
        e for e in (640, 1280, 1600) for _ in seeds
    ]
    if num_seeds == 2:  # the seeds really differ
        assert lines[0]["train/value_loss"] != lines[1]["train/value_loss"]
    for line in lines:
        assert line["sps"] > 0
        for key in ("train/value_loss", "train/policy_loss", "train/entropy", "train/d1", "train/d2"):
            assert np.isfinite(line[key]), key
        for task in TASKS4:
            assert f"train/grad_norm/{task}" in line and f"train/popart_sigma/{task}" in line
    last = lines[-1]
    assert {"eval/success_worst_1", "eval/success_worst_2"} <= set(last)
    assert all(f"eval/success/{task}" in last for task in TASKS4)
    assert "perf/compile_s" in lines[0]


@pytest.mark.slow
def test_toppo_learns_the_fake_reaching_tasks():
    config = cfg.replace(
        small_config(popart_beta=1e-2),
        env={"envs_per_task": 16},
        ppo={"rollout_length": 20, "num_epochs": 4, "num_minibatches": 4, "learning_rate": 1e-3},
        network={"actor_hidden": (64, 64), "critic_hidden": (64, 64)},
        train={"iterations_per_chunk": 10},
    )
    env = fake.make_fake_multitask(TASKS4, 16)
    eval_env = fake.make_fake_multitask(TASKS4, 50, eval_mode=True)
    trainer = learner.make_train(config, env)
    state = fake.fast_jit(trainer.init)(jax.random.PRNGKey(0))
    evaluate = fake.fast_jit(policy.on_train_state(policy.make_evaluate(eval_env, trainer.networks)))
    assert float(np.mean(evaluate(state))) < 0.1
    chunk = fake.fast_jit(trainer.train_chunk, donate_argnums=0)
    for _ in range(8):  # 8 x 10 iterations x 20 steps x 64 envs = 102,400 env steps
        state, _ = chunk(state)
    per_task = np.asarray(evaluate(state))
    assert per_task.mean() >= 0.9 and per_task.min() >= 0.7, per_task


def test_shared_critic_drops_only_the_per_task_output_layer():
    from toppo_jax import networks as nets

    for per_task_heads, popart_affine, dropped in ((False, True, "popart"), (True, True, "head"), (False, False, None)):
        networks = nets.make_networks(9, 4, 5, critic_hidden=(8,), per_task_heads=per_task_heads, popart_affine=popart_affine)
        _, params = jax.eval_shape(networks.init, jax.random.PRNGKey(0))
        kept = set(learner.shared_critic(params)["params"])
        assert kept == set(params["params"]) - {dropped}, (per_task_heads, popart_affine)
