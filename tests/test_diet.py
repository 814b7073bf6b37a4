"""The collision diet of the MJX ``jax`` backend (envs/diet.py, table envs/diet.json): the dieted
models collide exactly the table's pairs with official contact parameters, MJX JAX loads them, and
fresh official episodes make no contact outside the table (coverage)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from envs import diet
from envs.backends import BackendUnavailableError, check_impl
from envs.sawyer import SawyerEnv

MT10 = ("reach", "push", "pick-place", "door-open", "drawer-open", "drawer-close", "button-press-topdown",
        "peg-insert-side", "window-open", "window-close")


@pytest.fixture(scope="module")
def table():
    return diet.load_table()


def _task_model(task):
    return SawyerEnv(task).task_model


@pytest.mark.parametrize("task", MT10)
def test_dieted_model_collides_exactly_the_table_pairs_and_loads_in_mjx(task, table):
    from mujoco import mjx

    tm = _task_model(task)
    entry = table[task]
    m, edits = diet.diet_model(tm.model, entry)
    got = {diet.pair_key(m, *p) for p in diet.candidate_pairs(m)}
    assert got == {tuple(p) for p in entry["pairs"]}
    assert len(diet.candidate_pairs(tm.model)) == entry["candidate_pairs"]  # the official model's, unchanged
    mjx.put_model(m, impl="jax")  # raises on a pair MJX JAX cannot collide or a margin it refuses
    for label, rep in entry["replace"].items():
        g = diet.geom_id(m, label)
        assert m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX and np.allclose(m.geom_size[g], rep["size"])
    # masses and inertias stay the compiled official ones
    np.testing.assert_array_equal(m.body_mass, tm.model.body_mass)
    np.testing.assert_array_equal(m.body_inertia, tm.model.body_inertia)


def test_diet_keeps_official_contact_parameters():
    """The contype/conaffinity bits decide only *which* pairs collide: contacts of a kept pair carry the
    official friction, solref, solimp and dimension (pick-place reset states: the puck on the table)."""
    from envs.assets import STATE_SPEC

    env = SawyerEnv("pick-place")
    tm = env.task_model
    table = diet.load_table()["pick-place"]
    m, _ = diet.diet_model(tm.model, table)
    sl = tm.state_slices()
    checked = 0
    for state in env.backend.physics_state(env._t_data)[:5]:
        found = []
        for model in (tm.model, m):
            d = mujoco.MjData(model)
            mujoco.mj_setState(model, d, state[: tm.nphys], STATE_SPEC)
            d.mocap_pos[:] = state[sl["mocap_pos"]].reshape(-1, 3)
            d.mocap_quat[:] = state[sl["mocap_quat"]].reshape(-1, 4)
            mujoco.mj_forward(model, d)
            # copies: a contact struct views its MjData, which the next iteration frees
            found.append({diet.pair_key(model, *c.geom): (c.friction.copy(), c.solref.copy(), c.solimp.copy(), int(c.dim))
                          for c in d.contact})
        official, dieted = found
        assert set(dieted) <= {tuple(p) for p in table["pairs"]}
        for key in set(official) & set(dieted):
            for x, y in zip(official[key], dieted[key]):
                np.testing.assert_array_equal(x, y)
            checked += 1
    assert checked >= 5  # the puck rests on the table in every reset state


def test_gripper_closure_adds_every_gripper_geom_for_a_geom_one_of_them_touched():
    m = _task_model("pick-place").model
    cand = diet.candidate_pairs(m)
    seen = {("leftpad_geom", "objGeom"), ("objGeom", "tablelink#2")}
    added = diet.finger_closure(m, seen, cand)
    assert sorted(added) == [("leftclaw_it", "objGeom"), ("objGeom", "right_hand#0"), ("objGeom", "rightclaw_it"),
                             ("objGeom", "rightpad_geom")]


@pytest.mark.parametrize("task", ["pick-place", "drawer-open"])
def test_coverage_fresh_official_episodes_stay_inside_the_diet(task):
    """Other goals and other noise than the survey's (one expert and one noisy-expert episode of 200
    steps): every contact official physics makes is a pair of the table."""
    res = diet.coverage(task, expert_goals=(47,), noisy=((0.3, (48,)),), random_goals=(), noise_seed=7, steps=200)
    assert res["seen"] > 0
    assert res["outside"] == {}


def test_a_task_without_a_diet_is_named(monkeypatch):
    monkeypatch.setattr(diet, "_table", lambda: {"reach": {}})
    with pytest.raises(BackendUnavailableError, match="task 'push' has no collision diet yet.*python -m envs.diet --tasks push"):
        check_impl("jax", ("reach", "push"))
    assert check_impl("jax", ("reach",)) == "jax"
