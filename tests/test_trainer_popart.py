"""Per-task PopArt: statistics, ART on hand-computed numbers, and output preservation for every task."""

from conftest_fake_env import fast_jit
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toppo_jax import networks as nets
from toppo_jax import popart


def test_statistics_update_by_hand():
    state = popart.init_popart(2)
    np.testing.assert_allclose(popart.popart_sigma(state), [1.0, 1.0])
    # First update: step max(0.1, 1/1) = 1, so the statistics are the sample's own.
    state = popart.update_stats(state, jnp.array([[1.0, 3.0], [2.0, 2.0]]), beta=0.1)
    np.testing.assert_allclose(state.mean, [2.0, 2.0])
    np.testing.assert_allclose(state.second_moment, [5.0, 4.0])
    np.testing.assert_allclose(popart.popart_sigma(state), [1.0, popart.SIGMA_MIN], rtol=1e-5)
    # Second: step max(0.1, 1/2) = 0.5.
    state = popart.update_stats(state, jnp.array([[4.0, 4.0], [0.0, 0.0]]), beta=0.1)
    np.testing.assert_allclose(state.mean, [3.0, 1.0])
    np.testing.assert_allclose(state.second_moment, [10.5, 2.0])
    np.testing.assert_allclose(popart.popart_sigma(state), [np.sqrt(1.5), 1.0], rtol=1e-6)
    # Later: step beta once 1/k < beta.
    for _ in range(20):
        state = popart.update_stats(state, jnp.zeros((2, 2)), beta=0.1)
    previous_mean = np.asarray(state.mean)
    state = popart.update_stats(state, jnp.full((2, 2), 10.0), beta=0.1)
    np.testing.assert_allclose(state.mean, 0.9 * previous_mean + 0.1 * 10.0, rtol=1e-6)


def test_art_by_hand():
    # w = 2, b = 0.5, (mu, sigma) = (1, 2) -> (3, 4): w' = 2*2/4 = 1, b' = (2*0.5 + 1 - 3)/4 = -0.25.
    w, b = popart.art_rescale(jnp.array([2.0]), jnp.array([0.5]), 1.0, 2.0, 3.0, 4.0)
    np.testing.assert_allclose(w, [1.0])
    np.testing.assert_allclose(b, [-0.25])
    # h = 1.5: before 2 (2*1.5 + 0.5) + 1 = 8, after 4 (1*1.5 - 0.25) + 3 = 8.
    assert float(popart.denormalize(w * 1.5 + b, 3.0, 4.0)[0]) == pytest.approx(8.0)


def test_normalize_denormalize_round_trip():
    g = jnp.array([-3.0, 0.0, 250.0])
    np.testing.assert_allclose(popart.denormalize(popart.normalize(g, 7.0, 25.0), 7.0, 25.0), g, rtol=1e-6)
    np.testing.assert_allclose(popart.normalize(g, 7.0, 25.0), (np.asarray(g) - 7.0) / 25.0, rtol=1e-6)


@pytest.mark.parametrize("per_task_heads", [False, True])
def test_art_preserves_every_tasks_unnormalised_prediction(per_task_heads):
    num_tasks, n = 4, 16
    networks = nets.make_networks(7 + num_tasks, 4, num_tasks, critic_hidden=(32, 32), per_task_heads=per_task_heads)
    _, params = fast_jit(networks.init)(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (num_tasks, n, 7 + num_tasks))
    task_id = jnp.repeat(jnp.arange(num_tasks)[:, None], n, axis=1)

    @fast_jit
    def values(state, params):
        return popart.unnormalized_value(state, networks.critic.apply(params, obs), task_id)

    update_and_rescale = fast_jit(popart.update_and_rescale, static_argnames="beta")

    state = popart.init_popart(num_tasks)
    rng = np.random.default_rng(0)
    for scale in (1.0, 30.0, 0.01, 500.0):  # targets of wildly different scale per task and update
        targets = jnp.asarray(rng.normal(5.0 * scale, scale, (num_tasks, n)) * np.array([[1], [10], [0.1], [100]]))
        before = values(state, params)
        new_state, new_params = update_and_rescale(state, params, targets, beta=0.3)
        after = values(new_state, new_params)
        # float32 round-off scales with the magnitudes that cancel: the old and new mu and sigma.
        magnitude = (
            jnp.abs(state.mean) + popart.popart_sigma(state) + jnp.abs(new_state.mean) + popart.popart_sigma(new_state)
        )
        assert jnp.all(jnp.abs(after - before) <= 1e-5 * (magnitude[:, None] + jnp.abs(before)))
        # The statistics did move, so without ART the prediction would not be preserved.
        unrescaled = values(new_state, params) if per_task_heads else values(
            new_state.replace(affine_w=state.affine_w, affine_b=state.affine_b), params
        )
        assert float(jnp.max(jnp.abs(unrescaled - before))) > 1e-2 * float(jnp.abs(before).max())
        state, params = new_state, new_params
    if per_task_heads:
        np.testing.assert_allclose(state.affine_w, 1.0)  # the affine is only for the scalar head
    else:
        assert jnp.all(state.affine_w != 1.0)


def test_scalar_head_prediction_uses_each_samples_own_task_statistics():
    state = popart.init_popart(3).replace(
        mean=jnp.array([0.0, 10.0, -5.0]),
        second_moment=jnp.array([1.0, 104.0, 29.0]),  # sigma = 1, 2, 2
        affine_w=jnp.array([1.0, 0.5, 2.0]),
        affine_b=jnp.array([0.0, 1.0, -1.0]),
    )
    head_out = jnp.array([[2.0], [2.0], [2.0]])
    v = popart.unnormalized_value(state, head_out, jnp.array([0, 1, 2]))
    # task 0: 1 (1*2 + 0) + 0 = 2; task 1: 2 (0.5*2 + 1) + 10 = 14; task 2: 2 (2*2 - 1) - 5 = 1.
    np.testing.assert_allclose(v, [2.0, 14.0, 1.0], rtol=1e-6)
