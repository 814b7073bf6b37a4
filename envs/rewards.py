"""Meta-World's V2 reward helpers (``metaworld.utils.reward_utils`` and the base class's
gripper-caging term), rewritten as branch-free JAX functions, and the shaping terms the V1 rewards
repeat (``v1_progress``, ``v1_reach``; end of file).

Every Python ``if`` of the official helpers on a traced value becomes ``jnp.where``; the
official argument checks (``margin >= 0``, inputs in [0, 1]) hold by construction at every call
site, so they are not re-checked here. Each function matches the official one on scalars to
float32 precision (``tests/test_rewards.py`` checks this against the installed package).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

_DEFAULT_VALUE_AT_MARGIN = 0.1


def _sigmoid(x, value_at_1: float, kind: str):
    """dm_control sigmoids: maps distance-in-margins ``x`` >= 0 to (0, 1], 1 at x = 0."""
    if kind == "gaussian":
        scale = np.sqrt(-2 * np.log(value_at_1))
        return jnp.exp(-0.5 * (x * scale) ** 2)
    if kind == "long_tail":
        scale = np.sqrt(1 / value_at_1 - 1)
        return 1 / ((x * scale) ** 2 + 1)
    if kind == "reciprocal":
        scale = 1 / value_at_1 - 1
        return 1 / (jnp.abs(x) * scale + 1)
    if kind == "hyperbolic":
        scale = np.arccosh(1 / value_at_1)
        return 1 / jnp.cosh(x * scale)
    if kind == "linear":
        scaled = x * (1 - value_at_1)
        return jnp.where(jnp.abs(scaled) < 1, 1 - scaled, 0.0)
    if kind == "quadratic":
        scaled = x * np.sqrt(1 - value_at_1)
        return jnp.where(jnp.abs(scaled) < 1, 1 - scaled**2, 0.0)
    if kind == "tanh_squared":
        scale = np.arctanh(np.sqrt(1 - value_at_1))
        return 1 - jnp.tanh(x * scale) ** 2
    raise ValueError(f"unknown sigmoid {kind!r}; valid: gaussian, long_tail, reciprocal, hyperbolic, linear, quadratic, tanh_squared")


def tolerance(x, bounds=(0.0, 0.0), margin=0.0, sigmoid="gaussian", value_at_margin=_DEFAULT_VALUE_AT_MARGIN):
    """tol(x) = 1 inside [lo, hi], else s(d / margin) with d the distance to the nearest bound (0 if margin = 0)."""
    lower, upper = bounds
    x = jnp.asarray(x)
    in_bounds = (lower <= x) & (x <= upper)
    margin = jnp.asarray(margin, x.dtype)
    safe_margin = jnp.where(margin == 0, 1.0, margin)
    d = jnp.where(x < lower, lower - x, x - upper) / safe_margin
    outside = jnp.where(margin == 0, 0.0, _sigmoid(d, value_at_margin, sigmoid))
    return jnp.where(in_bounds, 1.0, outside)


def hamacher_product(a, b):
    """h(a, b) = ab / (a + b - ab), and 0 where the denominator is 0."""
    denom = a + b - a * b
    return jnp.where(denom > 0, a * b / jnp.where(denom > 0, denom, 1.0), 0.0)


def rect_prism_tolerance(curr, zero, one):
    """Product of per-axis fractions (curr - zero) / (one - zero) inside the prism [zero, one], else 1."""
    lo = jnp.minimum(zero, one)
    hi = jnp.maximum(zero, one)
    inside = jnp.all((lo <= curr) & (curr <= hi))
    scales = (curr - zero) / (one - zero)
    return jnp.where(inside, jnp.prod(scales), 1.0)


def gripper_caging_reward(
    action,
    obj_pos,
    *,
    left_pad,
    right_pad,
    tcp,
    obj_init_pos,
    init_tcp,
    obj_radius: float,
    pad_success_thresh: float,
    object_reach_radius: float,
    xz_thresh: float,
    desired_gripper_effort: float = 1.0,
    high_density: bool = False,
    medium_density: bool = False,
):
    """SawyerXYZEnv._gripper_caging_reward: h(h(cage_y_left, cage_y_right), cage_xz) gated by grip effort."""
    if high_density and medium_density:
        raise ValueError("Can only be either high_density or medium_density")
    pad_y = jnp.stack([left_pad[1], right_pad[1]])
    pad_to_obj = jnp.abs(pad_y - obj_pos[1])
    pad_to_objinit = jnp.abs(pad_y - obj_init_pos[1])
    caging_lr_margin = jnp.abs(pad_to_objinit - pad_success_thresh)
    caging_lr = tolerance(pad_to_obj, bounds=(obj_radius, pad_success_thresh), margin=caging_lr_margin, sigmoid="long_tail")
    caging_y = hamacher_product(caging_lr[0], caging_lr[1])

    xz = jnp.array([0, 2])
    caging_xz_margin = jnp.linalg.norm(obj_init_pos[xz] - init_tcp[xz]) - xz_thresh
    caging_xz = tolerance(
        jnp.linalg.norm(tcp[xz] - obj_pos[xz]), bounds=(0, xz_thresh), margin=caging_xz_margin, sigmoid="long_tail"
    )
    gripper_closed = jnp.minimum(jnp.maximum(0.0, action[-1]), desired_gripper_effort) / desired_gripper_effort
    caging = hamacher_product(caging_y, caging_xz)
    gripping = jnp.where(caging > 0.97, gripper_closed, 0.0)
    caging_and_gripping = hamacher_product(caging, gripping)
    if high_density:
        caging_and_gripping = (caging_and_gripping + caging) / 2
    if medium_density:
        tcp_to_obj = jnp.linalg.norm(obj_pos - tcp)
        tcp_to_obj_init = jnp.linalg.norm(obj_init_pos - init_tcp)
        reach_margin = jnp.abs(tcp_to_obj_init - object_reach_radius)
        reach = tolerance(tcp_to_obj, bounds=(0, object_reach_radius), margin=reach_margin, sigmoid="long_tail")
        caging_and_gripping = (caging_and_gripping + reach) / 2
    return caging_and_gripping


def target_in_place(obj, obj_init, target, radius):
    """(in_place, d): in_place = tol(d, [0, radius], ||obj_init - target||, long_tail), d = ||obj - target||."""
    obj_to_target = jnp.linalg.norm(obj - target)
    in_place_margin = jnp.linalg.norm(obj_init - target)
    in_place = tolerance(obj_to_target, bounds=(0, radius), margin=in_place_margin, sigmoid="long_tail")
    return in_place, obj_to_target


def two_stage_in_place(obj, obj_init, midpoint, target, scaling, radius):
    """(p1, p2, d): p1 = tol(||(obj - mid) * s||, [0, radius], ||(obj_init - mid) * s||), (p2, d) = target_in_place()."""
    obj_to_midpoint = jnp.linalg.norm((obj - midpoint) * scaling)
    obj_to_midpoint_init = jnp.linalg.norm((obj_init - midpoint) * scaling)
    in_place_part1 = tolerance(obj_to_midpoint, bounds=(0, radius), margin=obj_to_midpoint_init, sigmoid="long_tail")
    in_place_part2, obj_to_target = target_in_place(obj, obj_init, target, radius)
    return in_place_part1, in_place_part2, obj_to_target


def pad_caging(
    obj_pos, *, left_pad, right_pad, tcp, obj_init_pos, init_tcp, obj_radius: float, x_z_success_margin: float,
    pad_success_margin: float = 0.05, grip_success_margin: float | None = None,
):
    """(caging, y_gripping): caging = h(h(tol_r, tol_l), tol_xz), pad y tolerances on [obj_radius, pad_success_margin].

    The caging part shared by the ``_gripper_caging_reward`` overrides of pick-place and push-back (soccer, sweep,
    sweep-into). y_gripping is h(tol_r, tol_l) on [obj_radius, grip_success_margin], None without that margin. The pad
    margins |(|obj_y - pad_y|) - pad_success_margin| use the CURRENT pads: official init_left_pad / init_right_pad
    are live views into data.xpos (get_body_com).
    """
    delta_object_y_left_pad = left_pad[1] - obj_pos[1]
    delta_object_y_right_pad = obj_pos[1] - right_pad[1]
    right_caging_margin = jnp.abs(jnp.abs(obj_pos[1] - right_pad[1]) - pad_success_margin)
    left_caging_margin = jnp.abs(jnp.abs(obj_pos[1] - left_pad[1]) - pad_success_margin)

    def y_caging_on(upper):
        def tol(x, margin):
            return tolerance(x, bounds=(obj_radius, upper), margin=margin, sigmoid="long_tail")

        # h is exactly symmetric (IEEE + and * commute), so official h(left, right) and h(right, left) agree.
        right = tol(delta_object_y_right_pad, right_caging_margin)
        left = tol(delta_object_y_left_pad, left_caging_margin)
        return hamacher_product(right, left)

    xz = jnp.array([0, 2])
    tcp_obj_norm_x_z = jnp.linalg.norm(tcp[xz] - obj_pos[xz])
    tcp_obj_x_z_margin = jnp.linalg.norm(obj_init_pos[xz] - init_tcp[xz]) - x_z_success_margin
    x_z_caging = tolerance(
        tcp_obj_norm_x_z, bounds=(0, x_z_success_margin), margin=tcp_obj_x_z_margin, sigmoid="long_tail"
    )
    caging = hamacher_product(y_caging_on(pad_success_margin), x_z_caging)
    y_gripping = None if grip_success_margin is None else y_caging_on(grip_success_margin)
    return caging, y_gripping


def scipy_quat_from_matrix(mat):
    """scipy ``Rotation.from_matrix(m).as_quat()`` (x, y, z, w order, Shepperd's branch choice), in JAX."""
    m = mat
    decision = jnp.stack([m[0, 0], m[1, 1], m[2, 2], m[0, 0] + m[1, 1] + m[2, 2]])
    choice = jnp.argmax(decision)

    def from_axis(i):
        j, k = (i + 1) % 3, (i + 2) % 3
        q = jnp.zeros(4)
        q = q.at[i].set(1 - decision[3] + 2 * m[i, i])
        q = q.at[j].set(m[j, i] + m[i, j])
        q = q.at[k].set(m[k, i] + m[i, k])
        q = q.at[3].set(m[k, j] - m[j, k])
        return q

    q_trace = jnp.stack([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], 1 + decision[3]])
    candidates = jnp.stack([from_axis(0), from_axis(1), from_axis(2), q_trace])
    q = candidates[choice]
    return q / jnp.linalg.norm(q)


