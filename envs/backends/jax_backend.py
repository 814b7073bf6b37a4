"""The ``jax`` backend: MJX in pure JAX (``impl='jax'``) on the task's dieted model.

The one backend whose step is plain XLA with no host callback and no foreign kernels: the shape for
TPUs and for training whose whole program, physics included, is one XLA computation. It runs on CPU
too (how it is verified here), with the XLA flag ``envs.backends.CPU_XLA_FLAG`` set before JAX starts.

Model. MJX JAX collides every candidate geom pair at every substep with a fixed-size program, so
each task runs on its *collision diet* (``envs/diet.py``, table ``envs/diet.json``): only the geom
pairs official episodes touch may collide, kept geoms MJX JAX cannot collide (cylinders against
boxes or meshes, very large meshes) become fitted boxes, and margins on mesh pairs are 0. Kept
primitive geoms with a margin (the gripper's claws and pads, 1 mm) are grown by it instead
(``envs/backends/margins.py``: MJX JAX's box-box and capsule-box functions ignore margins). Solver
options, masses and everything else are official. A task without a diet raises ``NoDietError``.

Per-env state. Like ``warp``: the env state is the small ``JaxData`` (positions, velocities, mocap
poses, the solver's warm start); each control step writes it into an MJX ``Data`` template, runs
``frame_skip`` ``mjx.step`` in a ``fori_loop`` and one ``mjx.forward`` (the official ``mj_forward``
after ``do_simulation``), and reads the frame sensors. The step is a ``vmap`` of one env's step.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import diet
from envs.assets import TaskModel
from envs.backends import CPU_XLA_FLAG
from envs.backends.mjx_common import MjxBackend, MjxData, zeros_in_program
from envs.backends.margins import inflatable, inflate_margins
from envs.backends.mujoco_backend import unpack_frames
from envs.control import FRAME_SKIP
from envs.types import Kinematics

log = logging.getLogger("envs")

def _warn_without_flag() -> None:
    if jax.default_backend() == "cpu" and CPU_XLA_FLAG not in os.environ.get("XLA_FLAGS", ""):
        log.warning("impl='jax' on CPU without XLA_FLAGS=%s: MJX runs ~100x slower; set it before JAX starts "
                    "(importing envs first does)", CPU_XLA_FLAG)


@struct.dataclass
class JaxData(MjxData):
    """``MjxData`` as is: qpos, qvel, mocap poses, the solver's warm start."""


def mocap_parents(model) -> tuple[np.ndarray, np.ndarray]:
    """(body ids, mocap ids) of the mocap bodies that have child bodies (the port's moving fixtures:
    drawer, door, window frames ...), in mocap-id order."""
    parents = set(int(p) for p in model.body_parentid[1:])
    bodies = np.array([b for b in np.argsort(model.body_mocapid) if model.body_mocapid[b] >= 0 and b in parents], int)
    return bodies, model.body_mocapid[bodies].astype(int)


def with_mocap_frames(mx, bodies: np.ndarray, ids: np.ndarray, d):
    """One env's model with body_pos, body_quat of mocap bodies = d.mocap_pos, d.mocap_quat: MJX JAX
    (3.16) places a mocap body at its mocap pose only after the kinematic tree, so its children sit
    where ``body_pos`` puts them; official MuJoCo places them under the mocap pose."""
    quat = d.mocap_quat[ids] / jnp.linalg.norm(d.mocap_quat[ids], axis=-1, keepdims=True)
    return mx.replace(body_pos=jnp.asarray(mx.body_pos).at[bodies].set(d.mocap_pos[ids]),
                      body_quat=jnp.asarray(mx.body_quat).at[bodies].set(quat))


def _bounded_while_loop(cond_fun, body_fun, init_val, max_iter, live=True):
    """``body_fun`` while ``cond_fun`` (and ``live``) and fewer than ``max_iter`` steps: the values of
    MJX's ``_while_loop_scan`` (whose steps after ``cond_fun`` turns false are no-ops), without
    running them."""
    def cond(carry):
        return cond_fun(carry[0]) & (carry[1] < max_iter) & live

    def body(carry):
        return body_fun(carry[0]), carry[1] + 1

    return jax.lax.while_loop(cond, body, (init_val, 0))[0]


def solver_live(m, ctx):
    """MJX's solver continues (``solver.solve``'s loop test): iterations left, cost improving by at
    least ``tolerance``, gradient at least ``tolerance`` (both rescaled by meaninertia·nv)."""
    from mujoco.mjx._src import math, solver

    done = ctx.solver_niter >= m.opt.iterations
    done |= solver._rescale(m, ctx.prev_cost - ctx.cost) < m.opt.tolerance
    done |= solver._rescale(m, math.norm(ctx.grad)) < m.opt.tolerance
    return ~done


def _live_linesearch(linesearch, m, d, ctx):
    """MJX's line search, whose loop runs only in an env whose solver is live (``solver_live``)."""
    from mujoco.mjx._src import solver

    live = solver_live(m, ctx) if m.opt.iterations > 1 else True  # 1: MJX calls the body unconditionally
    loop = solver._while_loop_scan
    solver._while_loop_scan = functools.partial(_bounded_while_loop, live=live)
    try:
        return linesearch(m, d, ctx)
    finally:
        solver._while_loop_scan = loop


