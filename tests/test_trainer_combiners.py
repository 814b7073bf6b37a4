"""Gradient combiners and diagnostics: hand-computed cases, independent references, invariances, jit/vmap."""

import itertools

from conftest_fake_env import fast_jit
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toppo_jax import combiners

jit_pcgrad = fast_jit(combiners.pcgrad)
jit_cagrad = fast_jit(combiners.cagrad, static_argnums=1)
jit_fairgrad = fast_jit(combiners.fairgrad, static_argnums=1)
jit_cagrad_weights = fast_jit(combiners.cagrad_weights, static_argnums=1)
jit_fairgrad_weights = fast_jit(combiners.fairgrad_weights, static_argnums=1)


def _as_tree(matrix):
    """Rows of `matrix` as a stacked two-leaf pytree (first column apart), to exercise ravel/unravel."""
    matrix = jnp.asarray(matrix, jnp.float32)
    return {"a": matrix[:, :1], "b": {"c": matrix[:, 1:]}}


def _flat(tree):
    return np.concatenate([np.asarray(tree["a"]).ravel(), np.asarray(tree["b"]["c"]).ravel()])


def _random_grads(seed, num_tasks, dim, spread=1.0):
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.uniform(-spread, spread, (num_tasks, 1)))
    return (rng.normal(size=(num_tasks, dim)) * scales).astype(np.float32)


# ------------------------------------------------------------------------------------ mean


def test_mean_is_the_average_and_permutation_invariant():
    g = _random_grads(0, 5, 7)
    np.testing.assert_allclose(_flat(combiners.mean(_as_tree(g))), g.mean(0), rtol=1e-6)
    np.testing.assert_allclose(_flat(combiners.mean(_as_tree(g[::-1]))), g.mean(0), rtol=1e-6)


# ---------------------------------------------------------------------------------- PCGrad


def test_pcgrad_two_conflicting_vectors_by_hand():
    # g1 = (1, 0), g2 = (-1, 1): <g1, g2> = -1 < 0.
    # g1' = g1 + 1/2 g2 = (0.5, 0.5); g2' = g2 + 1/1 g1 = (0, 1); mean = (0.25, 0.75), any order.
    g = np.array([[1.0, 0.0], [-1.0, 1.0]])
    for seed in range(4):
        out = _flat(jit_pcgrad(_as_tree(g), jax.random.PRNGKey(seed)))
        np.testing.assert_allclose(out, [0.25, 0.75], atol=1e-6)


def test_pcgrad_leaves_agreeing_gradients_alone():
    g = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_allclose(_flat(jit_pcgrad(_as_tree(g), jax.random.PRNGKey(0))), g.mean(0), atol=1e-6)


def test_pcgrad_matches_a_sequential_numpy_reference_with_the_same_orders():
    g = _random_grads(1, 4, 6, spread=1.0)
    g[1] = -0.8 * g[0] + 0.2 * g[1]  # guarantee conflicts
    key = jax.random.PRNGKey(7)
    # The orders pcgrad_weights draws: task i uses permutation(split(key, T)[i], T).
    orders = [np.asarray(jax.random.permutation(k, 4)) for k in jax.random.split(key, 4)]
    projected = []
    for i in range(4):
        gi = g[i].astype(np.float64).copy()
        for j in orders[i]:
            if j != i and gi @ g[j] < 0:
                gi -= (gi @ g[j]) / (g[j] @ g[j]) * g[j]
        projected.append(gi)
    expected = np.mean(projected, axis=0)
    np.testing.assert_allclose(_flat(jit_pcgrad(_as_tree(g), key)), expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------- CAGrad


def test_cagrad_with_c_zero_is_the_mean():
    g = _random_grads(2, 6, 9, spread=2.0)
    np.testing.assert_allclose(_flat(jit_cagrad(_as_tree(g), 0.0)), g.mean(0), rtol=1e-5, atol=1e-6)


def test_cagrad_symmetric_orthogonal_case_by_hand():
    # g1 = e1, g2 = e2: by symmetry w = (1/2, 1/2), g_w = g0 = (1/2, 1/2), so
    # d = (g0 + c |g0| / |g0| g0) / (1 + c^2) = (1 + c) / (1 + c^2) g0 = 1.2 g0 for c = 0.5.
    out = _flat(jit_cagrad(_as_tree(np.eye(2)), 0.5))
    np.testing.assert_allclose(out, [0.6, 0.6], rtol=1e-5)


def _cagrad_brute_force(g, c, grid):
    """CAGrad by enumerating the dual over a grid of the simplex (numpy, float64)."""
    g = g.astype(np.float64)
    g0 = g.mean(0)
    best, best_x = np.inf, None
    for x in grid:
        gx = x @ g
        value = gx @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gx)
        if value < best:
            best, best_x = value, x
    gx = best_x @ g
    return (g0 + c * np.linalg.norm(g0) / np.linalg.norm(gx) * gx) / (1 + c**2)


