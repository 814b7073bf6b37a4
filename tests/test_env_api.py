"""The env side's public interfaces: the ``PhysicsBackend`` protocol every backend implements, and the
multi-task step going through the backend class's ``step_groups``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.backends import PhysicsBackend, step_each
from envs.backends.mujoco_backend import MujocoBackend
from envs.sawyer import SawyerEnv


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


def test_multitask_step_is_bit_identical_to_stepping_each_group_alone():
    """``MultiTaskEnv.step`` (the backend class's group step: one host callback on mujoco) equals
    every task's own ``SawyerEnv.step``, leaf for leaf, over a rollout with auto-resets."""
    env = envs.make_multitask("reach,drawer-open,peg-insert-side", envs_per_task=2)
    actions = jax.random.uniform(jax.random.PRNGKey(3), (30, 6, 4), minval=-1.0, maxval=1.0)

    def per_group(state, action):
        parts = env._split(state)
        return env._merge([e.step(p, action[2 * i : 2 * i + 2]) for i, (e, p) in enumerate(zip(env.envs, parts))])

    state = env.reset(jax.random.PRNGKey(0))
    fused, alone = _rollout(env.step, state, actions), _rollout(per_group, state, actions)
    for a, b in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(alone)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    text = jax.jit(env.step).lower(state, jnp.zeros((6, 4))).as_text()
    assert text.count("xla_python_cpu_callback") + text.count("xla_ffi_python_cpu_callback") == 1


@pytest.mark.slow
@pytest.mark.skipif(not _warp_importable(), reason="warp-lang / mujoco-warp not installed")
def test_warp_multitask_step_is_bit_identical_to_stepping_each_group_alone():
    env = envs.make_multitask("reach,drawer-open", envs_per_task=2, impl="warp")
    actions = jax.random.uniform(jax.random.PRNGKey(3), (4, 4, 4), minval=-1.0, maxval=1.0)

    def per_group(state, action):
        parts = env._split(state)
        return env._merge([e.step(p, action[2 * i : 2 * i + 2]) for i, (e, p) in enumerate(zip(env.envs, parts))])

    state = env.reset(jax.random.PRNGKey(0))
    fused, alone = _rollout(env.step, state, actions), _rollout(per_group, state, actions)
    for a, b in zip(jax.tree_util.tree_leaves(fused), jax.tree_util.tree_leaves(alone)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
