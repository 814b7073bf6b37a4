"""Networks: the MT50 parameter count, pre-activation LayerNorm, and the squashed-Gaussian maths."""

from conftest_fake_env import fast_jit
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toppo_jax import networks as nets


def _mt50(**kwargs):
    return nets.make_networks(39 + 50, 4, 50, **kwargs)


def _shapes(networks):
    """Parameter shapes without running the initialisers (counting needs no values)."""
    return jax.eval_shape(networks.init, jax.random.PRNGKey(0))


def test_mt50_default_parameter_count_is_717k():
    actor_params, critic_params = _shapes(_mt50())
    # Actor 89 -> 400 -> 400 -> 400 -> 8: (89*400 + 400) + 2 (400*400 + 400) + (400*8 + 8)
    #   = 36,000 + 320,800 + 3,208 = 360,008.
    # Critic 89 -> 400 -> 400 -> 400 -> 1, LayerNorm without affine (no parameters):
    #   36,000 + 320,800 + 401 = 357,201.
    assert nets.count_params(actor_params) == 360_008
    assert nets.count_params(critic_params) == 357_201
    assert nets.count_params(actor_params) + nets.count_params(critic_params) == 717_209
    # With PopArt (the default config) the scalar head gets a trained per-task affine: 2 x 50 more, still 717K.
    from toppo_jax import config as cfg
    from toppo_jax.learner import build_networks

    _, with_popart = _shapes(build_networks(cfg.Config(), 89, 4, 50))
    assert nets.count_params(with_popart) == 357_201 + 100


def test_ln_affine_and_per_task_heads_change_the_count_as_computed():
    _, base = _shapes(_mt50())
    _, affine = _shapes(_mt50(ln_affine=True))
    _, heads = _shapes(_mt50(per_task_heads=True))
    assert nets.count_params(affine) - nets.count_params(base) == 3 * 2 * 400  # scale + bias per LN
    assert nets.count_params(heads) - nets.count_params(base) == (400 * 50 + 50) - (400 + 1)
    assert heads["params"]["head"]["kernel"].shape == (400, 50)


def _scale_hidden_layers(params, factor):
    inner = dict(params["params"])
    for name in inner:
        if name.startswith("Dense_"):
            inner[name] = jax.tree_util.tree_map(lambda x: x * factor, inner[name])
    return {"params": inner}


@pytest.mark.parametrize("layer_norm", [True, False])
def test_critic_layer_norm_sits_before_the_activation(layer_norm):
    # LN(c (W x + b)) = LN(W x + b) for c > 0: with Linear -> LN -> ReLU the output does not see a
    # rescaling of the hidden Linear layers. Without LN, ReLU layers with zero (initial) biases are
    # positively homogeneous, so scaling three hidden layers by c scales the head's input by c^3.
    critic = nets.Critic(hidden=(16, 16, 16), layer_norm=layer_norm)
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 12))
    params = fast_jit(critic.init)(jax.random.PRNGKey(0), obs)
    apply = fast_jit(critic.apply)
    out = apply(params, obs)
    scaled = apply(_scale_hidden_layers(params, 3.0), obs)
    if layer_norm:
        np.testing.assert_allclose(scaled, out, rtol=1e-4, atol=1e-5)
        assert not any("LayerNorm" in k for k in params["params"])  # no affine by default
    else:
        head = params["params"]["head"]
        np.testing.assert_allclose(scaled - head["bias"], 27.0 * (out - head["bias"]), rtol=1e-4, atol=1e-4)


def test_actor_outputs_bounded_log_std_and_tanh_mean_action():
    actor = nets.Actor(hidden=(8,), action_size=4)
    obs = 100.0 * jax.random.normal(jax.random.PRNGKey(2), (64, 10))
    params = fast_jit(actor.init)(jax.random.PRNGKey(0), obs)
    params["params"]["head"]["kernel"] = params["params"]["head"]["kernel"] * 1e4
    mean, log_std = fast_jit(actor.apply)(params, obs)
    assert mean.shape == log_std.shape == (64, 4)
    assert float(log_std.min()) >= nets.LOG_STD_MIN and float(log_std.max()) <= nets.LOG_STD_MAX
    assert float(log_std.min()) == nets.LOG_STD_MIN and float(log_std.max()) == nets.LOG_STD_MAX
    np.testing.assert_allclose(nets.deterministic_action(mean), np.tanh(np.asarray(mean)), rtol=1e-6)
    narrow = nets.Actor(hidden=(8,), action_size=4, log_std_min=-2.0, log_std_max=0.0)
    _, log_std = fast_jit(narrow.apply)(params, obs)
    assert float(log_std.min()) == -2.0 and float(log_std.max()) == 0.0


