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

DIETED = tuple(sorted(diet.load_table()))  # every task with a diet


@pytest.fixture(scope="module")
def table():
    return diet.load_table()


def _task_model(task):
    return SawyerEnv(task).task_model


@pytest.mark.parametrize("task", DIETED)
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
        assert m.geom_type[g] == diet._SHAPES[rep["type"]] and np.allclose(m.geom_size[g], rep["size"])
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


@pytest.mark.parametrize("task", ["pick-place", "drawer-open", "box-close"])
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


def test_replacement_repeats_until_every_kept_pair_has_an_mjx_collision_function():
    """A cylinder kept against a box becomes its circumscribed box, so a cylinder kept only against that
    cylinder becomes one too; an ellipsoid kept against a box becomes its box; a cylinder-cylinder pair
    and a capsule stay as they are."""
    m = mujoco.MjModel.from_xml_string("""<mujoco><worldbody>
      <body name="a"><freejoint/><geom name="box" type="box" size=".1 .1 .1"/></body>
      <body name="b"><freejoint/><geom name="cyl1" type="cylinder" size=".05 .2" pos="0 0 1"/></body>
      <body name="c"><freejoint/><geom name="cyl2" type="cylinder" size=".03 .1"/></body>
      <body name="d"><freejoint/><geom name="ell" type="ellipsoid" size=".1 .2 .3"/></body>
      <body name="e"><freejoint/><geom name="cyl3" type="cylinder" size=".04 .1"/></body>
      <body name="f"><freejoint/><geom name="cyl4" type="cylinder" size=".04 .1"/></body>
      <body name="g"><freejoint/><geom name="cap" type="capsule" size=".04 .1"/></body>
    </worldbody></mujoco>""")
    pairs = [("box", "cyl1"), ("cyl1", "cyl2"), ("box", "ell"), ("cyl3", "cyl4"), ("box", "cap")]
    replace, zero = diet.plan_edits(m, pairs)
    assert sorted(replace) == ["cyl1", "cyl2", "ell"]
    assert replace["cyl1"]["size"] == pytest.approx([0.05, 0.05, 0.2]) and replace["cyl1"]["pos"] == [0, 0, 1]
    assert replace["ell"]["size"] == pytest.approx([0.1, 0.2, 0.3])
    assert zero == []


def test_congruent_closure_adds_the_twins_of_a_geom_seen_in_a_pair():
    """assembly: the wrench's ring is 8 equal capsules and the retaining wall has two equal long walls, so
    one ring capsule seen against one long wall allows all 8 x 2 pairs; the handle box has no twin."""
    from envs.assets import official_class

    m = official_class("assembly")().model
    cand = diet.candidate_pairs(m)
    seen = {("RetainingWall#0", "asmbly_peg#8"), ("RetainingWall#0", "asmbly_peg#11")}
    added = diet.congruent_closure(m, seen, cand)
    ring = [f"asmbly_peg#{k}" for k in range(3, 11)]
    expected = {(w, c) for w in ("RetainingWall#0", "RetainingWall#1") for c in ring + ["asmbly_peg#11"]}
    assert set(added) == expected - seen


def test_grow_adds_the_contacts_outside_the_diet_as_one_more_survey_round(tmp_path):
    """``diet.grow`` (``--check --grow``, ``diet_coverage --grow``): a contact found outside a task's
    diet joins its pairs, with the round that found it; the entry is re-derived (closures included)
    and written to the given table only; other tasks' entries stay as they were."""
    import json
    import shutil

    path = tmp_path / "diet.json"
    shutil.copy(diet.DIET_PATH, path)
    before = diet.load_table(path)
    m = _task_model("reach").model
    kept = {tuple(p) for p in before["reach"]["pairs"]}
    missing = sorted(diet.pair_key(m, a, b) for a, b in diet.candidate_pairs(m) if diet.pair_key(m, a, b) not in kept)
    pair = next(p for p in missing if "right_hand#0" not in p)  # some pair no episode touched
    result = {"outside": {f"{pair[0]} / {pair[1]}": {"policy": 3}}, "seen": 1, "episodes": 2}
    grown = diet.grow("reach", result, "test run", path=path)
    after = diet.load_table(path)
    assert list(pair) in grown["pairs"] and after["reach"] == grown
    assert grown["substeps_seen"][f"{pair[0]} / {pair[1]}"] == {"policy": 3}
    assert grown["episodes"]["rounds"][-1]["source"] == "test run"
    assert len(grown["episodes"]["rounds"]) == len(before["reach"]["episodes"]["rounds"]) + 1
    assert {tuple(p) for p in before["reach"]["pairs"]} < {tuple(p) for p in grown["pairs"]}
    assert all(after[t] == before[t] for t in before if t != "reach")
    assert json.loads(diet.DIET_PATH.read_text())["tasks"]["reach"] == before["reach"]  # the repository's table untouched


