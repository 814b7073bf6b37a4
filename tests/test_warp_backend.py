"""The ``warp`` backend (MJX + MuJoCo Warp) on Warp's CPU device, held to official Meta-World.

One-step state replay: official states along an expert episode (every 25th step of goal 17) are
copied into the port, stepped once on MuJoCo Warp, and compared with official stepped from the
same state. MuJoCo Warp is float32 physics with its own collision code, so the bounds are not the
``mujoco`` backend's 1e-4: measured 2026-11-25 (2-core CPU) the largest one-step obs errors were
drawer-open 6.3e-6, box-close 4.9e-3, pick-place 5.1e-3 (contact-rich steps), success never
differed. Expert parity over whole episodes is ``python -m envs.parity --impl warp`` (docs/port.md).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import parity
from envs.backends import check_impl
from envs.backends.warp_backend import WARP_SIZES, WarpBackend, edit_model
from envs.sawyer import SawyerEnv

pytest.importorskip("warp")

# drawer-open: unedited model, mesh contacts; box-close: margins edited, the most contacts of MT50's
# insertion tasks; pick-place: grasping.
TASKS = ("drawer-open", "box-close", "pick-place")


@pytest.fixture(scope="module", params=TASKS)
def env(request):
    return SawyerEnv(request.param, impl="warp", eval_mode=True)


def test_one_step_replay_matches_official(env):
    traj = parity.official_trajectory(env.name, env.goals[17], env.task_model)
    steps = np.arange(0, len(traj["action"]), 25)
    err = parity.replay_errors(env, 17, traj, steps)
    assert err["success"].max() == 0, f"success differs at steps {steps[np.flatnonzero(err['success'])]}"
    assert err["obs"].max() < 2e-2, f"obs error {err['obs'].max():.2e} at step {steps[err['obs'].argmax()]}"
    assert err["reward"].max() < 0.1, f"reward error {err['reward'].max():.2e} at step {steps[err['reward'].argmax()]}"


def test_physics_state_round_trip(env):
    """Port-layout float64 states -> Warp state -> float64: equal to float32 precision."""
    traj = parity.official_trajectory(env.name, env.goals[3], env.task_model, steps=40)
    states = traj["state"][::10]
    back = env.backend.physics_state(env.backend.init_table(states))
    sl = env.task_model.state_slices()
    for key in ("qpos", "qvel", "mocap_pos", "mocap_quat"):
        np.testing.assert_allclose(back[:, sl[key]], states[:, sl[key]], rtol=1e-6, atol=1e-6, err_msg=key)


def test_overflow_is_loud():
    """A contact buffer too small for the batch raises instead of silently dropping contacts."""
    env = SawyerEnv("box-close", impl="warp", eval_mode=True, nacon_per_env=1)
    traj = parity.official_trajectory("box-close", env.goals[17], env.task_model, steps=80)
    state = env.reset(jax.random.PRNGKey(0), 2, goals=jnp.array([17, 17]))
    state = state.replace(data=env.backend.set_physics(state.data, traj["state"][[70, 79]]))
    with pytest.raises(Exception, match="PhysicsOverflowError|buffer overflow"):
        jax.block_until_ready(jax.jit(env.step)(state, jnp.zeros((2, 4))))


def test_model_edits_only_where_warp_refuses_the_official_model():
    assert edit_model(SawyerEnv("drawer-open").task_model.model)[1] == ()
    model, edits = edit_model(SawyerEnv("box-close").task_model.model)
    assert len(edits) == 1 and "margin" in edits[0]
    assert float(model.geom_margin.max()) == 0.0


def test_every_task_has_measured_buffer_sizes():
    import envs

    assert set(WARP_SIZES) == set(envs.TASKS)
    assert all(c > 0 and j > 0 for c, j in WARP_SIZES.values())


def test_warp_is_selectable_and_steps_a_multitask_batch():
    from envs.multitask import make_multitask

    assert check_impl("warp") == "warp"
    menv = make_multitask("reach,drawer-open", envs_per_task=2, impl="warp")
    assert menv.impl == "warp" and isinstance(menv.envs[0].backend, WarpBackend)
    state = menv.reset(jax.random.PRNGKey(0))
    step = jax.jit(menv.step)
    for _ in range(3):
        state = step(state, jnp.zeros((4, 4)))
    obs = np.asarray(state.obs)
    assert obs.shape[0] == 4 and np.isfinite(obs).all()


@pytest.mark.slow
def test_train_cli_on_the_warp_backend(tmp_path):
    """`train --impl warp` runs end to end (rollout, update, checkpoint, evaluation on all goals)."""
    from short_train import run_short_training

    run_short_training(tmp_path / "run", "reach,box-close", "warp", 80, envs_per_task=2)