def blocked_newton_gradient(m, d, ctx):
    """H = M + Jᵀ diag(D·active) J + Σ_c J_cᵀ H_c J_c, Mgrad = H⁻¹ grad: MJX's Newton gradient
    (``solver._update_gradient``, elliptic cones) with each contact's cone Hessian H_c applied to its
    own ``condim`` rows J_c instead of through a dense nefc x nefc matrix.

    MJX JAX (3.16) builds ``diag(D·active)`` as an nefc x nefc matrix, adds one block per contact in
    a Python loop and multiplies ``Jᵀ C J``: O(nefc² nv) work and an nefc² buffer per env (918 rows on
    basketball: 3.4 MB per env and per Newton iteration). Here the diagonal part is
    ``(Jᵀ * D·active) @ J`` and the cone part an einsum over contacts: O(nefc nv²). Same
    mathematics; float32 rounding differs (basketball, batch 16, 5 substeps: qpos within 5e-11,
    482 -> 142 ms per call)."""
    from mujoco.mjx._src import support

    grad = ctx.Ma - d.qfrc_smooth - ctx.qfrc_constraint
    jac = d._impl.efc_J
    h = (jac.T * (d._impl.efc_D * ctx.active)) @ jac
    con = d._impl.contact
    cone = np.asarray(con.dim) > 1  # static in MJX: the contact layout is fixed at trace time
    dim, adr = np.asarray(con.dim)[cone], np.asarray(con.efc_address)[cone]
    if dim.size:
        width = int(dim.max())  # ctx.h is 6 x 6 per contact; rows past a contact's condim are unused
        inside = np.arange(width)[None, :] < dim[:, None]  # (contacts, width): row k of contact c exists
        rows = np.where(inside, adr[:, None] + np.arange(width)[None, :], 0)
        jac_c = jac[rows] * inside[:, :, None]  # (contacts, width, nv)
        h_c = ctx.h[:, :width, :width] * (inside[:, :, None] & inside[:, None, :])
        h_jac = (h_c[..., None] * jac_c[:, None, :, :]).sum(2)  # H_c J_c as a fused sum (3x a batched dot)
        h = h + jac_c.reshape(-1, jac.shape[1]).T @ h_jac.reshape(-1, jac.shape[1])
    h = support.full_m(m, d) + h
    factor = jax.scipy.linalg.cho_factor((h + h.T) * 0.5)  # symmetrised as MJX does
    return ctx.replace(grad=grad, Mgrad=jax.scipy.linalg.cho_solve(factor, grad))


@contextlib.contextmanager
def blocked_newton_hessian(mx):
    """While tracing: MJX's Newton solver builds its Hessian with ``blocked_newton_gradient`` if
    ``mx`` uses Newton with elliptic cones (the official options; otherwise MJX's own as is)."""
    from mujoco.mjx._src import solver
    from mujoco.mjx._src.types import ConeType, SolverType

    original = solver._update_gradient
    if mx.opt.solver == SolverType.NEWTON and mx.opt.cone == ConeType.ELLIPTIC:
        solver._update_gradient = blocked_newton_gradient
    try:
        yield
    finally:
        solver._update_gradient = original


@contextlib.contextmanager
def early_exit_linesearch():
    """While tracing: MJX's line search stops when it has converged instead of scanning all
    ``opt.ls_iterations`` (50) steps, and does not run at all in an env whose solver has finished;
    bit-identical values.

    MJX JAX (3.16) writes the solver's line search as a ``scan`` of ``ls_iterations`` steps whose
    ``lax.cond`` turns into no-ops after convergence (so reverse-mode autodiff works). Under ``vmap``
    a ``cond`` becomes a select that evaluates its branch anyway, so every solver iteration paid 50
    line-search steps. Measured on basketball (96 kept pairs, 918 constraint rows), batch 16, 5
    substeps: 1071 -> 670 ms, qpos/qvel/warm start bit-identical. Second, under ``vmap`` the solver's
    ``while_loop`` runs its body for every env until the last one finishes (finished envs' results
    are discarded), and a finished env's line search, on a vanishing search direction, ran until its
    float32 bracket stopped moving: on box-close (2,235 rows, batch 16) 84 of 112 env-iterations
    took 22 line-search steps, holding the whole batch. Such an env now skips it. The port never
    differentiates through physics, so the ``while_loop`` (not reverse-differentiable) costs nothing.
    The swaps of the private ``solver._while_loop_scan`` and ``solver._linesearch`` last only while
    the step is traced."""
    from mujoco.mjx._src import solver

    original_loop, original_linesearch = solver._while_loop_scan, solver._linesearch
    solver._while_loop_scan = _bounded_while_loop
    solver._linesearch = functools.partial(_live_linesearch, original_linesearch)
    try:
        yield
    finally:
        solver._while_loop_scan, solver._linesearch = original_loop, original_linesearch