def test_most_contacts_counts_what_a_cap_must_keep_reach(capsys):
    """``envs.diet --contacts``: on reach (60 contact slots on its diet) the expert and random actions
    keep a few contacts active at once (measured 2026-12-04 over 4 goals: 4 and 8), never all slots."""
    import re

    assert diet.main(["--tasks", "reach", "--contacts", "1"]) == 0
    line = capsys.readouterr().out
    slots, expert, random = map(int, re.search(r"contact slots +(\d+) .*expert +(\d+), random +(\d+)", line).groups())
    assert slots == 60
    assert 1 <= expert < slots and 1 <= random < slots


def test_a_tall_cylinder_has_a_capsule_of_its_radius_and_height_a_squat_one_none():
    m = mujoco.MjModel.from_xml_string("""<mujoco><worldbody>
      <geom name="tall" type="cylinder" size=".06 .1" pos="0 0 .14"/>
      <geom name="squat" type="cylinder" size=".062 .02"/>
      <geom name="box" type="box" size=".1 .1 .1"/>
    </worldbody></mujoco>""")
    cap = diet._fitted_capsule(m, 0)
    assert cap["type"] == "capsule" and cap["size"] == pytest.approx([0.06, 0.04, 0.0]) and cap["pos"] == pytest.approx([0, 0, 0.14])
    assert diet._fitted_capsule(m, 1) is None and diet._fitted_capsule(m, 2) is None
    diet.set_shape(m, 0, cap)
    assert m.geom_type[0] == mujoco.mjtGeom.mjGEOM_CAPSULE and m.geom_rbound[0] == pytest.approx(0.1)
    np.testing.assert_allclose(m.geom_aabb[0], [0, 0, 0, 0.06, 0.06, 0.1])  # the cylinder's height


@pytest.mark.parametrize("box, capsule, chosen", [(1.0, None, "box"), (0.5, 0.9, "capsule"), (0.5, 0.5, "box")])
def test_shape_check_rounds_the_tall_cylinders_only_where_the_boxes_miss_and_capsules_do_better(
        monkeypatch, box, capsule, chosen):
    """stick-pull's thermos (a tall cylinder, body36#7) and its base (squat, body36#8): the boxes are kept
    when the expert meets the bar with them; else the tall one becomes a capsule if that does strictly
    better (figures stubbed here; the physics is the next test's)."""
    from envs.assets import official_class

    m = official_class("stick-pull")().model
    entry = diet.load_table()["stick-pull"]
    pairs = [tuple(p) for p in entry["pairs"]]
    boxes, _ = diet.plan_edits(m, pairs)
    assert boxes["body36#7"]["type"] == boxes["body36#8"]["type"] == "box"
    calls = []

    def fake(task, replace, goals=diet.SHAPE_GOALS):
        calls.append({k: r["type"] for k, r in replace.items()})
        rate = 1.0 if not replace else capsule if replace["body36#7"]["type"] == "capsule" else box
        return np.full(len(goals), rate)

    monkeypatch.setattr(diet, "expert_success", fake)
    replace, record = diet.round_tall_cylinders("stick-pull", m, pairs, boxes, log=lambda *a: None)
    assert record["tall_cylinders"] == ["body36#7"] and record["chosen"] == chosen
    assert replace["body36#7"]["type"] == ("capsule" if chosen == "capsule" else "box")
    assert replace["body36#8"]["type"] == "box" and len(calls) == (2 if capsule is None else 3)


def test_stick_pull_thermos_as_a_box_fails_the_expert_in_official_physics_as_a_capsule_not():
    """The shape check's measurement (official C MuJoCo, only the shapes edited), goal 0: the stick
    meets the box's corner (0.085 m from the axis where the cylinder reaches 0.06) and the expert fails;
    with the table's capsule it pulls the thermos as on the official model."""
    entry = diet.load_table()["stick-pull"]
    assert entry["replace"]["body36#7"]["type"] == "capsule" and entry["shape_check"]["chosen"] == "capsule"
    boxes = {**entry["replace"], "body36#7": diet._fitted_box(_task_model("stick-pull").model,
                                                             diet.geom_id(_task_model("stick-pull").model, "body36#7"))}
    assert diet.expert_success("stick-pull", {}, goals=(0,)).tolist() == [1.0]
    assert diet.expert_success("stick-pull", entry["replace"], goals=(0,)).tolist() == [1.0]
    assert diet.expert_success("stick-pull", boxes, goals=(0,)).tolist() == [0.0]


@pytest.mark.parametrize("task", [t for t in DIETED if diet.load_table()[t].get("shape_check") is None])
def test_rederive_from_the_stored_survey_reproduces_the_entry(task, tmp_path):
    """``--rederive``: the closures, replacements and margins derived again from an entry's stored survey
    are the entry (tasks without a tall replaced cylinder: no expert episodes needed), written to the
    given table only."""
    import shutil

    path = tmp_path / "diet.json"
    shutil.copy(diet.DIET_PATH, path)
    before = diet.load_table(path)
    assert diet.rederive(task, path, log=lambda *a: None) == before[task]
    assert diet.load_table(path) == before


def test_rederive_names_a_task_without_a_diet(tmp_path, capsys):
    path = tmp_path / "diet.json"
    diet.write_table({}, path)
    assert diet.main(["--tasks", "reach", "--rederive", "--out", str(path)]) == 2
    assert "task 'reach' has no collision diet" in capsys.readouterr().err
