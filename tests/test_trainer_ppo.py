"""PPO pieces: GAE with truncation against a plain loop, losses by hand, normalisers, stratified minibatches."""

from conftest_fake_env import fast_jit
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toppo_jax import networks as nets
from toppo_jax import popart, ppo


def _gae_reference(rewards, values, dones, truncs, boot, last_value, gamma, lam):
    """Textbook backward loop, one env at a time, written without vectorisation."""
    length, num_envs = rewards.shape
    adv = np.zeros((length, num_envs))
    for e in range(num_envs):
        running = 0.0
        for t in reversed(range(length)):
            if dones[t, e]:
                next_value = boot[t, e] if truncs[t, e] else 0.0  # time-out: bootstrap; terminal: 0
                running = 0.0  # the next row belongs to a new episode
            else:
                next_value = values[t + 1, e] if t + 1 < length else last_value[e]
            delta = rewards[t, e] + gamma * next_value - values[t, e]
            running = delta + gamma * lam * running
            adv[t, e] = running
    return adv, adv + values


def test_gae_matches_plain_loop_with_truncations_terminals_and_resets():
    rng = np.random.default_rng(0)
    length, num_envs = 13, 4
    rewards = rng.normal(size=(length, num_envs))
    values = rng.normal(size=(length, num_envs))
    boot = rng.normal(size=(length, num_envs)) * 5
    last_value = rng.normal(size=num_envs)
    dones = np.zeros((length, num_envs))
    truncs = np.zeros((length, num_envs))
    for t, e in [(3, 0), (9, 0), (12, 1), (0, 2), (5, 2), (6, 2)]:  # time-outs, incl. at the last row
        dones[t, e] = truncs[t, e] = 1
    dones[7, 3] = 1  # a true terminal (never in Meta-World; the formula must still hold)
    adv, targets = fast_jit(ppo.gae, static_argnums=(6, 7))(
        *map(jnp.asarray, (rewards, values, dones, truncs, boot, last_value)), 0.99, 0.95
    )
    ref_adv, ref_targets = _gae_reference(rewards, values, dones, truncs, boot, last_value, 0.99, 0.95)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets, ref_targets, rtol=1e-5, atol=1e-5)


def test_gae_by_hand_single_env():
    # gamma = 0.5, lambda = 1; time-out at t = 1 with V(final obs) = 8.
    # t=2: delta = 1 + 0.5*V_last(4) - 2 = 1               A2 = 1
    # t=1: delta = 2 + 0.5*8 - 3 = 3 (bootstrap, no carry) A1 = 3
    # t=0: delta = 0 + 0.5*3 - 1 = 0.5                     A0 = 0.5 + 0.5*3 = 2
    adv, targets = ppo.gae(
        jnp.array([[0.0], [2.0], [1.0]]),
        jnp.array([[1.0], [3.0], [2.0]]),
        jnp.array([[0.0], [1.0], [0.0]]),
        jnp.array([[0.0], [1.0], [0.0]]),
        jnp.array([[99.0], [8.0], [99.0]]),
        jnp.array([4.0]),
        0.5,
        1.0,
    )
    np.testing.assert_allclose(adv[:, 0], [2.0, 3.0, 1.0])
    np.testing.assert_allclose(targets[:, 0], [3.0, 6.0, 3.0])


def test_per_task_advantage_normalisation():
    rng = np.random.default_rng(1)
    adv = jnp.asarray(rng.normal(size=(3, 50)) * np.array([[0.01], [1.0], [100.0]]) + np.array([[5.0], [0.0], [-7.0]]))
    out = np.asarray(ppo.normalize_per_task(adv))
    np.testing.assert_allclose(out.mean(1), 0.0, atol=1e-4)  # float32: offset 5 over a scale of 0.01
    np.testing.assert_allclose(out.std(1), 1.0, rtol=1e-4)
    # Invariant to a positive affine change of one task's advantages, and tasks do not mix.
    changed = adv.at[1].set(3.0 * adv[1] + 11.0)
    np.testing.assert_allclose(ppo.normalize_per_task(changed), out, rtol=1e-4, atol=1e-5)


def test_clipped_surrogate_by_hand():
    # ratios e^0.5 = 1.649 (clipped to 1.2), e^-0.5 = 0.607 (clipped to 0.8), 1.0, 1.1
    # advantages   +1 -> min(1.649, 1.2) = 1.2;  +2 -> min(1.213, 1.6) = 1.213;
    #              -1 -> -1;  -3 -> min(-3.3, -3.3) = -3.3  => loss = -(1.2 + 1.2131 - 1 - 3.3) / 4
    log_ratio = np.array([0.5, -0.5, 0.0, np.log(1.1)])
    adv = jnp.array([1.0, 2.0, -1.0, -3.0])
    loss = ppo.clipped_surrogate(jnp.asarray(log_ratio), jnp.zeros(4), adv, 0.2)
    expected = -(1.2 + 2 * np.exp(-0.5) - 1.0 - 3.3) / 4
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(ppo.approx_kl(jnp.zeros(4), jnp.zeros(4))) == 0.0


