"""Per-task PopArt: statistics, ART on hand-computed numbers, and output preservation for every task."""

from conftest_fake_env import fast_jit
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toppo_jax import networks as nets
from toppo_jax import popart
from toppo_jax.networks import PerTaskAffine


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


def _critic(num_tasks, per_task_heads=False, popart_affine=True, hidden=(32, 32)):
    networks = nets.make_networks(7 + num_tasks, 4, num_tasks, critic_hidden=hidden, per_task_heads=per_task_heads,
                                  popart_affine=popart_affine)
    _, params = fast_jit(networks.init)(jax.random.PRNGKey(0))
    return networks, params


def test_first_update_sets_statistics_without_art_then_art_preserves():
    # Scalar head with the per-task affine (w, b) = (1, 0): the first update of a task leaves (w, b) as
    # they are; a later one rescales them by hand-computable amounts.
    params = {"params": {"popart": {"scale": jnp.array([1.0, 2.0]), "shift": jnp.array([0.0, 0.5])}}}
    state = popart.init_popart(2)
    targets = jnp.array([[9.0, 11.0], [1.0, 3.0]])  # task 0: mu 10, sigma 1; task 1: mu 2, sigma 1
    state, params = popart.update_and_rescale(state, params, targets, beta=0.5)
    np.testing.assert_allclose(params["params"]["popart"]["scale"], [1.0, 2.0])
    np.testing.assert_allclose(params["params"]["popart"]["shift"], [0.0, 0.5])
    np.testing.assert_allclose(state.mean, [10.0, 2.0])
    # Second update, step 1/2: task 1 only moves (task 0 gets its own mean/second moment again).
    # Task 1: mu 2 -> 3, nu 5 -> (5 + 17) / 2 = 11 (targets 3, 5: mean 4, mean sq 17), sigma 1 -> sqrt(2).
    state, params = popart.update_and_rescale(state, params, jnp.array([[9.0, 11.0], [3.0, 5.0]]), beta=0.5)
    np.testing.assert_allclose(state.mean, [10.0, 3.0])
    np.testing.assert_allclose(popart.popart_sigma(state), [1.0, np.sqrt(2.0)], rtol=1e-6)
    # w' = 2 * 1 / sqrt 2 = sqrt 2; b' = (1 * 0.5 + 2 - 3) / sqrt 2 = -0.5 / sqrt 2.
    np.testing.assert_allclose(params["params"]["popart"]["scale"], [1.0, np.sqrt(2.0)], rtol=1e-6)
    np.testing.assert_allclose(params["params"]["popart"]["shift"], [0.0, -0.5 / np.sqrt(2.0)], rtol=1e-6)
    # h = 1: V_1 = sqrt 2 (sqrt 2 - 0.5 / sqrt 2) + 3 = 2 - 0.5 + 3 = 4.5 = 1 (2 + 0.5) + 2 before.
    v = popart.unnormalized_value(state, jnp.array([[1.0, 1.0]]) * params["params"]["popart"]["scale"]
                                  + params["params"]["popart"]["shift"], jnp.array([1]))
    np.testing.assert_allclose(v, [4.5], rtol=1e-6)


@pytest.mark.parametrize("per_task_heads", [False, True])
def test_art_preserves_every_tasks_unnormalised_prediction(per_task_heads):
    num_tasks, n = 4, 16
    networks, params = _critic(num_tasks, per_task_heads)
    module = "head" if per_task_heads else "popart"
    assert popart.output_layer(params)[0] == module
    obs = jax.random.normal(jax.random.PRNGKey(1), (num_tasks, n, 7 + num_tasks))
    task_id = jnp.repeat(jnp.arange(num_tasks)[:, None], n, axis=1)

    @fast_jit
    def values(state, params):
        return popart.unnormalized_value(state, networks.critic.apply(params, obs), task_id)

    update_and_rescale = fast_jit(popart.update_and_rescale, static_argnames="beta")

    state = popart.init_popart(num_tasks)
    rng = np.random.default_rng(0)
    for i, scale in enumerate((1.0, 30.0, 0.01, 500.0)):  # targets of wildly different scale per task and update
        targets = jnp.asarray(rng.normal(5.0 * scale, scale, (num_tasks, n)) * np.array([[1], [10], [0.1], [100]]))
        before = values(state, params)
        new_state, new_params = update_and_rescale(state, params, targets, beta=0.3)
        after = values(new_state, new_params)
        if i == 0:  # the first statistics are set without ART: the output map is untouched
            jax.tree_util.tree_map(np.testing.assert_array_equal, new_params, params)
        else:
            # float32 round-off scales with the magnitudes that cancel: the old and new mu and sigma.
            magnitude = (
                jnp.abs(state.mean) + popart.popart_sigma(state) + jnp.abs(new_state.mean) + popart.popart_sigma(new_state)
            )
            assert jnp.all(jnp.abs(after - before) <= 1e-5 * (magnitude[:, None] + jnp.abs(before)))
            # The statistics did move, so without ART the prediction would not be preserved.
            unrescaled = values(new_state, params)
            assert float(jnp.max(jnp.abs(unrescaled - before))) > 1e-2 * float(jnp.abs(before).max())
        state, params = new_state, new_params