# ---- V1 (reward_function_version="v1") shaping terms, shared by many tasks' V1 branches ----------

def v1_progress(dist, max_dist, c2=0.01, c3=0.001):
    """The V1 pull/push/place/reach term: 1000 (max_dist - d) + 1000 (exp(-d²/c2) + exp(-d²/c3)).

    c2, c3 are 0.01, 0.001 except on dial-turn. Callers floor it at 0 where the official branch does
    (``max(rew, 0)``; a few do not)."""
    return 1000.0 * (max_dist - dist) + 1000.0 * (jnp.exp(-(dist**2) / c2) + jnp.exp(-(dist**2) / c3))


def v1_reach(obj, finger, init_tcp_z, action, xy_radius, z_scale, grip_radius):
    """The V1 pick tasks' reach term: -|obj - finger| once within ``xy_radius`` in xy, else
    -|xy| - z_scale |finger_z - init_tcp_z|; within ``grip_radius`` + max(action[-1], 0) / 50 (close the fingers)."""
    reach_dist = jnp.linalg.norm(obj - finger)
    reach_xy = jnp.linalg.norm(obj[:-1] - finger[:-1])
    z_rew = jnp.abs(finger[-1] - init_tcp_z)
    reach = jnp.where(reach_xy < xy_radius, -reach_dist, -reach_xy - z_scale * z_rew)
    return jnp.where(reach_dist < grip_radius, -reach_dist + jnp.maximum(action[-1], 0.0) / 50, reach)


