"""The JAX reward helpers equal metaworld.utils.reward_utils (and scipy) on random inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from metaworld.utils import reward_utils
from scipy.spatial.transform import Rotation

from envs import rewards

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("sigmoid", ["gaussian", "long_tail", "reciprocal", "hyperbolic", "linear", "quadratic", "tanh_squared"])
def test_tolerance_matches_official(sigmoid):
    for _ in range(200):
        x = RNG.uniform(-1, 2)
        lo = RNG.uniform(-0.5, 0.5)
        hi = lo + RNG.choice([0.0, RNG.uniform(0, 0.5)])
        margin = RNG.choice([0.0, RNG.uniform(0.01, 1.0)])
        want = reward_utils.tolerance(x, bounds=(lo, hi), margin=margin, sigmoid=sigmoid)
        got = rewards.tolerance(jnp.float32(x), bounds=(lo, hi), margin=margin, sigmoid=sigmoid)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_hamacher_product_matches_official():
    for a, b in [(0.0, 0.0), (1.0, 0.0), (0.3, 0.7), (1.0, 1.0)] + [tuple(RNG.uniform(0, 1, 2)) for _ in range(100)]:
        np.testing.assert_allclose(rewards.hamacher_product(jnp.float32(a), jnp.float32(b)), reward_utils.hamacher_product(a, b), rtol=1e-6, atol=1e-7)


def test_rect_prism_tolerance_matches_official():
    zero, one = np.array([0.1, -0.2, 0.3]), np.array([-0.3, 0.4, 0.5])
    for _ in range(200):
        curr = RNG.uniform(-0.5, 0.6, 3)
        np.testing.assert_allclose(rewards.rect_prism_tolerance(jnp.asarray(curr), jnp.asarray(zero), jnp.asarray(one)),
                                   reward_utils.rect_prism_tolerance(curr, zero, one), rtol=1e-5, atol=1e-6)


def test_scipy_quat_from_matrix_matches_scipy_on_every_branch():
    mats = list(Rotation.random(300, random_state=1).as_matrix())
    # rotations by ~pi about each axis force each Shepperd branch
    mats += [Rotation.from_rotvec(np.pi * 0.99 * np.eye(3)[i]).as_matrix() for i in range(3)] + [np.eye(3)]
    got = jax.vmap(rewards.scipy_quat_from_matrix)(jnp.asarray(np.stack(mats), jnp.float32))
    want = Rotation.from_matrix(np.stack(mats)).as_quat()
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_unknown_sigmoid_names_valid_choices():
    with pytest.raises(ValueError, match="valid: gaussian"):
        rewards.tolerance(0.5, bounds=(0, 0.1), margin=1.0, sigmoid="sigmoidal")