def active_contacts(d) -> jax.Array:
    """Contacts that push (their constraint is active): dist < includemargin, summed over contact slots [B]."""
    con = d._impl.contact
    return (con.dist < con.includemargin).sum(-1).astype(jnp.int32)


@contextlib.contextmanager
def contact_cap(k: int | None):
    """While tracing (and sizing ``Data``): MJX keeps the ``k`` deepest contacts (least ``dist``) of
    each condim group, MJX's own ``max_contact_points`` option, instead of every slot of every kept
    pair (4 per box-box pair, most of them apart at any time); None: every slot.

    Exact while no more than ``k`` contacts of a group are active at once (``active_contacts``; the
    dropped ones are then apart, up to unequal margins), and the solver works on ``k`` contact rows,
    not hundreds: ``JaxBackend.max_active_contacts`` measures what a task needs."""
    from mujoco.mjx._src import collision_driver

    original = collision_driver._numeric
    if k is not None:
        if int(k) < 1:
            raise ValueError(f"max_contact_points={k}: a cap must be a positive number of contacts, or None for none")
        collision_driver._numeric = lambda m, name: int(k) if name == "max_contact_points" else original(m, name)
    try:
        yield
    finally:
        collision_driver._numeric = original


class JaxBackend(MjxBackend):
    """The ``jax`` physics backend (MJX JAX on the dieted model); default ``step_groups``; host
    conversions and control law from ``MjxBackend``. ``max_contact_points``: ``contact_cap``'s ``k``
    (default None: every contact slot of the diet, the configuration verified in docs/port.md)."""

    name = "jax"
    data_cls = JaxData

    def __init__(self, tm: TaskModel, mocap_low, mocap_high, max_contact_points: int | None = None):
        from mujoco import mjx

        self._setup(tm, mocap_low, mocap_high)
        self.diet = diet.entry(tm.task)
        self.max_contact_points = max_contact_points
        dieted, edits = diet.diet_model(tm.model, self.diet)
        kept = {diet.geom_id(dieted, label) for pair in self.diet["pairs"] for label in pair}
        self.model, grown = inflate_margins(dieted, inflatable(dieted, kept))
        self.edits = edits + grown
        _warn_without_flag()
        self.mx = mjx.put_model(self.model, impl="jax")
        self._mocap_parents = mocap_parents(self.model)
        with contact_cap(self.max_contact_points):
            self._template_np = jax.tree.map(np.asarray, mjx.make_data(self.model, impl="jax"))
        if max_contact_points is not None:
            self.edits += (f"contacts: the {max_contact_points} deepest per condim group (max_contact_points)",)

    # ---- the step ---------------------------------------------------------------------------
    def _template(self):
        return zeros_in_program(self._template_np)

    def _substeps(self, data: JaxData, action: jax.Array, count: bool):
        """The control step's ``frame_skip`` MJX steps and the closing forward on a batch; with
        ``count`` also the most active contacts (``active_contacts``) any substep had, per env."""
        from mujoco import mjx

        template = self._template()
        mx = self.mx

        d = jax.vmap(lambda row, a: self.prepare(template, row, a))(data, action.astype(jnp.float32))
        bodies, ids = self._mocap_parents
        if len(bodies):  # fixtures with moving parts: one model per env (its fixtures' poses)
            mx = jax.vmap(lambda d: with_mocap_frames(self.mx, bodies, ids, d))(d)
            axes = 0
        else:
            axes = None
        # The loop runs on the batch (vmap inside the loop, not a vmapped loop): the same program,
        # traced without JAX's scan batching rule (a third of the tracing time).
        step = jax.vmap(mjx.step, in_axes=(axes, 0))

        def body(_, carry):
            d, most = carry
            d = step(mx, d)
            return d, (jnp.maximum(most, active_contacts(d)) if count else most)

        most = jnp.zeros(d.qpos.shape[:1], jnp.int32)
        with early_exit_linesearch(), blocked_newton_hessian(self.mx), contact_cap(self.max_contact_points):
            d, most = jax.lax.fori_loop(0, FRAME_SKIP, body, (d, most))
            d = jax.vmap(mjx.forward, in_axes=(axes, 0))(mx, d)
        return d, most

    def step(self, data: JaxData, action: jax.Array) -> tuple[JaxData, Kinematics]:
        """Batched control step: ``data`` and ``action`` [B, 4] carry a leading env axis."""
        d, _ = self._substeps(data, action, count=False)
        nxt = JaxData(qpos=d.qpos, qvel=d.qvel, mocap_pos=d.mocap_pos, mocap_quat=d.mocap_quat,
                      qacc_warmstart=d.qacc_warmstart)
        frames = jax.vmap(lambda s: unpack_frames(s, self.tm.frames))(d.sensordata)
        return nxt, Kinematics(frames=frames, qpos=nxt.qpos, qvel=nxt.qvel)

    def max_active_contacts(self, data: JaxData, action: jax.Array) -> jax.Array:
        """Per env [B]: the most contacts active at once (``active_contacts``) over this control
        step's substeps: what a cap (``max_contact_points``) must not fall below."""
        return self._substeps(data, action, count=True)[1]