def test_gaussian_log_prob_and_tanh_jacobian_match_closed_forms():
    u = jnp.array([[0.3, -1.2], [2.0, 0.0]])
    mean = jnp.array([[0.0, -1.0], [1.5, 0.5]])
    log_std = jnp.array([[0.0, -0.5], [0.2, -1.0]])
    std = np.exp(np.asarray(log_std))
    expected = np.sum(-0.5 * ((np.asarray(u) - np.asarray(mean)) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), -1)
    np.testing.assert_allclose(nets.gaussian_log_prob(u, mean, log_std), expected, rtol=1e-5)
    np.testing.assert_allclose(
        nets.tanh_log_det_jacobian(u), np.sum(np.log(1 - np.tanh(np.asarray(u)) ** 2), -1), rtol=1e-5
    )
    # Stable where 1 - tanh^2 underflows: log(1 - tanh(20)^2) = 2 (log 2 - 20 - log(1 + e^-40)).
    np.testing.assert_allclose(nets.tanh_log_det_jacobian(jnp.array([20.0])), 2 * (np.log(2) - 20), rtol=1e-6)


def test_sample_action_is_tanh_of_a_gaussian_sample_with_its_log_prob():
    mean, log_std = jnp.zeros((3, 4)), jnp.full((3, 4), -0.3)
    action, u, log_prob = nets.sample_action(jax.random.PRNGKey(0), mean, log_std)
    np.testing.assert_allclose(action, np.tanh(np.asarray(u)), rtol=1e-6)
    np.testing.assert_allclose(log_prob, nets.gaussian_log_prob(u, mean, log_std), rtol=1e-6)


def test_squashed_entropy_estimate_is_unbiased():
    mean = jnp.array([0.5, -1.0, 0.0, 2.0])
    log_std = jnp.array([0.0, -0.5, 0.5, -1.0])
    keys = jax.random.split(jax.random.PRNGKey(3), 20_000)
    estimates = jax.vmap(lambda k: nets.squashed_entropy(k, mean, log_std))(keys)
    # Reference: H[tanh u] = H[u] + E log|det J_tanh(u)|, by numpy Monte Carlo on fresh samples.
    rng = np.random.default_rng(0)
    u = np.asarray(mean) + np.exp(np.asarray(log_std)) * rng.standard_normal((200_000, 4))
    gaussian = np.sum(0.5 * np.log(2 * np.pi * np.e) + np.asarray(log_std))
    reference = gaussian + np.mean(np.sum(np.log(1 - np.tanh(u) ** 2), -1))
    assert abs(float(estimates.mean()) - reference) < 0.03
    assert reference < gaussian  # squashing only removes entropy


def test_soft_clip_is_near_identity_inside_bounded_outside_and_never_stops_the_gradient():
    x = jnp.array([-50.0, -8.0, -1.0, 0.0, 0.5, 6.0, 50.0])
    y = np.asarray(nets.soft_clip(x, -5.0, 2.0))
    assert np.all(y >= -5.0) and np.all(y <= 2.0 + np.log1p(np.exp(-7.0)) + 1e-6)
    assert y[0] == pytest.approx(-5.0, abs=1e-4) and y[-1] == pytest.approx(2.0, abs=1e-3)
    np.testing.assert_allclose(y[2:5], [-1.0, 0.0, 0.5], atol=0.2)
    assert np.all(np.diff(y) > 0)
    grads = np.asarray(jax.vmap(jax.grad(lambda v: nets.soft_clip(v, -5.0, 2.0)))(x[1:-1]))
    assert np.all(grads > 1e-3)  # a hard clip gives exactly 0 at -8 and 6
    actor = nets.Actor(hidden=(8,), action_size=4, log_std_clip="soft")
    obs = 100.0 * jax.random.normal(jax.random.PRNGKey(2), (64, 10))
    params = actor.init(jax.random.PRNGKey(0), obs)
    params["params"]["head"]["kernel"] = params["params"]["head"]["kernel"] * 1e4
    _, log_std = actor.apply(params, obs)
    overshoot = np.log1p(np.exp(nets.LOG_STD_MIN - nets.LOG_STD_MAX))  # softplus(low - high) past the top
    assert float(log_std.min()) >= nets.LOG_STD_MIN - 1e-6 and float(log_std.max()) <= nets.LOG_STD_MAX + overshoot + 1e-6


def test_state_independent_std_is_one_learned_vector():
    actor = nets.Actor(hidden=(8,), action_size=4, std="param")
    obs = jax.random.normal(jax.random.PRNGKey(2), (16, 10))
    params = actor.init(jax.random.PRNGKey(0), obs)
    assert params["params"]["head"]["kernel"].shape == (8, 4) and params["params"]["log_std"].shape == (4,)
    values = np.array([-9.0, -1.0, -0.25, 9.0], np.float32)
    params["params"]["log_std"] = jnp.asarray(values)
    mean, log_std = actor.apply(params, obs)
    assert mean.shape == log_std.shape == (16, 4)
    expected = np.clip(values, nets.LOG_STD_MIN, nets.LOG_STD_MAX)
    np.testing.assert_array_equal(log_std, np.broadcast_to(expected, (16, 4)))
    state_dependent = nets.count_params(nets.Actor(hidden=(8,), action_size=4).init(jax.random.PRNGKey(0), obs))
    assert nets.count_params(params) == state_dependent - (8 + 1) * 4 + 4
