"""Videos of the port and the --reference evaluation on official Meta-World, on the real env.

The reference adapter (one-hot id, normaliser, tanh(mean)) must drive official Meta-World exactly as
the port's evaluation drives the port: with the same random policy, the two trajectories agree to
solver tolerance, and with the one-hot of another task they do not.
"""

import conftest_fake_env  # noqa: F401  (repository root on sys.path)
import imageio.v2 as imageio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import parity
from toppo_jax import config as cfg
from toppo_jax import evaluate, filming, learner, networks as nets, ppo

TASKS = ("reach", "push")
STEPS = 40


def small_actor(num_tasks, seed=0, bias=None, task_weight=1.0):
    """A random actor; `bias` (8: mean and log-std) on its head gives it a steady drift and
    `task_weight` scales its first layer's weights on the one-hot task id."""
    config = cfg.replace(cfg.Config(), network={"actor_hidden": (32, 32), "critic_hidden": (32, 32)})
    networks = learner.build_networks(config, 39 + num_tasks, 4, num_tasks)
    actor, _ = networks.init(jax.random.PRNGKey(seed))
    params = dict(actor["params"])
    if bias is not None:
        params["head"] = {"kernel": params["head"]["kernel"], "bias": jnp.asarray(bias, jnp.float32)}
    first = min(k for k in params if k.startswith("Dense"))
    params[first] = {**params[first], "kernel": params[first]["kernel"].at[39:].multiply(task_weight)}
    return networks, {"params": params}


def random_normaliser(seed=1):
    """Statistics far from the identity, so a policy that skipped the normaliser would act differently."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    mean = 0.3 * jax.random.normal(k1, (39,))
    var = jnp.exp(jax.random.normal(k2, (39,)))
    return ppo.RunningStats(count=jnp.float32(100.0), mean=mean, m2=var * 100.0)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio's ffmpeg reader: fork + exec
def test_video_renders_the_port_state_to_an_mp4(tmp_path):
    gl, reason = filming.headless_gl()
    if gl is None:
        pytest.skip(reason)
    networks, actor = small_actor(1, bias=[2.0, 0, 0, 0, 0, 0, 0, 0])  # moves the hand along +x
    model, states, goals, success = filming.policy_rollout(
        "reach", ["reach"], 0, "mujoco", networks.actor.apply, actor, ppo.init_running_stats(39), steps=30
    )
    assert states.shape == (30, envs.render.state_size(model)) and np.abs(states[-1] - states[0]).max() > 0.05
    path = filming.render_mp4(model, states, goals, success, tmp_path / "reach.mp4", size=64, every=1)
    frames = np.stack([frame for frame in imageio.get_reader(path).iter_data()])
    assert frames.shape == (30, 64, 64, 3)
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1.0  # the arm moved on screen
    assert not list(tmp_path.glob("*.tmp.mp4"))


def _port_obs(networks, actor, stats, goals_per_task):
    """The port's evaluation step (as in policy.make_evaluate), recording observations."""
    env = envs.make_multitask(list(TASKS), goals_per_task, seed=0, staggered=False, eval_mode=True)

    def step(state, _):
        mean, _ = networks.actor.apply(actor, ppo.normalize_obs(stats, state.obs))
        nxt = env.step(state, nets.deterministic_action(mean))
        return nxt, (nxt.info["final_obs"][:, :39], nxt.info["step_info"]["success"])

    state = env.reset(jax.random.PRNGKey(0))
    _, (obs, success) = jax.jit(lambda s: jax.lax.scan(step, s, None, length=STEPS))(state)
    return np.concatenate([np.asarray(state.obs)[None, :, :39], np.asarray(obs)]), np.asarray(success).any(axis=0)


def test_reference_adapter_drives_official_metaworld_like_the_port():
    networks, actor = small_actor(len(TASKS), seed=3, bias=[0.3, 0.3, -0.2, 0.2, 0, 0, 0, 0], task_weight=20.0)
    stats = random_normaliser()
    goals = 2
    port_obs, _ = _port_obs(networks, actor, stats, goals)
    act = evaluate.make_policy_fn(networks, actor, stats, len(TASKS))
    official = evaluate.reference_rollouts("push", TASKS, goals, 0, act, steps=STEPS)
    port_push = port_obs[:, goals:]  # env i of task t is row t * goals + i
    assert official["obs"].shape == port_push.shape == (STEPS + 1, goals, 39)
    # Solver tolerance: the port starts each step's solver cold where official warm-starts it
    # (docs/design.md); the object quaternion differs by ~2e-5 after contact.
    np.testing.assert_allclose(official["obs"], port_push, atol=1e-4)
    assert np.abs(port_push[-1, :, :3] - port_push[0, :, :3]).max() > 0.05  # the policy moved the hand

    def wrong_task(obs, task_index):
        return act(obs, 0)  # reach's one-hot on push

    wrong = evaluate.reference_rollouts("push", TASKS, goals, 0, wrong_task, steps=STEPS)
    assert np.abs(wrong["obs"] - port_push).max() > 1e-2
    unnormalised = evaluate.make_policy_fn(networks, actor, ppo.init_running_stats(39), len(TASKS))
    skipped = evaluate.reference_rollouts("push", TASKS, goals, 0, unnormalised, steps=STEPS)
    assert np.abs(skipped["obs"] - port_push).max() > 1e-2


def test_reference_rollouts_detect_success_of_the_expert():
    expert = parity.expert("reach")

    def policy(obs, task_index):
        assert task_index == 0
        return np.stack([np.clip(expert.get_action(o), -1, 1) for o in obs]).astype(np.float32)

    result = evaluate.reference_rollouts("reach", ("reach",), 3, 0, policy)
    assert result["success"].tolist() == [True, True, True]
    still = evaluate.reference_rollouts("reach", ("reach",), 3, 0, lambda obs, i: np.zeros((len(obs), 4), np.float32), steps=50)
    assert still["success"].tolist() == [False, False, False]


def test_parallel_reference_workers_equal_one_process():
    """--workers N splits the official envs over N processes; the rollout is the same as in one."""
    expert = parity.expert("push")

    def policy(obs, task_index):
        return np.stack([np.clip(expert.get_action(o), -1, 1) for o in obs]).astype(np.float32)

    one = evaluate.reference_rollouts("push", ("push",), 5, 0, policy, steps=60)
    two = evaluate.reference_rollouts("push", ("push",), 5, 0, policy, steps=60, workers=2)
    np.testing.assert_array_equal(one["obs"], two["obs"])
    np.testing.assert_array_equal(one["success"], two["success"])
