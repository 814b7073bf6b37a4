"""Physics backends: one narrow interface, three implementations (docs/design.md, "Layers").

The interface is ``PhysicsBackend`` (``envs/backends/base.py``), a ``typing.Protocol``. A backend
owns the physics part of ``State.data`` (a pytree with a leading env axis) and implements:

    data = backend.init_table(states)        # float64 [n, nstate] port-layout states -> data [n, ...]
    data, kin = backend.step(data, action)   # batched: Sawyer control law, frame_skip substeps, forward
    states = backend.physics_state(data)     # host: data [B, ...] -> float64 [B, nstate]
    data = backend.set_physics(data, states) # state replay: copy float64 states in
    out = type(backend).step_groups(backends, datas, actions)  # several task groups in one go

The step is batched (not per env under vmap) because MuJoCo Warp sizes its contact buffers for the
whole batch, and ``mujoco.rollout`` runs a batch on its thread pool.

``kin`` is an ``envs.types.Kinematics`` of the frames the task declared. The Sawyer control law is
the official one: mocap += clip(a[:3], -1, 1) / 100 clipped to the mocap box, quat (1, 0, 1, 0),
gripper ctrl (a[3], -a[3]), ``frame_skip`` = 5 substeps, then ``mj_forward``.
"""

from __future__ import annotations

from envs.backends.base import PhysicsBackend, step_each  # noqa: F401

IMPLS = ("mujoco", "warp", "jax")  # the backends, by name: the one list every part of envs uses
IMPL_CHOICES = ("auto", *IMPLS)  # what ``impl=`` / ``--impl`` accepts
EXACT_IMPL = "mujoco"  # official C MuJoCo, bit-exact physics: the reference of the MJX backends
DEFAULT_IMPL = EXACT_IMPL
AUTO_IMPL = {"gpu": "warp", "cuda": "warp", "tpu": "jax"}  # impl='auto' by JAX platform; anything else: mujoco


# XLA's CPU fusion emitters (jaxlib 0.10.2's default) make MJX JAX ~500x slower on CPU; without them
# the mujoco backend's training loop compiled 2x faster and ran no slower (docs/port.md, measured
# 2026-12-04). XLA reads XLA_FLAGS once, when JAX starts its CPU client, so the flag is added when
# ``envs`` is first imported (before any JAX computation in every CLI) and in tests/conftest.py; it
# only concerns XLA's CPU compiler. Recheck when jaxlib is upgraded.
CPU_XLA_FLAG = "--xla_cpu_use_fusion_emitters=false"


def set_cpu_xla_flags() -> None:
    """Add ``CPU_XLA_FLAG`` to ``XLA_FLAGS`` unless the fusion-emitter flag is already set either way."""
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {CPU_XLA_FLAG}".strip()


set_cpu_xla_flags()


class BackendUnavailableError(RuntimeError):
    """The requested physics backend cannot run here (missing package, no device, task not ported)."""


def check_impl(impl: str, tasks=()) -> str:
    """The backend `impl` resolves to here; BackendUnavailableError (naming the valid choices) if it cannot run.

    ``impl='jax'`` runs a task only on its collision diet (``envs/diet.json``): with ``tasks`` given,
    a task without one is named here, before anything is built.

    The one place that resolves 'auto': the platform's backend (``AUTO_IMPL``: warp on NVIDIA, jax on
    TPU), or ``EXACT_IMPL`` (mujoco) where that one cannot run here (logged) or on CPU."""
    import logging

    import jax

    if impl == "auto":
        platform = jax.default_backend()
        picked = AUTO_IMPL.get(platform, EXACT_IMPL)
        try:
            picked = check_impl(picked, tasks)
        except BackendUnavailableError as e:
            logging.getLogger("envs").warning("impl='auto': %s unavailable on %s (%s); using %s", picked, platform, e, EXACT_IMPL)
            picked = EXACT_IMPL
        logging.getLogger("envs").info("impl='auto' picked %s on platform %s", picked, platform)
        return picked
    if impl == "mujoco":
        return impl
    if impl == "warp":
        try:
            import warp  # noqa: F401
            from mujoco.mjx.third_party import mujoco_warp  # noqa: F401
        except ImportError as e:
            raise BackendUnavailableError(
                f"impl='warp' needs the warp-lang and mujoco-warp packages ({e}); valid here: mujoco, auto"
            ) from None
        return impl
    if impl == "jax":
        for task in tasks:
            jax_diet(task)
        return impl
    raise ValueError(f"unknown impl '{impl}'; valid: {', '.join(IMPL_CHOICES)}")


def jax_diet(task: str) -> dict:
    """The task's collision diet for ``impl='jax'``; BackendUnavailableError naming the task if none."""
    from envs import diet

    try:
        return diet.entry(task)
    except diet.NoDietError as e:
        raise BackendUnavailableError(str(e)) from None


def make_backend(impl: str, task_model, mocap_low, mocap_high, **kwargs) -> PhysicsBackend:
    """Build a backend by name ('auto' resolved by ``check_impl``)."""
    picked = check_impl(impl, (task_model.task,))
    if picked == "jax":
        from envs.backends.jax_backend import JaxBackend

        return JaxBackend(task_model, mocap_low, mocap_high, **kwargs)
    if picked == "warp":
        from envs.backends.warp_backend import WarpBackend

        return WarpBackend(task_model, mocap_low, mocap_high, **kwargs)
    from envs.backends.mujoco_backend import MujocoBackend

    return MujocoBackend(task_model, mocap_low, mocap_high, **kwargs)