@pytest.mark.parametrize("c", [0.5, 0.9])
def test_cagrad_matches_brute_force_dual(c):
    g2 = np.array([[2.0, 0.5, 0.0], [-1.0, 1.0, 0.3]])
    grid2 = [np.array([t, 1 - t]) for t in np.linspace(0, 1, 20001)]
    np.testing.assert_allclose(_flat(jit_cagrad(_as_tree(g2), c)), _cagrad_brute_force(g2, c, grid2), rtol=2e-3, atol=1e-4)
    g3 = _random_grads(3, 3, 5, spread=1.0)
    ticks = np.linspace(0, 1, 301)
    grid3 = [np.array([a, b, 1 - a - b]) for a, b in itertools.product(ticks, ticks) if a + b <= 1 + 1e-12]
    expected = _cagrad_brute_force(g3, c, grid3)
    out = _flat(jit_cagrad(_as_tree(g3), c))
    assert np.linalg.norm(out - expected) <= 5e-3 * np.linalg.norm(expected)


def test_cagrad_maximises_the_worst_task_improvement_in_its_ball():
    # Primal view (Liu et al. 2021, eq. 5): d* = argmax_{|d - g0| <= c|g0|} min_i <g_i, d>, and the
    # returned direction is d* / (1 + c^2). No point of the ball may beat it (sampled), and it lies on
    # the ball's boundary.
    c = 0.5
    g = _random_grads(4, 5, 6, spread=2.0)  # squared norms spread over ~e^8: the D1 regime
    d = (1 + c**2) * _flat(jit_cagrad(_as_tree(g), c)).astype(np.float64)
    g0 = g.mean(0).astype(np.float64)
    radius = c * np.linalg.norm(g0)
    assert np.linalg.norm(d - g0) == pytest.approx(radius, rel=1e-4)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(100_000, 6))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    candidates = g0 + radius * u * rng.uniform(0, 1, (100_000, 1)) ** (1 / 6)
    worst = np.min(candidates @ g.T.astype(np.float64), axis=1)
    assert np.min(g @ d) >= worst.max() - 1e-4 * abs(worst.max())


# -------------------------------------------------------------------------------- FairGrad


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_fairgrad_orthogonal_equal_norms_give_the_mean_direction_with_the_papers_scale(alpha):
    # g_i = 2 e_i (squared norm s = 4): M = s I, so s w_i = w_i^(-1/alpha) -> w_i = s^(-alpha/(1+alpha)).
    # The combined sum_i w_i g_i is the mean direction, scaled by T s^(-alpha/(1+alpha)) (no rescaling).
    g = 2.0 * np.eye(3)
    out = _flat(jit_fairgrad(_as_tree(g), alpha))
    w = 4.0 ** (-alpha / (1 + alpha))
    np.testing.assert_allclose(out, 3 * w * g.mean(0), rtol=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0])
def test_fairgrad_weights_solve_the_fairness_equation(alpha):
    for seed, (num_tasks, dim, spread) in enumerate([(2, 6, 0.5), (5, 40, 1.5), (10, 200, 2.0)]):
        g = _random_grads(10 + seed, num_tasks, dim, spread).astype(np.float64)
        m = g @ g.T
        w = np.asarray(jit_fairgrad_weights(jnp.asarray(m, jnp.float32), alpha), np.float64)
        assert np.all(w > 0)
        target = w ** (-1.0 / alpha)
        assert np.linalg.norm(m @ w - target) <= 1e-3 * np.linalg.norm(target)


# ------------------------------------------------------------------------ invariances, jit, vmap


