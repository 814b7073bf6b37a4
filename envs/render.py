"""Drawing the port's states with MuJoCo's renderer, from public env names only (no GL here).

    env = envs.SawyerEnv("push", eval_mode=True)          # any backend
    model = env.render_model()                            # mujoco.MjModel of the task as the port runs it
    states = env.physics_state(state)                     # float64 [B, nstate], host side
    goals = np.asarray(state.obs)[:, envs.OBS_GOAL]       # the observed goal of each env
    data = mujoco.MjData(model)
    envs.render.set_state(model, data, states[i], goal=goals[i])   # then Renderer.update_scene(data)

A state is in the port's layout (``envs.assets.TaskModel``): MuJoCo's FULLPHYSICS state, then every
mocap body's position, then every mocap quaternion. Fixtures that official resets move are mocap
bodies in the port's model, so their placement is part of the state. ``set_state`` needs nothing but
the model, so a rendering child process can use it on a model saved with ``mj_saveModel``.
"""

from __future__ import annotations

import mujoco
import numpy as np

PHYSICS_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS  # = envs.assets.STATE_SPEC


def physics_size(model: mujoco.MjModel) -> int:
    """Length of the FULLPHYSICS part of a port-layout state (``TaskModel.nphys``)."""
    return mujoco.mj_stateSize(model, PHYSICS_SPEC)


def state_size(model: mujoco.MjModel) -> int:
    """Length of a port-layout state (``TaskModel.nstate``)."""
    return physics_size(model) + 7 * model.nmocap


def set_state(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray, goal: np.ndarray | None = None) -> None:
    """Write one port-layout state into ``data`` and run ``mj_forward``; with ``goal`` (the observed
    goal, ``obs[OBS_GOAL]``) the model's ``goal`` site is drawn there, as official ``step`` places it."""
    state = np.asarray(state, np.float64)
    nphys, nmocap = physics_size(model), model.nmocap
    if state.shape != (nphys + 7 * nmocap,):
        raise ValueError(f"state has shape {state.shape}; this model's port-layout states have ({nphys + 7 * nmocap},)")
    mujoco.mj_setState(model, data, state[:nphys], PHYSICS_SPEC)
    data.mocap_pos[:] = state[nphys : nphys + 3 * nmocap].reshape(nmocap, 3)
    data.mocap_quat[:] = state[nphys + 3 * nmocap :].reshape(nmocap, 4)
    mujoco.mj_forward(model, data)
    if goal is not None:
        site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "goal")
        if site >= 0:
            data.site_xpos[site] = goal
