"""envs.gym: the port as a Gymnasium vector env, against official ``gym.make_vec("Meta-World/MT10", ...)``.

Official is compared stepped the way the port's ``mujoco`` backend steps (the solver's warm start
cleared before each control step, as in tests/test_replay.py): obs within 1e-4, reward within 1e-3,
success identical, along 510 steps of seeded random actions across the 500-step time-out (same
goals before and after the auto-reset). Against unmodified (warm-started) official the first 30
steps stay within the replay's warm tolerance, 5e-3.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest

SEED = 0
OBS_TOL, REWARD_TOL, WARM_TOL = 1e-4, 1e-3, 5e-3
STEP_KEYS = ("success", "near_object", "grasp_success", "grasp_reward", "in_place_reward", "obj_to_target", "unscaled_reward")

gym = pytest.importorskip("gymnasium")


@pytest.fixture(scope="module")
def port():
    import envs.gym  # noqa: F401  (registers toppo-jax/*)

    env = gym.make_vec("toppo-jax/MT10", seed=SEED, use_one_hot=True, impl="mujoco")
    yield env
    env.close()


def official(cold: bool):
    import metaworld  # noqa: F401  (registers Meta-World/*)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make_vec("Meta-World/MT10", vector_strategy="sync", seed=SEED, use_one_hot=True)
    if cold:  # step like mujoco.rollout: every control step starts the solver cold
        step = env.step

        def cold_step(actions):
            for e in env.envs:
                e.unwrapped.data.qacc_warmstart[:] = 0
            return step(actions)

        env.step = cold_step
    return env


def actions(n_steps, n_envs=10, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n_steps, n_envs, 4)).astype(np.float32)


def test_import_envs_does_not_import_gymnasium():
    code = "import sys, envs; envs.make_multitask; assert 'gymnasium' not in sys.modules and 'envs.gym' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_ids():
    import envs
    import envs.gym

    assert {"toppo-jax/MT10", "toppo-jax/MT50"} <= set(gym.registry)
    assert {f"toppo-jax/MT1-{t}" for t in envs.TASKS} <= set(gym.registry)
    assert all(gym.spec(i).vector_entry_point is not None for i in envs.gym.ENV_IDS)


def test_spaces_equal_official(port):
    off = official(cold=False)
    assert port.num_envs == off.num_envs == 10
    assert port.single_action_space == off.single_action_space and port.action_space == off.action_space
    ps, os_ = port.single_observation_space, off.single_observation_space
    assert (ps.shape, ps.dtype, port.observation_space.shape) == (os_.shape, os_.dtype, off.observation_space.shape)
    # Bounds equal official's except the goal's: official's Box keeps the goal-hidden bounds [0, 0]
    # (its own observations fall outside), the port's are the tasks' goal bounds (docs/gymnasium.md).
    keep = np.r_[0:36, 39:49]
    np.testing.assert_array_equal(ps.low[keep], os_.low[keep])
    np.testing.assert_array_equal(ps.high[keep], os_.high[keep])
    assert port.metadata["autoreset_mode"] == off.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, _ = off.reset(seed=SEED)
    assert not off.single_observation_space.contains(obs[0])  # the official quirk documented above
    one = gym.make_vec("toppo-jax/MT1-reach", seed=SEED, num_envs=2, impl="mujoco")  # no one-hot: 39-d like official's
    assert one.num_envs == 2 and one.single_observation_space.shape == (39,)
    np.testing.assert_array_equal(one.single_observation_space.low[:36], os_.low[:36])
    off.close()


def test_same_seed_same_actions_equal_official_across_timeout(port):
    """Cold-started official vs port, 510 steps: goals at reset and after the auto-reset, obs, rewards,
    success and every info key, truncation at 500, final_obs and the episode statistics."""
    from envs import assets

    off = official(cold=True)
    o_obs, o_info = off.reset(seed=SEED)
    p_obs, p_info = port.reset(seed=SEED)
    assert o_info == p_info == {}
    table = assets.goal_table("MT10", SEED)

    def official_goal_index():  # which of the 50 tabulated rand_vecs each official sub-env runs
        return [int(np.flatnonzero((table[t] == e.unwrapped._last_rand_vec).all(-1))[0])
                for t, e in zip(port.unwrapped.task_names, off.envs)]

    np.testing.assert_array_equal(port.unwrapped.goal_index, official_goal_index())
    np.testing.assert_allclose(p_obs, o_obs, atol=1e-6)
    for t, a in enumerate(actions(510)):
        o, p = off.step(a), port.step(a)
        where = f"step {t + 1}"
        np.testing.assert_allclose(p[0], o[0], atol=OBS_TOL, err_msg=where)
        np.testing.assert_allclose(p[1], o[1], atol=REWARD_TOL, err_msg=where)
        assert p[1].dtype == o[1].dtype == np.float64 and p[0].dtype == o[0].dtype == np.float32
        np.testing.assert_array_equal(p[2], o[2], err_msg=where)
        np.testing.assert_array_equal(p[3], o[3], err_msg=where)
        assert p[3].all() == (t + 1 == 500) and not p[2].any()
        oi, pi = o[4], p[4]
        assert sorted(oi) == sorted(pi), where
        if t + 1 == 500:
            oi, pi = oi["final_info"], pi["final_info"]
            np.testing.assert_allclose(np.stack(p[4]["final_obs"]), np.stack(o[4]["final_obs"]), atol=OBS_TOL)
            np.testing.assert_array_equal(pi["episode"]["l"], oi["episode"]["l"])
            np.testing.assert_allclose(pi["episode"]["r"], oi["episode"]["r"], rtol=1e-4)
            assert sorted(pi["episode"]) == sorted(oi["episode"])
            np.testing.assert_array_equal(port.unwrapped.goal_index, official_goal_index())  # the next goals
            assert not np.array_equal(p[0][:, 36:39], np.stack(p[4]["final_obs"])[:, 36:39])  # a new goal
        for k in STEP_KEYS:
            np.testing.assert_array_equal(pi[f"_{k}"], oi[f"_{k}"])
            tol = 0 if k == "success" else REWARD_TOL
            np.testing.assert_allclose(pi[k], oi[k], atol=tol, err_msg=f"{where}: {k}")
    off.close()


def test_first_steps_equal_warm_started_official(port):
    off = official(cold=False)
    np.testing.assert_allclose(port.reset(seed=SEED)[0], off.reset(seed=SEED)[0], atol=1e-6)
    for a in actions(30, seed=2):
        o, p = off.step(a), port.step(a)
        np.testing.assert_allclose(p[0], o[0], atol=WARM_TOL)
        np.testing.assert_allclose(p[1], o[1], atol=WARM_TOL * 10)
        np.testing.assert_array_equal(p[4]["success"], o[4]["success"])
    off.close()


@pytest.fixture(scope="module")
def mt1():
    import envs.gym  # noqa: F401

    env = gym.make_vec("toppo-jax/MT1-reach", seed=5, num_envs=3, impl="mujoco")
    yield env
    env.close()


def test_autoreset_same_step_mt1(mt1):
    """SAME_STEP over a time-out: final_obs is the last obs of the episode, obs is the next one's first,
    the next goal is the sampler's next draw (default_rng(seed + j).choice(50), as official), and the
    episode statistics are those of the 500 steps."""
    from envs import assets

    env = mt1.unwrapped
    obs, _ = mt1.reset(seed=7)
    draws = [np.random.default_rng(7 + j) for j in range(3)]
    first = np.array([r.choice(50) for r in draws])
    second = np.array([r.choice(50) for r in draws])
    np.testing.assert_array_equal(env.goal_index, first)
    table = assets.goal_table("MT10", 5)["reach"]  # reach: the goal is the rand_vec's last three entries
    np.testing.assert_array_equal(obs[:, 36:39], table[first, -3:].astype(np.float32))
    total = np.zeros(3)
    for t in range(500):
        prev = obs
        obs, reward, terminated, truncated, info = mt1.step(np.tile([[0.3, -0.2, 0.1, 0.5]], (3, 1)).astype(np.float32))
        total += reward
        assert not terminated.any() and truncated.all() == (t == 499) and truncated.any() == (t == 499)
    final = np.stack(info["final_obs"])
    np.testing.assert_array_equal(final[:, 18:36], prev[:, :18])  # the final obs continues the episode
    np.testing.assert_array_equal(obs[:, 18:36], obs[:, :18])  # a first obs: prev frame = current frame
    np.testing.assert_array_equal(env.goal_index, second)
    np.testing.assert_array_equal(obs[:, 36:39], table[second, -3:].astype(np.float32))
    assert set(info) == {"final_obs", "_final_obs", "final_info", "_final_info"} and info["_final_obs"].all()
    np.testing.assert_array_equal(info["final_info"]["episode"]["l"], [500] * 3)
    np.testing.assert_allclose(info["final_info"]["episode"]["r"], total)
    obs2, r2, _, truncated, info = mt1.step(np.zeros((3, 4), np.float32))
    assert not truncated.any() and "success" in info and "final_obs" not in info
    np.testing.assert_array_equal(obs2[:, 18:36], obs[:, :18])


def test_vector_env_checks(mt1):
    """env_checker-style: spaces hold the returned data, dtypes/shapes, reset determinism, no reused buffers."""
    from gymnasium.utils.env_checker import data_equivalence
    from gymnasium.utils.passive_env_checker import check_obs, data_shares_objects

    n = mt1.num_envs
    assert isinstance(mt1, gym.vector.VectorEnv) and mt1.observation_space.shape == (n, 39)
    obs1, info1 = mt1.reset(seed=11)
    check_obs(obs1, mt1.observation_space, "reset")
    assert isinstance(info1, dict)
    seq = [mt1.step(a) for a in actions(5, n, seed=3)]
    obs2, _ = mt1.reset(seed=11)
    assert data_equivalence(obs1, obs2, exact=True)
    seq2 = [mt1.step(a) for a in actions(5, n, seed=3)]
    for (o, r, te, tr, info), again in zip(seq, seq2):
        check_obs(o, mt1.observation_space, "step")
        assert mt1.observation_space.contains(o)
        assert r.shape == te.shape == tr.shape == (n,) and te.dtype == tr.dtype == np.bool_ and r.dtype == np.float64
        assert data_equivalence((o, r, te, tr, info), again, exact=True)
    assert not data_shares_objects(seq[0][0], seq[1][0])
    mt1.step(mt1.action_space.sample())
    with pytest.raises(ValueError, match="expected"):
        mt1.step(np.zeros((n + 1, 4), np.float32))


def test_bad_arguments():
    import envs.gym

    for kwargs, match in [({"max_episode_steps": 100}, "500"), ({"autoreset_mode": "NextStep"}, "SAME_STEP"),
                          ({"terminate_on_success": True}, "terminate_on_success"), ({"normalize_observations": True}, "unsupported")]:
        with pytest.raises((ValueError, TypeError), match=match):
            envs.gym.MetaWorldVectorEnv("reach", **kwargs)
