"""Multi-task gradient combiners and the D1/D2 gradient diagnostics, as pure functions.

Every function takes per-task gradients stacked on a leading task axis (a pytree whose leaves have
shape [T, ...]) and returns one gradient pytree without the task axis, so it jits, vmaps and tests in
isolation. Each task's gradient is flattened with `ravel_pytree` into a row g_i of G [T, P]. All four
combiners return a weighted sum d = sum_i w_i g_i whose weights depend on G only through the Gram
matrix M = G G^T, so the work on the P parameters is one Gram and one weighted sum; the T x T solves
(PCGrad projections, the CAGrad dual, the FairGrad equation) run in weight space. The Gram is also
what the diagnostics read (D1: spread of squared norms diag(M); D2: mean off-diagonal cosine).

Scale conventions: `mean`, `pcgrad` and `cagrad` are on the scale of the mean gradient (PCGrad
averages the projected gradients as its reference PyTorch port does; CAGrad divides by 1 + c^2 as its
authors' code does by default, so c = 0 is exactly the mean). `fairgrad` returns sum_i w_i g_i with
the paper's w, solving M w = w^(-1/alpha), which is not rescaled: for T orthogonal gradients of equal
squared norm s it is T s^(-alpha/(1+alpha)) times the mean. Adam and global-norm clipping absorb the
scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

COMBINERS = ("mean", "pcgrad", "cagrad", "fairgrad")

_TINY = 1e-20
_HIGHEST = jax.lax.Precision.HIGHEST


def flatten_tasks(grads):
    """Stacked per-task pytree -> (G [T, P], unravel) where unravel maps a [P] vector to one gradient."""
    first = jax.tree_util.tree_map(lambda x: x[0], grads)
    _, unravel = ravel_pytree(first)
    matrix = jax.vmap(lambda g: ravel_pytree(g)[0])(grads)
    return matrix, unravel


def gram(matrix: jax.Array) -> jax.Array:
    """M = G G^T, M_ij = <g_i, g_j>."""
    return jnp.matmul(matrix, matrix.T, precision=_HIGHEST)


def _weighted_sum(weights: jax.Array, matrix: jax.Array) -> jax.Array:
    return jnp.matmul(weights, matrix, precision=_HIGHEST)


def _best_of(merit, x, direction, steps):
    """Of x + t d for t in `steps` and x itself, the point of lowest finite merit: a jittable line search."""
    candidates = jnp.concatenate([x[None] + steps[:, None] * direction[None], x[None]], axis=0)
    values = jax.vmap(merit)(candidates)
    return candidates[jnp.argmin(jnp.where(jnp.isfinite(values), values, jnp.inf))]


def _max_step_inside(x, direction):
    """Largest t <= 1 such that x + t d keeps every coordinate at >= 5% of its value (fraction to the boundary)."""
    shrink = jnp.where(direction < 0, -0.95 * x / jnp.minimum(direction, -_TINY), jnp.inf)
    return jnp.minimum(1.0, jnp.min(shrink))


# --------------------------------------------------------------------------------------- weights


def mean_weights(num_tasks: int) -> jax.Array:
    """w_i = 1/T: d = (1/T) sum_i g_i."""
    return jnp.full((num_tasks,), 1.0 / num_tasks, jnp.float32)


def pcgrad_weights(m: jax.Array, rng: jax.Array) -> jax.Array:
    """PCGrad: g_i <- g_i - min(<g_i, g_j>, 0) / |g_j|^2 g_j over j != i in random order; d = (1/T) sum_i g_i (Yu et al. 2020, Alg. 1).

    Projected gradients stay in the span of the originals, so each is tracked as a coefficient row
    c_i (g_i^PC = sum_k c_ik g_k) with <g_i^PC, g_j> = (c_i M)_j. Every task draws its own order.
    """
    num_tasks = m.shape[0]
    eye = jnp.eye(num_tasks, dtype=m.dtype)

    def project_one(i, key):
        order = jax.random.permutation(key, num_tasks)

        def body(coef, j):
            dot = coef @ m[:, j]
            conflict = (dot < 0.0) & (j != i)
            coef = coef - jnp.where(conflict, dot / jnp.maximum(m[j, j], _TINY), 0.0) * eye[j]
            return coef, None

        coef, _ = jax.lax.scan(body, eye[i], order)
        return coef

    coefs = jax.vmap(project_one)(jnp.arange(num_tasks), jax.random.split(rng, num_tasks))
    return jnp.mean(coefs, axis=0)


def cagrad_weights(m: jax.Array, c: float, iterations: int = 60) -> jax.Array:
    """CAGrad: x* = argmin_{x in simplex} x^T M g0 + c |g0| |G^T x|, d = (g0 + c |g0| / |G^T x*| G^T x*) / (1 + c^2), g0 = 1/T (Liu et al. 2021, eq. 7).

    The dual over the simplex is solved by a log-barrier interior-point method: one damped Newton
    step on phi_t(x) = t f(x) - sum_i log x_i subject to sum_i x_i = 1 per iteration, t growing by
    1.4 per step from 1 (to ~4e8 after 60 steps), the step length chosen to reduce the KKT residual,
    on M scaled by its mean diagonal (the minimiser does not depend on that scale). Newton steps make
    the solve insensitive to the spread of task gradient norms, the case that matters (D1), where
    projected gradient stalls.
    """
    num_tasks = m.shape[0]
    g0 = jnp.full((num_tasks,), 1.0 / num_tasks, m.dtype)
    scale = jnp.maximum(jnp.mean(jnp.diag(m)), _TINY)
    mn = m / scale
    linear = mn @ g0
    kappa = c * jnp.sqrt(jnp.maximum(g0 @ mn @ g0, 0.0))
    eps = 1e-12
    ones = jnp.ones((num_tasks,), m.dtype)
    steps = 2.0 ** -jnp.arange(0, 20, dtype=m.dtype)

    def barrier_grad(x, t):
        mx = mn @ x
        norm = jnp.sqrt(jnp.maximum(x @ mx, 0.0) + eps)
        return t * (linear + kappa * mx / norm) - 1.0 / x, mx, norm

    def body(x, k):
        t = 1.4**k
        grad, mx, norm = barrier_grad(x, t)
        hess = t * kappa * (mn / norm - jnp.outer(mx, mx) / norm**3) + jnp.diag(1.0 / x**2)
        # Newton step restricted to sum(delta) = 0 (KKT system of the equality constraint).
        kkt = jnp.block([[hess, ones[:, None]], [ones[None, :], jnp.zeros((1, 1), m.dtype)]])
        rhs = jnp.concatenate([-grad, jnp.zeros((1,), m.dtype)])
        delta = jnp.linalg.solve(kkt, rhs)[:num_tasks]

        def merit(z):
            # |P grad phi_t(z)|^2, P the projection on sum = 0: the KKT residual, which the Newton
            # step decreases; a gradient resolves the optimum far better than a float32 value does.
            g = barrier_grad(z, t)[0]
            return jnp.sum(jnp.square(g - jnp.mean(g))) + jnp.where(jnp.all(z > 0), 0.0, jnp.inf)

        x = _best_of(merit, x, delta, _max_step_inside(x, delta) * steps)
        return x / jnp.sum(x), None

    x, _ = jax.lax.scan(body, g0, jnp.arange(iterations, dtype=m.dtype))
    gx_norm = jnp.sqrt(jnp.maximum(x @ m @ x, 0.0))
    g0_norm = jnp.sqrt(jnp.maximum(g0 @ m @ g0, 0.0))
    lam = c * g0_norm / (gx_norm + 1e-8 * jnp.sqrt(scale))
    return (g0 + lam * x) / (1.0 + c**2)


def fairgrad_weights(m: jax.Array, alpha: float, iterations: int = 30) -> jax.Array:
    """FairGrad: w > 0 solving M w = w^(-1/alpha), d = sum_i w_i g_i (Ban & Ji 2024, eq. 8).

    Damped Newton on the residual r(w) = M w - w^(-1/alpha) (its Jacobian M + diag(w^(-1/alpha-1) /
    alpha) is positive definite), keeping w > 0 and taking the step length that most reduces |r|. M
    is scaled by its mean diagonal s, plus a 1e-6 ridge so a zero gradient gets a finite weight;
    since (s M') w = w^(-1/alpha) is solved by w = w' s^(-alpha/(1+alpha)), the weights are rescaled
    back. In float32 the accuracy of w is about cond(M) * 6e-8, as for any solver fed this Gram.
    """
    num_tasks = m.shape[0]
    scale = jnp.maximum(jnp.mean(jnp.diag(m)), _TINY)
    mn = m / scale + 1e-6 * jnp.eye(num_tasks, dtype=m.dtype)
    steps = 2.0 ** -jnp.arange(0, 20, dtype=m.dtype)

    def residual(w):
        return mn @ w - w ** (-1.0 / alpha)

    def merit(w):
        return jnp.sum(jnp.square(residual(w))) + jnp.where(jnp.all(w > 0), 0.0, jnp.inf)

    def body(w, _):
        jac = mn + jnp.diag(w ** (-1.0 / alpha - 1.0) / alpha)
        delta = -jnp.linalg.solve(jac, residual(w))
        return _best_of(merit, w, delta, _max_step_inside(w, delta) * steps), None

    w, _ = jax.lax.scan(body, jnp.ones((num_tasks,), m.dtype), None, length=iterations)
    return w * scale ** (-alpha / (1.0 + alpha))


# ---------------------------------------------------------------------------------- pytree API


def mean(grads):
    """d = (1/T) sum_i g_i."""
    return jax.tree_util.tree_map(lambda x: jnp.mean(x, axis=0), grads)


def _combine_with(weights_fn, grads):
    matrix, unravel = flatten_tasks(grads)
    return unravel(_weighted_sum(weights_fn(gram(matrix)), matrix))


def pcgrad(grads, rng: jax.Array):
    """PCGrad (Yu et al. 2020): project each g_i off every conflicting g_j, then average."""
    return _combine_with(lambda m: pcgrad_weights(m, rng), grads)


def cagrad(grads, c: float):
    """CAGrad (Liu et al. 2021): d = (g0 + c |g0| g_w / |g_w|) / (1 + c^2) with w the dual minimiser."""
    return _combine_with(lambda m: cagrad_weights(m, c), grads)


def fairgrad(grads, alpha: float):
    """FairGrad (Ban & Ji 2024): d = sum_i w_i g_i with M w = w^(-1/alpha)."""
    return _combine_with(lambda m: fairgrad_weights(m, alpha), grads)


def combine(name: str, grads, rng: jax.Array, *, cagrad_c: float = 0.5, fairgrad_alpha: float = 2.0):
    """The trainer's entry point: (combined gradient, Gram M) for the named combiner.

    The Gram is returned so the diagnostics reuse it; `mean` computes it only for them.
    """
    matrix, unravel = flatten_tasks(grads)
    m = gram(matrix)
    if name == "mean":
        weights = mean_weights(m.shape[0]).astype(m.dtype)
    elif name == "pcgrad":
        weights = pcgrad_weights(m, rng)
    elif name == "cagrad":
        weights = cagrad_weights(m, cagrad_c)
    elif name == "fairgrad":
        weights = fairgrad_weights(m, fairgrad_alpha)
    else:
        raise ValueError(f"unknown combiner {name!r}; valid: {', '.join(COMBINERS)}")
    return unravel(_weighted_sum(weights, matrix)), m


# ---------------------------------------------------------------------------------- diagnostics


def diagnostics_from_gram(m: jax.Array) -> dict[str, jax.Array]:
    """Per-task norms |g_i| = sqrt(M_ii); D1 = log10(max_i M_ii / min_i M_ii); D2 = mean_{i != j} M_ij / (|g_i| |g_j|) (0 when T = 1)."""
    num_tasks = m.shape[0]
    sq = jnp.diag(m)
    norms = jnp.sqrt(jnp.maximum(sq, 0.0))
    d1 = jnp.log10(jnp.maximum(jnp.max(sq), _TINY) / jnp.maximum(jnp.min(sq), _TINY))
    cosine = m / jnp.maximum(norms[:, None] * norms[None, :], _TINY)
    if num_tasks > 1:
        d2 = (jnp.sum(cosine) - jnp.trace(cosine)) / (num_tasks * (num_tasks - 1))
    else:
        d2 = jnp.zeros((), m.dtype)
    return {"grad_norms": norms, "d1": d1, "d2": d2}


def diagnostics(grads) -> dict[str, jax.Array]:
    """D1/D2 diagnostics of stacked per-task gradients (see `diagnostics_from_gram`)."""
    matrix, _ = flatten_tasks(grads)
    return diagnostics_from_gram(gram(matrix))
