"""The ``warp`` backend on the collision diet (``WarpBackend(diet=...)``, issue 19 item 4).

"pairs": only the diet's geom pairs (``envs/diet.json``) collide, geoms official; "full": the ``jax``
backend's dieted model. Checked here: MuJoCo Warp's own candidate pair list is exactly the diet's,
and where only kept pairs touch (the push expert's first steps: fingers on the table and the puck)
the dieted step follows the undieted one. Expert parity on the diet is ``python -m envs.parity
--impl warp``.
"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from envs import diet, parity
from envs.backends import warp_backend
from envs.sawyer import SawyerEnv

pytest.importorskip("warp")

TASK = "push"  # kept pairs touch within 40 steps: fingers on the puck and the table


def _warp_pairs(backend) -> set[tuple[int, int]]:
    """The geom pairs MuJoCo Warp's broadphase tests for contacts (its precomputed nxn list)."""
    pairs = np.asarray(backend.mx._impl.nxn_geom_pair_filtered)
    contact = np.asarray(backend.mx._impl.nxn_pairid_filtered)[:, 0] > -2
    return {tuple(sorted(map(int, p))) for p in pairs[contact]}


@pytest.mark.parametrize("variant", ["pairs", "meshes", "full"])
def test_dieted_warp_model_collides_exactly_the_diet_pairs(variant):
    env = SawyerEnv(TASK, impl="warp", diet=variant)
    b, m = env.backend, env.backend.model
    want = {tuple(sorted((diet.geom_id(m, g1), diet.geom_id(m, g2)))) for g1, g2 in diet.entry(TASK)["pairs"]}
    assert b.diet == variant and any(e.startswith(f"diet {variant}:") for e in b.edits)
    assert diet.candidate_pairs(m) == want
    assert _warp_pairs(b) == want
    official = env.task_model.model
    assert diet.candidate_pairs(official) > want  # the diet drops pairs
    if variant == "pairs":  # geoms as official: only contype/conaffinity differ
        for f in ("geom_type", "geom_size", "geom_pos", "geom_dataid", "geom_margin", "geom_gap"):
            np.testing.assert_array_equal(getattr(m, f), getattr(official, f), err_msg=f)
    else:
        assert any(e.startswith(f"diet {variant}: right_hand#0") for e in b.edits)
    cylinders = official.geom_type == mujoco.mjtGeom.mjGEOM_CYLINDER
    kept_cylinder = any(official.geom_type[diet.geom_id(m, g)] == mujoco.mjtGeom.mjGEOM_CYLINDER
                        for pair in diet.entry(TASK)["pairs"] for g in pair)
    assert kept_cylinder  # the task tests the difference: push's puck is a kept cylinder
    if variant == "meshes":  # only meshes become boxes: cylinders (and margins) stay official for Warp
        np.testing.assert_array_equal(m.geom_type[cylinders], official.geom_type[cylinders])
        np.testing.assert_array_equal(m.geom_margin, official.geom_margin)
    elif variant == "full":
        assert (m.geom_type[cylinders] != official.geom_type[cylinders]).any()


def test_default_warp_diet_replaces_meshes_only():
    assert warp_backend.DEFAULT_DIET == "meshes"
    assert warp_backend.diet_model(SawyerEnv(TASK).task_model.model, TASK)[1] == "meshes"


def test_diet_option_resolution(monkeypatch):
    model = SawyerEnv(TASK).task_model.model
    assert warp_backend.diet_model(model, TASK, False)[1:] == ("off", ())
    assert warp_backend.diet_model(model, TASK, True)[1] == "pairs"
    with pytest.raises(ValueError, match="unknown warp diet"):
        warp_backend.diet_model(model, TASK, "boxes")

    def no_diet(task):
        raise diet.NoDietError(task)

    monkeypatch.setattr(diet, "entry", no_diet)
    monkeypatch.setattr(warp_backend, "DEFAULT_DIET", "pairs")
    m, variant, edits = warp_backend.diet_model(model, TASK)  # the default on a task without a diet: official
    assert m is model and variant == "off" and edits == ()
    with pytest.raises(diet.NoDietError):  # asked for explicitly: loud
        warp_backend.diet_model(model, TASK, "pairs")


def test_dieted_step_follows_the_undieted_step_where_only_kept_pairs_touch():
    """The push expert's first 40 steps from two resets, open loop, on the official and the "pairs"
    model: the contacts are kept pairs, so the trajectories agree to float32 contact noise."""
    goals = np.array([0, 17])
    envs = {v: SawyerEnv(TASK, impl="warp", eval_mode=True, diet=v) for v in ("off", "pairs")}
    ref = SawyerEnv(TASK, impl="mujoco", eval_mode=True)
    actions = parity.expert_rollout(ref, goals)["actions"][:40]
    obs, nacon = {}, {}
    for v, env in envs.items():
        state = env.reset(jax.random.PRNGKey(0), len(goals), goals=jnp.asarray(goals))
        step = jax.jit(env.step)
        seen = []
        for a in actions:
            state = step(state, jnp.asarray(a))
            seen.append(int(state.data.nacon[0]))
        obs[v], nacon[v] = np.asarray(state.obs), seen
    assert max(nacon["pairs"]) > 0  # kept pairs touched
    assert nacon["pairs"] == nacon["off"]  # and nothing else did
    np.testing.assert_allclose(obs["pairs"], obs["off"], atol=1e-4)
