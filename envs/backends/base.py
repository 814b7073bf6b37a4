"""``PhysicsBackend``: what the env core (``envs/sawyer.py``, ``envs/multitask.py``, ``envs/parity.py``)
calls on a physics backend, as a ``typing.Protocol`` (docs/design.md, "Layers").

A backend owns the physics part of ``State.data``: a pytree whose leaves carry a leading env axis.
States on the host side are float64 vectors in the port's layout (``envs.assets.TaskModel``:
FULLPHYSICS, then every mocap position, then every mocap quaternion).

The step is batched (not per env under vmap) because MuJoCo Warp sizes its contact buffers for the
whole batch and ``mujoco.rollout`` runs a batch on its thread pool. ``step_groups`` steps several
task groups (one backend each, all of the same class) in one go; the default steps each group on its
own, and the ``mujoco`` backend overrides it with one host callback for every group.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, Sequence, runtime_checkable

import jax
import numpy as np

from envs.types import Kinematics


@runtime_checkable
class PhysicsBackend(Protocol):
    """One task's physics, batched over envs. Implemented by ``MujocoBackend`` and ``WarpBackend``.

    Backends subclass it explicitly to inherit the default ``step_groups``; any class with these
    members satisfies it structurally (``isinstance(b, PhysicsBackend)``).
    """

    name: ClassVar[str]  # the impl name: "mujoco" | "warp" | "jax" (envs.backends.IMPLS)

    def init_table(self, state64: np.ndarray) -> Any:
        """float64 [n, nstate] port-layout states (the reset table) -> backend data with leading axis n."""
        ...

    def step(self, data: Any, action: jax.Array) -> tuple[Any, Kinematics]:
        """Batched control step (Sawyer control law, ``FRAME_SKIP`` substeps, then the official
        ``mj_forward``): ``data`` and ``action`` float32 [B, 4] carry a leading env axis; returns the
        next data and the ``Kinematics`` of the frames the task declared."""
        ...

    def physics_state(self, data: Any) -> np.ndarray:
        """Host side: backend data [..., ...] -> float64 port-layout states [..., nstate]."""
        ...

    def set_physics(self, data: Any, state64: np.ndarray) -> Any:
        """State replay: ``data`` with its physics overwritten by float64 port-layout states."""
        ...

    @classmethod
    def step_groups(cls, backends: Sequence["PhysicsBackend"], datas: Sequence[Any],
                    actions: Sequence[jax.Array]) -> list[tuple[Any, Kinematics]]:
        """The control step of several task groups (one backend, data and action batch each, every
        backend of this class). Default: each group's own ``step``, in order."""
        return step_each(backends, datas, actions)


def step_each(backends: Sequence[PhysicsBackend], datas: Sequence[Any],
              actions: Sequence[jax.Array]) -> list[tuple[Any, Kinematics]]:
    """Group by group: ``[b.step(d, a) for each group]`` (the default ``PhysicsBackend.step_groups``)."""
    return [b.step(d, a) for b, d, a in zip(backends, datas, actions)]
