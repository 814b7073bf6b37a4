"""The ``jax`` backend: MJX in pure JAX (``impl='jax'``) on the task's dieted model.

The one backend whose step is plain XLA with no host callback and no foreign kernels: the shape for
TPUs and for training whose whole program, physics included, is one XLA computation. It runs on CPU
too (how it is verified here), with the XLA flag ``envs.backends.CPU_XLA_FLAG`` set before JAX starts.

Model. MJX JAX collides every candidate geom pair at every substep with a fixed-size program, so
each task runs on its *collision diet* (``envs/diet.py``, table ``envs/diet.json``): only the geom
pairs official episodes touch may collide, kept geoms MJX JAX cannot collide (cylinders against
boxes or meshes, very large meshes) become fitted boxes, and margins on mesh pairs are 0. Solver
options, masses and everything else are official. A task without a diet raises ``NoDietError``.

Per-env state. Like ``warp``: the env state is the small ``JaxData`` (positions, velocities, mocap
poses, the solver's warm start); each control step writes it into an MJX ``Data`` template, runs
``frame_skip`` ``mjx.step`` in a ``fori_loop`` and one ``mjx.forward`` (the official ``mj_forward``
after ``do_simulation``), and reads the frame sensors. The step is a ``vmap`` of one env's step.
"""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import diet
from envs.assets import TaskModel
from envs.backends import CPU_XLA_FLAG
from envs.backends.base import PhysicsBackend
from envs.backends.mujoco_backend import unpack_frames
from envs.control import ACTION_DIVISOR, FRAME_SKIP, MOCAP_QUAT
from envs.types import Kinematics

log = logging.getLogger("envs")

def _warn_without_flag() -> None:
    if jax.default_backend() == "cpu" and CPU_XLA_FLAG not in os.environ.get("XLA_FLAGS", ""):
        log.warning("impl='jax' on CPU without XLA_FLAGS=%s: MJX runs ~100x slower; set it before JAX starts "
                    "(importing envs first does)", CPU_XLA_FLAG)


@struct.dataclass
class JaxData:
    qpos: jax.Array  # [nq] float32
    qvel: jax.Array  # [nv]
    mocap_pos: jax.Array  # [nmocap, 3]
    mocap_quat: jax.Array  # [nmocap, 4]
    qacc_warmstart: jax.Array  # [nv] the solver's warm start, carried like official MjData does


class JaxBackend(PhysicsBackend):
    """The ``jax`` physics backend (MJX JAX on the dieted model); default ``step_groups``."""

    name = "jax"

    def __init__(self, tm: TaskModel, mocap_low, mocap_high):
        from mujoco import mjx

        self.tm = tm
        self.task = tm.task
        self.diet = diet.entry(tm.task)
        self.model, self.edits = diet.diet_model(tm.model, self.diet)
        _warn_without_flag()
        self.mx = mjx.put_model(self.model, impl="jax")
        self._template_np = jax.tree.map(np.asarray, mjx.make_data(self.model, impl="jax"))
        self.mocap_low = jnp.asarray(mocap_low, jnp.float32)
        self.mocap_high = jnp.asarray(mocap_high, jnp.float32)
        self._sl = tm.state_slices()
        self._k = tm.sawyer_mocap

    # ---- table / host conversions -----------------------------------------------------------
    def init_table(self, state64: np.ndarray) -> JaxData:
        """float64 [n, nstate] port-layout states (the reset table) -> JaxData with leading axis n."""
        s, m = self._sl, self.tm.model
        n = len(state64)
        f32 = lambda x: jnp.asarray(np.asarray(x, np.float64), jnp.float32)  # noqa: E731
        return JaxData(
            qpos=f32(state64[:, s["qpos"]]),
            qvel=f32(state64[:, s["qvel"]]),
            mocap_pos=f32(state64[:, s["mocap_pos"]].reshape(n, m.nmocap, 3)),
            mocap_quat=f32(state64[:, s["mocap_quat"]].reshape(n, m.nmocap, 4)),
            qacc_warmstart=jnp.zeros((n, m.nv), jnp.float32),
        )

    def set_physics(self, data: JaxData, state64: np.ndarray) -> JaxData:
        """Overwrite a batch's physics with port-layout float64 states (state replay)."""
        return self.init_table(state64).replace(qacc_warmstart=data.qacc_warmstart)

    def physics_state(self, data: JaxData) -> np.ndarray:
        """A batch's physics as port-layout float64 states [B, nstate] (host side)."""
        s = self._sl
        qpos, qvel, mp, mq = (np.asarray(x, np.float64) for x in (data.qpos, data.qvel, data.mocap_pos, data.mocap_quat))
        out = np.zeros((len(qpos), self.tm.nstate))
        out[:, s["qpos"]], out[:, s["qvel"]] = qpos, qvel
        out[:, s["mocap_pos"]], out[:, s["mocap_quat"]] = mp.reshape(len(qpos), -1), mq.reshape(len(qpos), -1)
        return out

    # ---- the step ---------------------------------------------------------------------------
    def _template(self):
        # All-zero leaves are built in the program rather than embedded as constants.
        return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype) if not np.any(x) else jnp.asarray(x), self._template_np)

    def step(self, data: JaxData, action: jax.Array) -> tuple[JaxData, Kinematics]:
        """Batched control step: ``data`` and ``action`` [B, 4] carry a leading env axis."""
        from mujoco import mjx

        template = self._template()
        k, mx = self._k, self.mx

        def prepare(row: JaxData, a: jax.Array):
            # SawyerXYZEnv.set_xyz_action + the gripper's two position actuators (as in the warp backend).
            pos = jnp.clip(row.mocap_pos[k] + jnp.clip(a[:3], -1.0, 1.0) / ACTION_DIVISOR, self.mocap_low, self.mocap_high)
            return template.replace(
                qpos=row.qpos, qvel=row.qvel, qacc_warmstart=row.qacc_warmstart,
                mocap_pos=row.mocap_pos.at[k].set(pos),
                mocap_quat=row.mocap_quat.at[k].set(jnp.asarray(MOCAP_QUAT, jnp.float32)),
                ctrl=jnp.stack([a[3], -a[3]]),
            )

        # The loop runs on the batch (vmap inside the loop, not a vmapped loop): the same program,
        # traced without JAX's scan batching rule (a third of the tracing time).
        step = jax.vmap(mjx.step, in_axes=(None, 0))
        d = jax.vmap(prepare)(data, action.astype(jnp.float32))
        d = jax.lax.fori_loop(0, FRAME_SKIP, lambda _, d: step(mx, d), d)
        d = jax.vmap(mjx.forward, in_axes=(None, 0))(mx, d)
        nxt = JaxData(qpos=d.qpos, qvel=d.qvel, mocap_pos=d.mocap_pos, mocap_quat=d.mocap_quat,
                      qacc_warmstart=d.qacc_warmstart)
        sens = d.sensordata
        frames = jax.vmap(lambda s: unpack_frames(s, self.tm.frames))(sens)
        return nxt, Kinematics(frames=frames, qpos=nxt.qpos, qvel=nxt.qvel)

