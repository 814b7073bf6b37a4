"""Physics backends: one narrow interface, three implementations (DESIGN.md section 4).

A backend owns the physics part of ``State.data`` and implements, per env (the caller vmaps):

    data = backend.init(state_row)                 # from a float64 FULLPHYSICS row of the reset table
    data, kin = backend.step(data, action)         # Sawyer control law, frame_skip substeps, forward

``kin`` is an ``envs.types.Kinematics`` of the frames the task declared. The Sawyer control law is
the official one: mocap += clip(a[:3], -1, 1) / 100 clipped to the mocap box, quat (1, 0, 1, 0),
gripper ctrl (a[3], -a[3]), ``frame_skip`` = 5 substeps, then ``mj_forward``.
"""

from __future__ import annotations

IMPLS = ("mujoco", "warp", "jax")


class BackendUnavailableError(RuntimeError):
    """The requested physics backend cannot run here (missing package, no device, task not ported)."""


def check_impl(impl: str) -> str:
    """The backend `impl` resolves to here; BackendUnavailableError (naming the valid choices) if it cannot run."""
    import jax

    if impl == "auto":
        return {"gpu": "warp", "cuda": "warp", "tpu": "jax"}.get(jax.default_backend(), "mujoco")
    if impl == "mujoco":
        return impl
    if impl in ("warp", "jax"):
        raise BackendUnavailableError(
            f"impl='{impl}' (MJX) is not available yet in this build; valid now: mujoco, auto (issue 4 adds warp and jax)"
        )
    raise ValueError(f"unknown impl '{impl}'; valid: auto, {', '.join(IMPLS)}")


def make_backend(impl: str, task_model, mocap_low, mocap_high, **kwargs):
    """Build a backend by name; 'auto' picks warp on NVIDIA, jax on TPU, mujoco on CPU."""
    import logging

    import jax

    picked = check_impl(impl)
    if impl == "auto":
        logging.getLogger("envs").info("impl='auto' picked %s on platform %s", picked, jax.default_backend())
    from envs.backends.mujoco_backend import MujocoBackend

    return MujocoBackend(task_model, mocap_low, mocap_high, **kwargs)
