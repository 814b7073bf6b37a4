"""The env side's public interfaces: the ``PhysicsBackend`` protocol every backend implements, the
multi-task step going through the backend class's ``step_groups``, the named slices of the 39-d
observation (against the official env's own accessors) and the rendering API (``render_model``,
``physics_state``, ``envs.render.set_state``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs import assets
from envs.backends import PhysicsBackend, step_each
from envs.backends.mujoco_backend import MujocoBackend
from envs.sawyer import SawyerEnv
from envs.types import (
    OBS_FRAME, OBS_GOAL, OBS_GRIPPER, OBS_HAND, OBS_OBJ1, OBS_OBJ1_POS, OBS_OBJ1_QUAT, OBS_OBJ2, OBS_OBJ2_POS,
    OBS_OBJ2_QUAT, OBS_OBJECTS, OBS_PREV, OBS_SIZE,
)


def _warp_importable() -> bool:
    try:
        import warp  # noqa: F401
        from mujoco.mjx.third_party import mujoco_warp  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def reach():
    return SawyerEnv("reach")


def _rollout(step, state, actions):
    def body(s, a):
        s = step(s, a)
        return s, (s.obs, s.reward, s.info["final_obs"])

    return jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, actions)


def test_obs_slices_tile_the_39_d_observation():
    idx = np.arange(OBS_SIZE)
    parts = [idx[OBS_HAND], idx[[OBS_GRIPPER]], idx[OBS_OBJ1], idx[OBS_OBJ2], idx[OBS_PREV], idx[OBS_GOAL]]
    np.testing.assert_array_equal(np.concatenate(parts), idx)
    np.testing.assert_array_equal(np.concatenate([idx[OBS_OBJ1_POS], idx[OBS_OBJ1_QUAT]]), idx[OBS_OBJ1])
    np.testing.assert_array_equal(np.concatenate([idx[OBS_OBJ2_POS], idx[OBS_OBJ2_QUAT]]), idx[OBS_OBJ2])
    np.testing.assert_array_equal(idx[OBS_OBJECTS], idx[4:18])
    assert len(idx[OBS_FRAME]) == len(idx[OBS_PREV]) == 18


@pytest.mark.parametrize("task", ["reach", "stick-push"])  # one object; two objects
def test_obs_slices_are_the_official_layout(task):
    """Each slice of an official observation holds what the official env's own accessor returns."""
    import warnings

    env = SawyerEnv(task, eval_mode=True)
    official = assets.official_env(task)
    official.set_task(assets.make_task_data(task, env.goals[17]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs, _ = official.reset()
    pos, quat = official._get_pos_objects(), official._get_quat_objects()
    np.testing.assert_allclose(obs[OBS_HAND], official.get_endeff_pos(), atol=1e-12)
    np.testing.assert_allclose(obs[OBS_OBJ1_POS], pos[:3], atol=1e-12)
    np.testing.assert_allclose(obs[OBS_OBJ1_QUAT], quat[:4], atol=1e-12)
    if len(pos) > 3:
        np.testing.assert_allclose(obs[OBS_OBJ2_POS], pos[3:6], atol=1e-12)
        np.testing.assert_allclose(obs[OBS_OBJ2_QUAT], quat[4:8], atol=1e-12)
    else:
        np.testing.assert_array_equal(obs[OBS_OBJ2], 0.0)
    assert 0.0 <= obs[OBS_GRIPPER] <= 1.0
    np.testing.assert_array_equal(obs[OBS_PREV], obs[OBS_FRAME])  # the first obs repeats its frame
    np.testing.assert_allclose(obs[OBS_GOAL], official._get_pos_goal(), atol=1e-12)
    # The port's first observation of that goal is the official one, so the slices read it the same way.
    state = env.reset(jax.random.PRNGKey(0), 1, goals=jnp.array([17]))
    np.testing.assert_allclose(np.asarray(state.obs[0]), obs, atol=1e-6)


def test_goal_slice_is_the_task_goal_and_prev_is_the_last_frame(reach):
    goals = jnp.array([0, 17, 33])
    state = reach.reset(jax.random.PRNGKey(0), 3, goals=goals)
    # reach: rand_vec = (object position, goal position); the goal is official _target_pos = rand_vec[3:]
    np.testing.assert_allclose(np.asarray(state.obs[:, OBS_GOAL]), reach.goals[np.asarray(goals), 3:6], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(state.obs[:, OBS_GOAL]), np.asarray(state.info["consts"]["goal"], np.float32))
    out = jax.jit(reach.step)(state, jnp.full((3, 4), 0.5))
    np.testing.assert_array_equal(np.asarray(out.obs[:, OBS_PREV]), np.asarray(state.obs[:, OBS_FRAME]))
    np.testing.assert_array_equal(np.asarray(out.obs[:, OBS_GOAL]), np.asarray(state.obs[:, OBS_GOAL]))


def test_render_api_draws_the_observed_state(reach):
    """``render_model`` + ``physics_state`` + ``envs.render.set_state`` reproduce the observed hand,
    object and goal, for a batch and for one env recorded along a scan (leaves [steps, ...])."""
    import mujoco

    model = reach.render_model()
    assert isinstance(model, mujoco.MjModel) and model.nmocap >= 1
    state = reach.reset(jax.random.PRNGKey(1), 2, goals=jnp.array([3, 4]))

    def body(s, a):
        s = reach.step(s, a)
        return s, (jax.tree.map(lambda x: x[0], s.data), s.obs[0])

    actions = jnp.tile(jnp.array([0.3, -0.2, 0.1, 1.0]), (6, 2, 1))
    last, (data, obs) = jax.jit(lambda s, a: jax.lax.scan(body, s, a))(state, actions)
    states = reach.physics_state(data)  # one env along time
    batch = reach.physics_state(last)  # a State: every env
    assert states.shape == (6, envs.render.state_size(model)) and batch.shape == (2, states.shape[1])
    np.testing.assert_array_equal(batch[0], states[-1])
    mj = mujoco.MjData(model)
    obs = np.asarray(obs)
    for t in (0, 5):
        envs.render.set_state(model, mj, states[t], goal=obs[t, OBS_GOAL])
        np.testing.assert_allclose(mj.body("hand").xpos, obs[t, OBS_HAND], atol=1e-5)
        np.testing.assert_allclose(mj.body("obj").xpos, obs[t, OBS_OBJ1_POS], atol=1e-5)
        np.testing.assert_allclose(mj.site("goal").xpos, obs[t, OBS_GOAL])
    with pytest.raises(ValueError, match="port-layout states have"):
        envs.render.set_state(model, mj, states[0, :-1])


def test_mujoco_backend_satisfies_the_protocol(reach):
    assert isinstance(reach.backend, PhysicsBackend)
    assert isinstance(reach.backend, MujocoBackend) and reach.backend.name == reach.impl == "mujoco"
    # The mujoco backend overrides the group step (one host callback for every group).
    assert MujocoBackend.step_groups.__func__ is not PhysicsBackend.step_groups.__func__


def test_an_object_missing_a_member_is_not_a_backend():
    class Partial:
        name = "partial"

        def step(self, data, action):
            return data, None

    assert not isinstance(Partial(), PhysicsBackend)


@pytest.mark.skipif(not _warp_importable(), reason="warp-lang / mujoco-warp not installed")
def test_warp_backend_satisfies_the_protocol_and_steps_groups_one_by_one():
    from envs.backends.warp_backend import WarpBackend

    assert PhysicsBackend in WarpBackend.__mro__
    assert WarpBackend.step_groups.__func__ is PhysicsBackend.step_groups.__func__
    env = SawyerEnv("reach", impl="warp")
    assert isinstance(env.backend, PhysicsBackend) and env.impl == "warp"


def test_mujoco_group_step_equals_the_default_group_by_group_step(reach):
    """One host callback for every group gives what the default group step (each backend's own
    ``step``, the warp / jax path) gives, bit for bit."""
    push = SawyerEnv("push")
    groups = [(reach, 2), (push, 3)]
    states = [e.reset(jax.random.PRNGKey(i), n) for i, (e, n) in enumerate(groups)]
    actions = [jax.random.uniform(jax.random.PRNGKey(7 + i), (n, 4), minval=-1, maxval=1) for i, (_, n) in enumerate(groups)]
    backends = [e.backend for e, _ in groups]
    datas = [s.data for s in states]
    fused = jax.jit(lambda d, a: MujocoBackend.step_groups(backends, d, a))(datas, actions)
    each = jax.jit(lambda d, a: step_each(backends, d, a))(datas, actions)
    for x, y in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(each)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _assert_fused_equals_per_group(env, steps: int):
    """A rollout of ``env.step`` equals one of every task's own ``SawyerEnv.step``, leaf for leaf; returns the reset state."""
    n = env.envs_per_task
    actions = jax.random.uniform(jax.random.PRNGKey(3), (steps, env.num_envs, 4), minval=-1.0, maxval=1.0)

    def per_group(state, action):
        parts = env._split(state)
        return env._merge([e.step(p, action[n * i : n * (i + 1)]) for i, (e, p) in enumerate(zip(env.envs, parts))])

    state = env.reset(jax.random.PRNGKey(0))
    fused, alone = _rollout(env.step, state, actions), _rollout(per_group, state, actions)
    for a, b in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(alone)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return state


def test_multitask_step_is_bit_identical_to_stepping_each_group_alone():
    """``MultiTaskEnv.step`` (the backend class's group step: one host callback on mujoco) equals
    every task's own ``SawyerEnv.step``, leaf for leaf, over a rollout with auto-resets."""
    env = envs.make_multitask("reach,drawer-open,peg-insert-side", envs_per_task=2)
    state = _assert_fused_equals_per_group(env, steps=30)
    text = jax.jit(env.step).lower(state, jnp.zeros((6, 4))).as_text()
    assert text.count("xla_python_cpu_callback") + text.count("xla_ffi_python_cpu_callback") == 1


@pytest.mark.slow
@pytest.mark.skipif(not _warp_importable(), reason="warp-lang / mujoco-warp not installed")
def test_warp_multitask_step_is_bit_identical_to_stepping_each_group_alone():
    _assert_fused_equals_per_group(envs.make_multitask("reach,drawer-open", envs_per_task=2, impl="warp"), steps=4)


def test_backend_names_come_from_one_list_and_auto_is_resolved_in_one_function(monkeypatch, capsys):
    from envs import diet, parity
    from envs.backends import IMPL_CHOICES, IMPLS, check_impl

    assert IMPL_CHOICES == ("auto", *IMPLS)
    assert check_impl("auto") == "mujoco"  # CPU
    # TPU -> MJX JAX; a task it cannot run (no collision diet) falls back to the exact backend.
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert check_impl("auto") == "jax"
    monkeypatch.setattr(diet, "entry", lambda task: (_ for _ in ()).throw(diet.NoDietError(f"no diet for {task}")))
    assert check_impl("auto", ("reach",)) == "mujoco"
    with pytest.raises(ValueError, match="unknown impl 'cuda'; valid: " + ", ".join(IMPL_CHOICES)):
        check_impl("cuda")
    assert parity.main(["--tasks", "reach", "--impl", "cuda"]) == 2
    assert capsys.readouterr().err.strip() == f"error: unknown --impl 'cuda'; valid: {', '.join(IMPL_CHOICES)}"