def test_value_loss_is_on_popart_normalised_targets():
    state = popart.init_popart(2).replace(mean=jnp.array([0.0, 10.0]), second_moment=jnp.array([1.0, 116.0]))  # sigma 1, 4
    critic = nets.Critic(hidden=(8,), layer_norm=True)
    obs = jax.random.normal(jax.random.PRNGKey(0), (6, 5))
    params = critic.init(jax.random.PRNGKey(1), obs)
    samples = ppo.TaskSamples(obs, None, None, None, jnp.linspace(0.0, 30.0, 6), jnp.array(1))
    loss, _ = ppo.critic_task_loss(params, critic.apply, state, samples)
    prediction = np.asarray(critic.apply(params, obs))[:, 0]
    expected = 0.5 * np.mean((prediction - (np.linspace(0, 30, 6) - 10.0) / 4.0) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_actor_loss_at_the_behaviour_policy():
    actor = nets.Actor(hidden=(8,), action_size=2)
    obs = jax.random.normal(jax.random.PRNGKey(0), (7, 5))
    params = actor.init(jax.random.PRNGKey(1), obs)
    mean, log_std = actor.apply(params, obs)
    _, u, log_prob = nets.sample_action(jax.random.PRNGKey(2), mean, log_std)
    adv = jnp.arange(7.0) - 3.0
    samples = ppo.TaskSamples(obs, u, log_prob, adv, None, jnp.array(0))
    key = jax.random.PRNGKey(3)
    loss, (surrogate, entropy, kl, clip_frac, mean_log_std) = ppo.actor_task_loss(params, actor.apply, samples, key, 0.2, 0.01)
    # Ratio 1 everywhere: surrogate = -mean(A), no clipping, KL 0.
    assert float(surrogate) == pytest.approx(-float(adv.mean()), abs=1e-5)
    assert float(kl) == pytest.approx(0.0, abs=1e-6) and float(clip_frac) == 0.0
    assert float(loss) == pytest.approx(float(surrogate) - 0.01 * float(entropy), rel=1e-6)
    assert float(entropy) == pytest.approx(float(jnp.mean(nets.squashed_entropy(key, mean, log_std))), rel=1e-6)
    assert float(mean_log_std) == pytest.approx(float(jnp.mean(log_std)), rel=1e-6)


def test_welford_merges_batches_exactly_and_skips_the_one_hot():
    rng = np.random.default_rng(2)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (5, 17, 1, 40)]
    stats = ppo.init_running_stats(4)
    for c in chunks:
        stats = ppo.update_running_stats(stats, jnp.asarray(c))
    data = np.concatenate(chunks)
    assert float(stats.count) == len(data)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.m2 / stats.count, data.var(0), rtol=1e-4)
    one_hot = np.eye(3)[[0, 2]]
    obs = jnp.asarray(np.concatenate([data[:2], one_hot], axis=1))
    out = np.asarray(ppo.normalize_obs(stats, obs))
    np.testing.assert_allclose(out[:, :4], (data[:2] - data.mean(0)) / np.sqrt(data.var(0) + 1e-8), rtol=1e-4)
    np.testing.assert_array_equal(out[:, 4:], one_hot)
    # Before any data the normaliser is the identity; far outliers are clipped to +-10.
    np.testing.assert_allclose(ppo.normalize_obs(ppo.init_running_stats(4), obs), obs, rtol=1e-6)
    assert float(ppo.normalize_obs(stats, obs.at[0, 0].set(1e6))[0, 0]) == 10.0


def test_stratified_minibatches_hold_every_task_and_partition_each_tasks_samples():
    num_tasks, n, m = 3, 12, 4
    ids = jnp.arange(num_tasks * n).reshape(num_tasks, n)  # a unique id per sample
    batch = {"id": ids, "x": jnp.stack([ids, -ids], axis=-1).astype(jnp.float32)}
    out = ppo.stratified_minibatches(jax.random.PRNGKey(0), batch, m)
    assert out["id"].shape == (m, num_tasks, n // m) and out["x"].shape == (m, num_tasks, n // m, 2)
    ids_out = np.asarray(out["id"])
    for t in range(num_tasks):
        # Every minibatch holds n/m samples of task t, and together they are task t's samples once each.
        assert sorted(ids_out[:, t].ravel().tolist()) == list(range(t * n, (t + 1) * n))
    np.testing.assert_array_equal(np.asarray(out["x"])[..., 0], ids_out)  # fields stay aligned
    again = ppo.stratified_minibatches(jax.random.PRNGKey(1), batch, m)
    assert not np.array_equal(np.asarray(again["id"]), ids_out)  # reshuffled per key


def test_optimizer_clips_the_global_norm_before_adam():
    tx = ppo.make_optimizer(1e-3, 1e-5, max_grad_norm=1.0)
    params = {"w": jnp.zeros(2)}
    state = tx.init(params)
    grads = {"w": jnp.array([6.0, 8.0])}  # norm 10
    _, state = tx.update(grads, state, params)
    adam_state = state[1][0]
    # Adam's first moment after one step: (1 - 0.9) * g_clipped, g_clipped = g / 10.
    np.testing.assert_allclose(adam_state.mu["w"], 0.1 * np.array([0.6, 0.8]), rtol=1e-6)
    assert float(optax.tree.norm(grads)) == pytest.approx(10.0)
