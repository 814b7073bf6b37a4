"""Env core API: batching, jit/scan, truncation and auto-reset, sticky success, multi-task layout,
determinism and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.registry import UnknownTaskError, resolve_tasks
from envs.sawyer import SawyerEnv


@pytest.fixture(scope="module")
def reach():
    return SawyerEnv("reach")


def _rollout(env, state, actions):
    def body(s, a):
        s = env.step(s, a)
        return s, (s.reward, s.done, s.info["truncation"], s.metrics["success"], s.info["steps"])

    return jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, actions)


def test_truncation_autoreset_keeps_final_obs(reach):
    n, T = 3, 502
    state = reach.reset(jax.random.PRNGKey(0), n)
    actions = jnp.zeros((T, n, 4)).at[:, :, 2].set(-1.0)
    final, (rew, done, trunc, succ, steps) = _rollout(reach, state, actions)
    done, steps = np.asarray(done), np.asarray(steps)
    assert done.shape == (T, n) and np.array_equal(np.flatnonzero(done[:, 0]), [499]), "truncates at step 500 exactly once"
    assert np.array_equal(np.asarray(trunc), done)
    assert steps[499, 0] == 0 and steps[500, 0] == 1, "a new episode starts after truncation"
    assert np.all(np.isfinite(np.asarray(rew)))


def test_final_obs_differs_from_reset_obs_on_truncation(reach):
    state = reach.reset(jax.random.PRNGKey(1), 2)
    state = state.replace(info={**state.info, "steps": jnp.full((2,), 499, jnp.int32)})
    out = jax.jit(reach.step)(state, jnp.ones((2, 4)))
    assert np.all(np.asarray(out.done) == 1)
    # obs is the next episode's first obs (stacked with itself); final_obs is where the last one ended
    np.testing.assert_array_equal(np.asarray(out.obs[:, :18]), np.asarray(out.obs[:, 18:36]))
    assert not np.allclose(np.asarray(out.info["final_obs"][:, :3]), np.asarray(out.obs[:, :3]))


def test_success_is_sticky_within_an_episode(reach):
    state = reach.reset(jax.random.PRNGKey(2), 1)
    state = state.replace(metrics={"success": jnp.ones(1)})
    out = jax.jit(reach.step)(state, jnp.zeros((1, 4)))
    assert float(out.info["step_info"]["success"][0]) == 0.0 and float(out.metrics["success"][0]) == 1.0


def test_staggered_starts_spread_episode_phase(reach):
    state = reach.reset(jax.random.PRNGKey(3), 64, staggered=True)
    steps = np.asarray(state.info["steps"])
    assert steps.min() >= 0 and steps.max() < 500 and len(np.unique(steps)) > 30


def test_eval_mode_runs_goal_i_on_env_i():
    env = SawyerEnv("reach", eval_mode=True)
    state = env.reset(jax.random.PRNGKey(0), 50)
    np.testing.assert_array_equal(np.asarray(state.info["goal_index"]), np.arange(50))
    np.testing.assert_allclose(np.asarray(state.obs[:, 36:39]), env.goals[:, 3:6], atol=1e-6)


def test_same_seed_same_trajectory(reach):
    actions = jax.random.uniform(jax.random.PRNGKey(9), (20, 4, 4), minval=-1, maxval=1)
    a = _rollout(reach, reach.reset(jax.random.PRNGKey(5), 4), actions)[1]
    b = _rollout(reach, reach.reset(jax.random.PRNGKey(5), 4), actions)[1]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_multitask_layout_onehot_and_task_ids():
    env = envs.make_multitask("reach,drawer-open", envs_per_task=3)
    assert env.num_envs == 6 and env.observation_size == 41 and env.task_names == ("reach", "drawer-open")
    state = env.reset(jax.random.PRNGKey(0))
    obs = np.asarray(state.obs)
    np.testing.assert_array_equal(obs[:, 39:], np.repeat(np.eye(2), 3, axis=0))
    np.testing.assert_array_equal(np.asarray(state.info["task_id"]), [0, 0, 0, 1, 1, 1])
    out = jax.jit(env.step)(state, jnp.zeros((6, 4)))
    assert out.obs.shape == (6, 41) and out.info["final_obs"].shape == (6, 41)
    # the drawer task's object block is the drawer handle, reach's is the puck
    assert np.all(np.abs(np.asarray(out.obs[3:, 5]) - 0.73) < 0.05)


def test_unknown_task_lists_valid_names_and_suggests():
    with pytest.raises(UnknownTaskError, match=r"did you mean 'drawer-open'.*valid: mt10, mt50"):
        resolve_tasks("drawer-opn")
    with pytest.raises(UnknownTaskError, match="listed twice"):
        resolve_tasks("reach,reach-v3")
    assert resolve_tasks("Reach-v3,drawer-open") == ("reach", "drawer-open")


def test_wrong_action_shape_fails_at_trace_time(reach):
    state = reach.reset(jax.random.PRNGKey(0), 2)
    with pytest.raises(ValueError, match=r"action has shape \(2, 3\); expected \(num_envs=2, 4\)"):
        jax.jit(reach.step).lower(state, jnp.zeros((2, 3)))


def test_unknown_impl_names_valid_choices():
    with pytest.raises(ValueError, match="unknown impl 'cuda'; valid: auto, mujoco, warp, jax"):
        SawyerEnv("reach", impl="cuda")


def test_multitask_mixes_tasks_with_different_constants_and_frames():
    env = envs.make_multitask("reach,button-press-topdown,peg-insert-side", envs_per_task=2)
    state = env.reset(jax.random.PRNGKey(0))
    out = jax.jit(env.step)(state, jnp.zeros((6, 4)))
    assert out.obs.shape == (6, 42) and np.all(np.isfinite(np.asarray(out.reward)))


def test_multitask_mujoco_steps_every_task_group_in_one_host_callback_exactly_like_each_task_alone():
    env = envs.make_multitask("reach,drawer-open,peg-insert-side", envs_per_task=2)
    actions = jax.random.uniform(jax.random.PRNGKey(3), (30, 6, 4), minval=-1.0, maxval=1.0)

    def per_task(state, action):  # each task's own SawyerEnv.step: one callback per task
        return env._merge([e.step(p, action[2 * i : 2 * i + 2]) for i, (e, p) in enumerate(zip(env.envs, env._split(state)))])

    state = env.reset(jax.random.PRNGKey(0))
    fused, alone = _rollout(env, state, actions), _rollout(type("PerTask", (), {"step": staticmethod(per_task)}), state, actions)
    for a, b in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(alone)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # One pure_callback in the step's program, whatever the number of tasks.
    text = jax.jit(env.step).lower(state, jnp.zeros((6, 4))).as_text()
    assert text.count("xla_python_cpu_callback") + text.count("xla_ffi_python_cpu_callback") == 1


def test_mujoco_host_threads_and_env_slices_give_the_same_step_as_one_call():
    import mujoco
    from mujoco import rollout as mj_rollout

    from envs.backends.mujoco_backend import HostWorkers

    groups = [SawyerEnv("reach"), SawyerEnv("push")]
    backends = [e.backend for e in groups]
    states = [np.asarray(e.reset(jax.random.PRNGKey(i), n).data.state) for i, (e, n) in enumerate(zip(groups, (3, 37)))]
    one, three = HostWorkers(1), HostWorkers(3)  # slices of 2 envs on one thread, of 1 env on three
    single = mj_rollout.Rollout(nthread=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        actions = [rng.uniform(-1, 1, (len(s), 4)).astype(np.float32) for s in states]
        jobs = [b.prepare(s, a) for b, s, a in zip(backends, states, actions)]
        for b, j in zip(backends, jobs):  # every env of a group in one rollout call
            b.physics(single, [mujoco.MjData(b.tm.model)], j, 0, len(j.state))
        whole = [b.collect(j) for b, j in zip(backends, jobs)]
        for out in (one.run(backends, states, actions), three.run(backends, states, actions)):
            for group_out, group_whole in zip(out, whole):
                for x, y in zip(group_out, group_whole):
                    np.testing.assert_array_equal(x, y)
        states = [w[0] for w in whole]


def test_mujoco_host_step_error_in_a_helper_thread_reaches_the_caller(monkeypatch):
    import threading
    import time

    from envs.backends.mujoco_backend import HostWorkers, MujocoBackend

    env = SawyerEnv("reach")
    state = np.asarray(env.reset(jax.random.PRNGKey(0), 8).data.state)
    caller = threading.current_thread()

    def fails_in_a_helper(self, rollout, datas, job, lo, hi):
        if threading.current_thread() is caller:
            time.sleep(0.05)  # leaves slices to the helpers
        else:
            raise RuntimeError(f"slice at env {lo} failed in a helper thread")

    monkeypatch.setattr(MujocoBackend, "physics", fails_in_a_helper)
    with pytest.raises(RuntimeError, match="in a helper thread"):
        HostWorkers(3).run([env.backend], [state], [np.zeros((8, 4), np.float32)])