def v1_reach_then_progress(reach_dist, dist, max_dist, floor=True, c2=0.01, c3=0.001):
    """The V1 reward of the reach-then-move tasks (press, pull, push, open): -reach_dist, plus
    ``v1_progress(dist, max_dist)`` (floored at 0 unless ``floor`` is False) once reach_dist < 0.05."""
    progress = v1_progress(dist, max_dist, c2, c3)
    progress = jnp.maximum(progress, 0.0) if floor else progress
    return -reach_dist + jnp.where(reach_dist < 0.05, progress, 0.0)


def v1_press(obs_obj, finger, goal, axis: int, max_dist):
    """The V1 button/handle press and pull reward: reach ``obs_obj`` with ``finger``, then move it to the
    goal along ``axis`` (pressDist = |obj[axis] - goal[axis]|)."""
    return v1_reach_then_progress(jnp.linalg.norm(obs_obj - finger), jnp.abs(obs_obj[axis] - goal[axis]), max_dist)


def v1_pick_place(reach, reach_dist, obj_z, placing_dist, height_target, obj_height, max_placing_dist,
                  progress_dist=None):
    """The V1 pick-and-place reward: ``reach`` (``v1_reach``), + 100 height_target once the object is
    lifted to height_target - 0.01 and not dropped (100 min(height_target, z) while held above the
    table within 10 cm), + the floored ``v1_progress`` of ``progress_dist`` (default placing_dist)
    while lifted, within 10 cm and not dropped. Dropped: on the table, > 2 cm from goal and gripper."""
    progress_dist = placing_dist if progress_dist is None else progress_dist
    pick_completed = obj_z >= height_target - 0.01
    dropped = (obj_z < obj_height + 0.005) & (placing_dist > 0.02) & (reach_dist > 0.02)
    held = (reach_dist < 0.1) & (obj_z > obj_height + 0.005)
    pick = jnp.where(pick_completed & ~dropped, 100 * height_target,
                     jnp.where(held, 100 * jnp.minimum(height_target, obj_z), 0.0))
    cond = pick_completed & (reach_dist < 0.1) & ~dropped
    place = jnp.where(cond, jnp.maximum(v1_progress(progress_dist, max_placing_dist), 0.0), 0.0)
    return reach + pick + place