@pytest.mark.parametrize("name", ["mean", "cagrad", "fairgrad"])
def test_task_permutation_invariance(name):
    g = _random_grads(5, 6, 8, spread=1.5)
    perm = np.array([3, 0, 5, 1, 4, 2])
    fn = {"mean": combiners.mean, "cagrad": lambda t: jit_cagrad(t, 0.5), "fairgrad": lambda t: jit_fairgrad(t, 2.0)}[name]
    a, b = _flat(fn(_as_tree(g))), _flat(fn(_as_tree(g[perm])))
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5 * np.abs(a).max())


def test_combiners_jit_and_vmap_over_a_batch_of_task_stacks():
    stacks = np.stack([_random_grads(20 + s, 4, 5, spread=1.0) for s in range(3)])  # [seeds, T, P]
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    batched = _as_tree(stacks.reshape(-1, 5))
    batched = jax.tree_util.tree_map(lambda x: x.reshape((3, 4) + x.shape[1:]), batched)
    cases = {
        "pcgrad": (fast_jit(jax.vmap(combiners.pcgrad))(batched, keys), lambda i: jit_pcgrad(_as_tree(stacks[i]), keys[i])),
        "cagrad": (fast_jit(jax.vmap(lambda t: combiners.cagrad(t, 0.5)))(batched), lambda i: jit_cagrad(_as_tree(stacks[i]), 0.5)),
        "fairgrad": (
            fast_jit(jax.vmap(lambda t: combiners.fairgrad(t, 2.0)))(batched),
            lambda i: jit_fairgrad(_as_tree(stacks[i]), 2.0),
        ),
    }
    for name, (out, single) in cases.items():
        for i in range(3):
            one = jax.tree_util.tree_map(lambda x: x[i], out)
            np.testing.assert_allclose(_flat(one), _flat(single(i)), rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", combiners.COMBINERS)
def test_combine_dispatches_to_the_named_combiner(name):
    g = _random_grads(6, 3, 4)
    key = jax.random.PRNGKey(1)
    direct = {
        "mean": lambda: combiners.mean(_as_tree(g)),
        "pcgrad": lambda: jit_pcgrad(_as_tree(g), key),
        "cagrad": lambda: jit_cagrad(_as_tree(g), 0.3),
        "fairgrad": lambda: jit_fairgrad(_as_tree(g), 1.5),
    }[name]()
    out, gram = fast_jit(lambda t, k: combiners.combine(name, t, k, cagrad_c=0.3, fairgrad_alpha=1.5))(_as_tree(g), key)
    np.testing.assert_allclose(_flat(out), _flat(direct), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gram, g @ g.T, rtol=1e-5)
    with pytest.raises(ValueError, match="pcgard.*mean, pcgrad, cagrad, fairgrad"):
        combiners.combine("pcgard", _as_tree(g), key)


# ----------------------------------------------------------------------------- diagnostics


def test_diagnostics_by_hand():
    # g1 = (3, 0), g2 = (0, 1), g3 = (1, 1): squared norms 9, 1, 2 -> D1 = log10(9 / 1).
    # Cosines: (1,2) 0, (1,3) 1/sqrt2, (2,3) 1/sqrt2 -> D2 = (0 + 2/sqrt2) / 3.
    g = np.array([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = fast_jit(combiners.diagnostics)(_as_tree(g))
    np.testing.assert_allclose(out["grad_norms"], [3.0, 1.0, np.sqrt(2)], rtol=1e-6)
    assert float(out["d1"]) == pytest.approx(np.log10(9.0), rel=1e-6)
    assert float(out["d2"]) == pytest.approx(np.sqrt(2) / 3, rel=1e-6)


def test_diagnostics_detect_colinear_collapse_and_are_scale_aware():
    base = np.array([1.0, 2.0, -1.0])
    colinear = np.stack([base, 10 * base, 0.1 * base])
    out = combiners.diagnostics(_as_tree(colinear))
    assert float(out["d2"]) == pytest.approx(1.0, abs=1e-6)
    assert float(out["d1"]) == pytest.approx(4.0, abs=1e-5)  # (10 / 0.1)^2 = 1e4
    one = combiners.diagnostics(_as_tree(base[None]))
    assert float(one["d1"]) == 0.0 and float(one["d2"]) == 0.0