def test_scalar_head_prediction_uses_each_samples_own_task_statistics():
    state = popart.init_popart(3).replace(
        mean=jnp.array([0.0, 10.0, -5.0]),
        second_moment=jnp.array([1.0, 104.0, 29.0]),  # sigma = 1, 2, 2
    )
    affine = PerTaskAffine(3)
    params = {"params": {"scale": jnp.array([1.0, 0.5, 2.0]), "shift": jnp.array([0.0, 1.0, -1.0])}}
    head_out = affine.apply(params, jnp.array([[2.0], [2.0], [2.0]]))
    v = popart.unnormalized_value(state, head_out, jnp.array([0, 1, 2]))
    # task 0: 1 (1*2 + 0) + 0 = 2; task 1: 2 (0.5*2 + 1) + 10 = 14; task 2: 2 (2*2 - 1) - 5 = 1.
    np.testing.assert_allclose(v, [2.0, 14.0, 1.0], rtol=1e-6)
    # A plain scalar critic (PopArt off) serves every task with its one output.
    np.testing.assert_allclose(popart.task_outputs(jnp.array([[3.0], [4.0]]), jnp.array([0, 1])), [3.0, 4.0])


def test_affine_is_trained_and_counted():
    networks, params = _critic(5)
    assert params["params"]["popart"]["scale"].shape == (5,)
    _, plain = _critic(5, popart_affine=False)
    assert nets.count_params(params) - nets.count_params(plain) == 2 * 5
    obs = jax.random.normal(jax.random.PRNGKey(2), (8, 12))
    grads = jax.grad(lambda p: jnp.sum(networks.critic.apply(p, obs)[:, 3]))(params)
    g = grads["params"]["popart"]
    assert float(g["scale"][3]) != 0.0 and float(g["shift"][3]) == 8.0  # d/db_3 of a sum over 8 samples
    np.testing.assert_array_equal(np.delete(np.asarray(g["shift"]), 3), 0.0)  # other tasks' affines untouched


def _shared_critic_grad_norms(scale_task1: float, popart_on: bool, iterations: int = 12, sgd_steps: int = 8):
    """Per-task norms of the value-loss gradient into the shared critic (all but the per-task affine),
    after `iterations` of (PopArt update + ART, Adam steps on normalised targets), with task 1's returns
    multiplied by `scale_task1`."""
    import optax

    from toppo_jax import ppo

    num_tasks, n = 2, 64
    networks, params = _critic(num_tasks, popart_affine=popart_on, hidden=(32, 32))
    tx = optax.adam(1e-3)
    opt = tx.init(params)
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(num_tasks, n, 7 + num_tasks)), jnp.float32)
    scales = jnp.array([1.0, scale_task1])[:, None]

    def loss(p, state, targets, task):
        samples = ppo.TaskSamples(obs=obs[task], action_u=None, old_log_prob=None, advantage=None, target=targets[task],
                                  task_id=jnp.asarray(task))
        return ppo.critic_task_loss(p, networks.critic.apply, state, samples)[0]

    grad = fast_jit(jax.grad(loss), static_argnames="task")
    state = popart.init_popart(num_tasks)
    for _ in range(iterations):
        # The same returns for both tasks up to the scale: 100 + 20 * noise, a drift in the mean.
        targets = scales * jnp.asarray(100.0 + 20.0 * rng.normal(size=(1, n)) + 5.0 * _, jnp.float32)
        if popart_on:
            state, params = popart.update_and_rescale(state, params, targets, beta=0.2)
        for _step in range(sgd_steps):
            g = jax.tree_util.tree_map(lambda a, b: a + b, grad(params, state, targets, task=0), grad(params, state, targets, task=1))
            updates, opt = tx.update(g, opt, params)
            params = optax.apply_updates(params, updates)

    def shared_norm(g):
        shared = {k: v for k, v in g["params"].items() if k != "popart"}
        return float(optax.tree.norm(shared))

    return [shared_norm(grad(params, state, targets, task=t)) for t in range(num_tasks)]


def test_gradient_into_shared_critic_does_not_scale_with_a_tasks_returns():
    """x1000 returns on task 1: its gradient into the shared critic stays within 2x of the unscaled run."""
    unscaled = _shared_critic_grad_norms(1.0, popart_on=True)
    scaled = _shared_critic_grad_norms(1000.0, popart_on=True)
    assert 0.5 < scaled[1] / unscaled[1] < 2.0, (scaled, unscaled)
    assert 0.5 < scaled[0] / unscaled[0] < 2.0, (scaled, unscaled)
    # The check can fail: without PopArt the same scaling multiplies that gradient by orders of magnitude.
    raw_unscaled = _shared_critic_grad_norms(1.0, popart_on=False, iterations=1, sgd_steps=0)
    raw_scaled = _shared_critic_grad_norms(1000.0, popart_on=False, iterations=1, sgd_steps=0)
    assert raw_scaled[1] / raw_unscaled[1] > 100.0
