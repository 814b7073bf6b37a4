"""What the two MJX backends (``warp``: MJX + MuJoCo Warp, ``jax``: MJX in pure JAX) share.

Both keep the same small per-env state (``MjxData``: positions, velocities, mocap poses and the
solver's warm start; the warp backend adds its buffer counters) and write it, each control step,
into an MJX ``Data`` template. ``MjxBackend`` holds the host conversions between that state and the
port's float64 state layout (``envs.assets.TaskModel``), the Sawyer control law applied to a
template (``prepare``) and the template's zero leaves built in the program (``zeros_in_program``).
Each backend keeps its own model, template and step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.assets import TaskModel
from envs.backends.base import PhysicsBackend
from envs.control import ACTION_DIVISOR, MOCAP_QUAT


@struct.dataclass
class MjxData:
    qpos: jax.Array  # [nq] float32
    qvel: jax.Array  # [nv]
    mocap_pos: jax.Array  # [nmocap, 3]
    mocap_quat: jax.Array  # [nmocap, 4]
    qacc_warmstart: jax.Array  # [nv] the solver's warm start, carried like official MjData does


def zeros_in_program(tree):
    """Host arrays -> jax arrays, all-zero leaves built in the program rather than embedded as constants."""
    return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype) if not np.any(x) else jnp.asarray(x), tree)


class MjxBackend(PhysicsBackend):
    """Host conversions and the control law of the MJX backends; subclasses set ``data_cls`` (an
    ``MjxData`` subclass) and implement ``step``; ``extra_fields`` gives the values of any fields the
    subclass's data adds (zeros at a reset)."""

    data_cls: ClassVar[type] = MjxData

    def _setup(self, tm: TaskModel, mocap_low, mocap_high) -> None:
        self.tm = tm
        self.task = tm.task
        self.mocap_low = jnp.asarray(mocap_low, jnp.float32)
        self.mocap_high = jnp.asarray(mocap_high, jnp.float32)
        self._sl = tm.state_slices()
        self._k = tm.sawyer_mocap

    def extra_fields(self, n: int) -> dict[str, Any]:
        """Initial values of the fields ``data_cls`` adds to ``MjxData`` (leading axis n)."""
        return {}

    # ---- table / host conversions -----------------------------------------------------------
    def init_table(self, state64: np.ndarray):
        """float64 [n, nstate] port-layout states (the reset table) -> data with leading axis n."""
        s, m = self._sl, self.tm.model
        n = len(state64)
        f32 = lambda x: jnp.asarray(np.asarray(x, np.float64), jnp.float32)  # noqa: E731
        return self.data_cls(
            qpos=f32(state64[:, s["qpos"]]),
            qvel=f32(state64[:, s["qvel"]]),
            mocap_pos=f32(state64[:, s["mocap_pos"]].reshape(n, m.nmocap, 3)),
            mocap_quat=f32(state64[:, s["mocap_quat"]].reshape(n, m.nmocap, 4)),
            qacc_warmstart=jnp.zeros((n, m.nv), jnp.float32),
            **self.extra_fields(n),
        )

    def set_physics(self, data, state64: np.ndarray):
        """Overwrite a batch's physics with port-layout float64 states (state replay)."""
        return self.init_table(state64).replace(qacc_warmstart=data.qacc_warmstart)

    def physics_state(self, data) -> np.ndarray:
        """A batch's physics as port-layout float64 states [B, nstate] (host side)."""
        s = self._sl
        qpos, qvel, mp, mq = (np.asarray(x, np.float64) for x in (data.qpos, data.qvel, data.mocap_pos, data.mocap_quat))
        out = np.zeros((len(qpos), self.tm.nstate))
        out[:, s["qpos"]], out[:, s["qvel"]] = qpos, qvel
        out[:, s["mocap_pos"]], out[:, s["mocap_quat"]] = mp.reshape(len(qpos), -1), mq.reshape(len(qpos), -1)
        return out

    # ---- the control law --------------------------------------------------------------------
    def prepare(self, template, row: MjxData, a: jax.Array):
        """One env's MJX ``Data``: the template with the env's state and the Sawyer control law applied
        (``SawyerXYZEnv.set_xyz_action`` + the gripper's two position actuators). float32 division by
        100 (the mujoco backend multiplies by float32(0.01) as official: ulp-level apart)."""
        k = self._k
        pos = jnp.clip(row.mocap_pos[k] + jnp.clip(a[:3], -1.0, 1.0) / ACTION_DIVISOR, self.mocap_low, self.mocap_high)
        return template.replace(
            qpos=row.qpos, qvel=row.qvel, qacc_warmstart=row.qacc_warmstart,
            mocap_pos=row.mocap_pos.at[k].set(pos),
            mocap_quat=row.mocap_quat.at[k].set(jnp.asarray(MOCAP_QUAT, jnp.float32)),
            ctrl=jnp.stack([a[3], -a[3]]),
        )
