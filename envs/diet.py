"""The collision diet of the MJX ``jax`` backend: which geom pairs may collide, per task, derived
from official Meta-World episodes (issue 19; docs/port.md, "MJX jax backend").

    python -m envs.diet --tasks mt10                 # survey official episodes, write envs/diet.json
    python -m envs.diet --tasks reach,push --check   # coverage: fresh episodes, contacts outside the table
    python -m envs.diet --tasks sweep-into --check --grow   # ... and add them to the table (one more round)
    python -m envs.diet --tasks reach --bench 16     # the jax backend on the diet: first call, env steps/s
    python -m envs.diet --tasks stick-pull --rederive  # re-derive an entry from its stored survey

MJX JAX tests every candidate geom pair at every substep with a fixed-size, branch-free program, so
its cost and compile time grow with the candidate pairs, and the arm and hand meshes (thousands of
vertices) dominate both. Meta-World's episodes touch few of the pairs its models allow. The diet:

1. **Survey** (``survey``): official episodes on the official env (``metaworld``, C MuJoCo), one
   episode per goal: the scripted expert on ``EXPERT_GOALS`` goals, the expert with Gaussian action
   noise, uniform random actions, and random reaching (targets in the hand's box or at the object);
   every geom pair in ``data.contact`` after every physics
   substep (``frame_skip`` per control step) is recorded with how many substeps it was seen. More
   rounds of random reaching follow until ``QUIET_ROUNDS`` rounds in a row see no new pair
   (at most ``MAX_ROUNDS`` rounds in all). Goals
   are the first goals of the official ``MT50(seed 0)`` table; noise and random actions come from
   seeded generators, so the table is reproducible by one command.
2. **Allowed pairs**: the pairs seen, plus two symmetries: a body's (a geom congruent to one seen
   in a pair, same body, shape and contact parameters, may take its place, ``congruent_closure``), then
   the gripper's (a geom one gripper geom touched may meet all five: four finger boxes and the hand,
   ``finger_closure``). ``diet_model`` lets only those collide, by
   contype/conaffinity bits (one bit per geom of a vertex cover of the allowed pairs), so MuJoCo's
   own contact parameter mixing, body filtering and excludes apply unchanged.
3. **Replacements** (``plan_edits``): where a kept pair has a geom MJX JAX has no collision function
   for (a cylinder or an ellipsoid against a box or mesh, repeated until every kept pair has one)
   or a mesh larger than ``MAX_MESH_VERTS`` vertices, that geom becomes a box fitted to it (a
   cylinder's or ellipsoid's circumscribed box; a mesh's bounding box in its own frame). Masses and
   inertias are the compiled official ones (a geom's shape is changed after compilation).
   **Shape check** (``round_tall_cylinders``): the official expert on ``SHAPE_GOALS`` (20) goals in
   official C MuJoCo with only the replaced shapes (``expert_success``); where that misses official's
   success by more than ``SHAPE_BAR`` and the task has tall cylinders (half-height above the radius),
   they become capsules of the same radius and height instead (the round side kept, the flat ends
   rounded off), kept if the expert does strictly better so. Both figures go into the table. This
   checks the shapes in C physics only; the acceptance stays parity on ``jax`` (MJX JAX's capsule
   contacts can differ from C's: docs/port.md, "Shape check").
4. **Margins**: MJX JAX has no margin on mesh pairs; where a kept pair involves a mesh, the margins
   (and gaps) of its two geoms become 0 (the gripper pads' official 0.001).

Solver options stay official. The table (``envs/diet.json``) holds, per task, the kept pairs with
their substep counts by episode kind, the replaced geoms with their fitted sizes, the zeroed margins
and the episodes that produced it. ``--check`` runs fresh official episodes (other goals, other
noise seeds) and reports every contact outside the table (exit status 1 if any).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
import time
import warnings
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import mujoco
import numpy as np

DIET_PATH = Path(__file__).with_name("diet.json")
SURVEY_BENCHMARK, SURVEY_SEED = "MT50", 0  # the goal table the survey draws its goals from
EXPERT_GOALS = tuple(range(16))  # goal indices of the expert episodes
NOISY = ((0.1, (16, 17, 18, 19)), (0.5, (20, 21, 22, 23)), (1.0, (24, 25, 26, 27)))  # (action noise sigma, goals)
RANDOM_GOALS = (28, 29, 30, 31)  # uniform random actions
# Random reaching: every REACH_SEGMENT steps the hand heads for a new target, half the time a uniform
# point of the hand's box, half the time the object (obs 4:7) plus 3 cm noise, with the gripper
# open or closed at random: a random walk alone rarely gets near the table or the objects.
REACH_GOALS = (32, 33, 34, 35, 36, 37, 38, 39)
REACH_SEGMENT = 25
# Then rounds of random reaching (the same goals, fresh draws) until QUIET_ROUNDS rounds in a row see no
# new pair: rare contacts of the gripper with fixture parts need several rounds, and one quiet round
# ended the survey too early on MT50 (fresh episodes then touched pairs it had not seen).
QUIET_ROUNDS = 2
MAX_ROUNDS = 8
# The gripper's geoms (every task has them): four finger boxes and the hand (its mesh, replaced by a
# box). A geom one of them touched may be touched by all five: left/right symmetry, a pad and its claw
# side by side, the hand just above the fingers (rare contacts the survey may see on one side only).
FINGER_GEOMS = ("leftclaw_it", "leftpad_geom", "rightclaw_it", "rightpad_geom", "right_hand#0")
SURVEY_NOISE_SEED = 0
# Coverage check: other goals of the same table, other noise draws.
CHECK_EXPERT_GOALS = (40, 41, 42, 43)
CHECK_NOISY = ((0.3, (44, 45)),)
CHECK_RANDOM_GOALS = (46,)
CHECK_REACH_GOALS = (47, 48, 49)
CHECK_NOISE_SEED = 1
# the shape check's expert goals: the first 20 of the survey's table, the parity protocol's count, so that
# one episode's difference is within SHAPE_BAR (with 16, one episode is 0.0625 and fails it)
SHAPE_GOALS = tuple(range(20))
SHAPE_BAR = 0.05  # the shape check's bar on expert success, the parity bar
MAX_MESH_VERTS = 200  # a kept mesh with more vertices (the hand's 6,693) becomes its fitted box
EPISODE_STEPS = 500

_MESH = int(mujoco.mjtGeom.mjGEOM_MESH)
_BOX = int(mujoco.mjtGeom.mjGEOM_BOX)
_CYLINDER = int(mujoco.mjtGeom.mjGEOM_CYLINDER)
_ELLIPSOID = int(mujoco.mjtGeom.mjGEOM_ELLIPSOID)
_CAPSULE = int(mujoco.mjtGeom.mjGEOM_CAPSULE)
_SHAPES = {"box": _BOX, "capsule": _CAPSULE}  # the replacement types of the table
_PLANE = int(mujoco.mjtGeom.mjGEOM_PLANE)


class NoDietError(RuntimeError):
    """A task has no entry in the diet table (``envs/diet.json``)."""


# ---- geom names ------------------------------------------------------------------------------
def geom_label(m: mujoco.MjModel, g: int) -> str:
    """A geom's stable name: its own, else '<body>#<index among the body's geoms>'."""
    name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g)
    if name:
        return name
    body = int(m.geom_bodyid[g])
    return f"{_body_name(m, body)}#{g - int(m.body_geomadr[body])}"


def _body_name(m: mujoco.MjModel, b: int) -> str:
    # unnamed bodies by id (``envs.assets.task_model`` names them '_body<id>' in the port's model)
    name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b)
    return name if name and name != f"_body{b}" else f"body{b}"


def geom_id(m: mujoco.MjModel, label: str) -> int:
    """Inverse of ``geom_label``."""
    g = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, label)
    if g >= 0:
        return g
    body, _, k = label.rpartition("#")
    b = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, body)
    if b < 0 and body.startswith("body") and body[4:].isdigit() and int(body[4:]) < m.nbody:
        b = int(body[4:]) if _body_name(m, int(body[4:])) == body else -1  # an unnamed body, by id
    if b < 0 or not k.isdigit() or int(k) >= m.body_geomnum[b]:
        raise KeyError(f"no geom '{label}' in the model")
    return int(m.body_geomadr[b]) + int(k)


def pair_key(m: mujoco.MjModel, g1: int, g2: int) -> tuple[str, str]:
    return tuple(sorted((geom_label(m, int(g1)), geom_label(m, int(g2)))))


def candidate_pairs(m: mujoco.MjModel) -> set[tuple[int, int]]:
    """The geom pairs MJX tests for collision (contype/conaffinity, body filter, excludes, <pair>)."""
    from mujoco.mjx._src import collision_driver

    return {tuple(sorted((int(g1), int(g2)))) for g1, g2, _ in collision_driver.geom_pairs(m)}


# ---- the survey ------------------------------------------------------------------------------
def episode_plan(expert_goals, noisy, random_goals, reach_goals=()) -> list[dict]:
    plan = [{"kind": "expert", "goal": int(g), "sigma": 0.0} for g in expert_goals]
    plan += [{"kind": "noisy", "goal": int(g), "sigma": float(s)} for s, goals in noisy for g in goals]
    plan += [{"kind": "random", "goal": int(g), "sigma": None} for g in random_goals]
    plan += [{"kind": "reach", "goal": int(g), "sigma": None} for g in reach_goals]
    return plan


def survey(task: str, plan: list[dict], noise_seed: int, steps: int = EPISODE_STEPS,
           actor=None) -> tuple[dict, mujoco.MjModel]:
    """Official episodes of ``plan`` -> ({(label1, label2): {kind: substeps seen}}, official model).

    Episodes of kind "policy" take their actions from ``actor(obs) -> action`` (e.g. a trained
    policy, wrapped by its caller: ``envs`` does not load checkpoints).

    Every physics substep is recorded: the official ``mj_step(nstep=frame_skip)`` is run as
    ``frame_skip`` single steps (the same arithmetic) with ``data.contact`` read after each."""
    from envs import assets
    from envs.parity import expert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = assets.official_class(task)()  # its own instance: its step is instrumented below
    m, d = env.model, env.data
    goals = assets.goal_table(SURVEY_BENCHMARK, SURVEY_SEED)[task]
    seen: dict[tuple[int, int], Counter] = {}
    kind_now = [""]

    def record():
        if d.ncon:
            g = np.sort(d.contact.geom[: d.ncon], axis=1)
            for g1, g2 in np.unique(g, axis=0):
                seen.setdefault((int(g1), int(g2)), Counter())[kind_now[0]] += 1

    def substeps(ctrl, n_frames):  # gymnasium MujocoEnv._step_mujoco_simulation, one substep at a time
        d.ctrl[:] = ctrl
        for _ in range(n_frames):
            mujoco.mj_step(m, d)
            record()
        mujoco.mj_rnePostConstraint(m, d)

    env._step_mujoco_simulation = substeps
    rng = np.random.default_rng(noise_seed)
    policy = expert(task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ep in plan:
            kind_now[0] = ep["kind"]
            env.set_task(assets.make_task_data(task, goals[ep["goal"]]))
            obs, _ = env.reset()
            for t in range(steps):
                if ep["kind"] == "policy":
                    a = np.asarray(actor(obs), np.float64)
                elif ep["kind"] == "random":
                    a = rng.uniform(-1, 1, 4)
                elif ep["kind"] == "reach":
                    if t % REACH_SEGMENT == 0:
                        target = (rng.uniform(env.mocap_low, env.mocap_high) if rng.uniform() < 0.5
                                  else obs[4:7] + 0.03 * rng.standard_normal(3))
                        grip = rng.choice([-1.0, 1.0])
                    a = np.append(10.0 * (target - obs[:3]), grip)
                else:
                    a = policy.get_action(obs) + ep["sigma"] * rng.standard_normal(4)
                obs, _, _, trunc, _ = env.step(np.clip(a, -1, 1).astype(np.float32))
                if trunc:
                    break
    out = {}
    for (g1, g2), counts in seen.items():
        out[pair_key(m, g1, g2)] = dict(sorted(counts.items()))
    return dict(sorted(out.items())), m


# ---- from pairs to edits ----------------------------------------------------------------------
def _contact_signature(m: mujoco.MjModel, g: int) -> tuple:
    """What makes two geoms of a body interchangeable in contact: body, type, mesh, size and contact parameters."""
    fields = (m.geom_size, m.geom_contype, m.geom_conaffinity, m.geom_condim, m.geom_priority, m.geom_friction,
              m.geom_solmix, m.geom_solref, m.geom_solimp, m.geom_margin, m.geom_gap)
    return (int(m.geom_bodyid[g]), int(m.geom_type[g]), int(m.geom_dataid[g]),
            *(tuple(np.atleast_1d(f[g]).tolist()) for f in fields))


def congruent_closure(m: mujoco.MjModel, seen: set, cand: set) -> list[tuple[str, str]]:
    """Pairs not seen that a body's symmetry adds: for a pair seen, every pair of geoms congruent to its two
    (same body, type, mesh, size and contact parameters: the 8 capsules of the assembly wrench's ring, a
    fixture's twin walls), where MJX would test the pair at all. Which copy a contact lands on depends on
    the body's pose, which the survey samples sparsely."""
    classes: dict[tuple, list[str]] = {}
    for g in sorted({g for p in cand for g in p}):
        classes.setdefault(_contact_signature(m, g), []).append(geom_label(m, g))
    twins = {label: group for group in classes.values() for label in group}
    cand_keys = {pair_key(m, *p) for p in cand}
    out = {tuple(sorted((a2, b2))) for a, b in seen for a2 in twins.get(a, [a]) for b2 in twins.get(b, [b])}
    return sorted(p for p in out - seen if p in cand_keys)


def finger_closure(m: mujoco.MjModel, seen: set, cand: set) -> list[tuple[str, str]]:
    """Pairs not seen that ``FINGER_GEOMS`` symmetry adds: (gripper geom, g) for every gripper geom and
    every g some gripper geom touched, where MJX would test the pair at all."""
    fingers = set(FINGER_GEOMS)
    touched = {b if a in fingers else a for a, b in seen if (a in fingers) != (b in fingers)}
    cand_keys = {pair_key(m, *p) for p in cand}
    out = {tuple(sorted((f, g))) for f in fingers for g in touched}
    return sorted(p for p in out - seen if p in cand_keys)


def _has_fn(t1: int, t2: int) -> bool:
    from mujoco.mjx._src import collision_driver
    from mujoco.mjx._src.types import GeomType

    t1, t2 = sorted((t1, t2))
    return collision_driver.has_collision_fn(GeomType(t1), GeomType(t2))


def _quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.zeros(3)
    mujoco.mju_rotVecQuat(out, np.asarray(v, np.float64), np.asarray(q, np.float64))
    return out


def _fitted_box(m: mujoco.MjModel, g: int) -> dict:
    """The box replacing geom ``g`` in its own frame: a cylinder (radius r, half-height h) -> (r, r, h) and
    an ellipsoid (radii a, b, c) -> (a, b, c), both circumscribed, at the geom's pose; a mesh -> its
    bounding box in the geom frame."""
    t = int(m.geom_type[g])
    if t == _MESH:
        mesh = int(m.geom_dataid[g])
        center, half = m.geom_aabb[g][:3], m.geom_aabb[g][3:]
        pos = m.geom_pos[g] + _quat_rotate(m.geom_quat[g], center)
        was = f"mesh {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_MESH, mesh)} ({int(m.mesh_vertnum[mesh])} vertices)"
        return {"was": was, "type": "box", "size": [float(x) for x in half], "pos": [float(x) for x in pos]}
    if t == _CYLINDER:
        r, h = m.geom_size[g][:2]
        was, size = f"cylinder r={r:.4g} h={h:.4g}", [float(r), float(r), float(h)]
    elif t == _ELLIPSOID:
        size = [float(x) for x in m.geom_size[g]]
        was = f"ellipsoid radii {np.round(size, 4).tolist()}"
    else:
        raise NotImplementedError(f"no box fit for geom {geom_label(m, g)} ({mujoco.mjtGeom(t)})")
    return {"was": was, "type": "box", "size": size, "pos": [float(x) for x in m.geom_pos[g]]}


def _fitted_capsule(m: mujoco.MjModel, g: int) -> dict | None:
    """The capsule replacing a tall cylinder (half-height h > radius r): radius r, half-length h - r, at
    the geom's pose (the same round side and height, the flat ends rounded); None for any other geom."""
    if int(m.geom_type[g]) != _CYLINDER or m.geom_size[g][1] <= m.geom_size[g][0]:
        return None
    r, h = (float(x) for x in m.geom_size[g][:2])
    return {"was": f"cylinder r={r:.4g} h={h:.4g}", "type": "capsule", "size": [r, h - r, 0.0],
            "pos": [float(x) for x in m.geom_pos[g]]}


def set_shape(m: mujoco.MjModel, g: int, rep: dict) -> None:
    """Give geom ``g`` of ``m`` (in place) a table replacement's shape: type, size, position, bounds."""
    size = np.asarray(rep["size"], np.float64)
    m.geom_type[g] = _SHAPES[rep["type"]]
    m.geom_dataid[g] = -1
    m.geom_size[g] = size
    m.geom_pos[g] = rep["pos"]
    if rep["type"] == "capsule":
        r, half = size[0], size[0] + size[1]
        m.geom_rbound[g] = half
        m.geom_aabb[g] = [0.0, 0.0, 0.0, r, r, half]
    else:
        m.geom_rbound[g] = float(np.linalg.norm(size))
        m.geom_aabb[g] = np.concatenate([np.zeros(3), size])


def expert_success(task: str, replace: dict, goals=SHAPE_GOALS) -> np.ndarray:
    """The official expert's any-step success on official C MuJoCo (an own env instance) with the
    replaced shapes ``replace`` and nothing else of the diet, one episode per goal index."""
    from envs import assets
    from envs.parity import official_success

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = assets.official_class(task)()
    for label, rep in replace.items():
        set_shape(env.model, geom_id(env.model, label), rep)
    table = assets.goal_table(SURVEY_BENCHMARK, SURVEY_SEED)[task]
    return official_success(task, table[list(goals)], env=env)


def round_tall_cylinders(task: str, m: mujoco.MjModel, pairs: list[tuple[str, str]], replace: dict,
                         log=print) -> tuple[dict, dict | None]:
    """The shape check: the replacements kept, or their tall cylinders as capsules (``_fitted_capsule``)
    where the boxes miss official's expert success by more than ``SHAPE_BAR`` and the capsules do
    strictly better. Returns (replacements, the check's figures; None without a tall cylinder)."""
    capsules = {label: cap for label in replace
                if (cap := _fitted_capsule(m, geom_id(m, label))) is not None}
    if not capsules:
        return replace, None
    official = float(expert_success(task, {}).mean())
    box = float(expert_success(task, replace).mean())
    record = {"goals": list(SHAPE_GOALS), "official": official, "box": box, "capsule": None,
              "tall_cylinders": sorted(capsules), "chosen": "box"}
    if box < official - SHAPE_BAR - 1e-9:
        rounded = {**replace, **capsules}
        types = {geom_id(m, label): int(m.geom_type[geom_id(m, label)]) for p in pairs for label in p}
        types.update({geom_id(m, label): _SHAPES[rep["type"]] for label, rep in rounded.items()})
        if all(_has_fn(types[geom_id(m, a)], types[geom_id(m, b)]) for a, b in pairs):
            record["capsule"] = float(expert_success(task, rounded).mean())
            if record["capsule"] > box:
                replace, record["chosen"] = rounded, "capsule"
    capsule = "not tried" if record["capsule"] is None else f"{record['capsule']:.2f}"
    log(f"{task:28s} shape check on {len(SHAPE_GOALS)} goals: official {official:.2f}, boxes {box:.2f}, "
        f"capsules {capsule} -> {record['chosen']}")
    return replace, record


def plan_edits(m: mujoco.MjModel, pairs: list[tuple[str, str]]) -> tuple[dict, list[str]]:
    """The replacements and zeroed margins a model needs for MJX JAX to collide exactly ``pairs``.

    Returns ({label: {"was": ..., "type": "box", "size": [3], "pos": [3]}}, [labels whose margin and
    gap become 0]). A kept mesh larger than ``MAX_MESH_VERTS`` becomes its fitted box (``_fitted_box``).
    A cylinder or ellipsoid kept against a partner MJX JAX has no collision function with (a box or a
    mesh: ``collision_driver.has_collision_fn``) becomes its circumscribed box. A box collides with
    every type but cylinders and ellipsoids, so this repeats until every pair has a function (a
    cylinder kept against a cylinder that became a box becomes one too); a box keeps the flat ends a
    capsule would round off (a cylinder standing on the table stays standing)."""
    ids = [(geom_id(m, a), geom_id(m, b)) for a, b in pairs]
    kept = sorted({g for p in ids for g in p})
    replace = {g: _fitted_box(m, g) for g in kept
               if m.geom_type[g] == _MESH and m.mesh_vertnum[m.geom_dataid[g]] > MAX_MESH_VERTS}
    types = {g: (_BOX if g in replace else int(m.geom_type[g])) for g in kept}
    while True:
        fit = {g for a, b in ids if not _has_fn(types[a], types[b])
               for g in (a, b) if types[g] in (_CYLINDER, _ELLIPSOID)}
        if not fit:
            break
        for g in sorted(fit):
            replace[g], types[g] = _fitted_box(m, g), _BOX
    zero = set()
    for a, b in ids:
        if _MESH in (types[a], types[b]):
            zero |= {g for g in (a, b) if m.geom_margin[g] > 0 or m.geom_gap[g] > 0}
        if not _has_fn(types[a], types[b]):
            raise NotImplementedError(f"no MJX JAX collision for kept pair {geom_label(m, a)}-{geom_label(m, b)} "
                                      f"({mujoco.mjtGeom(types[a])}, {mujoco.mjtGeom(types[b])}) after the diet")
    return ({geom_label(m, g): replace[g] for g in sorted(replace)}, sorted(geom_label(m, g) for g in zero))


def _cover(pairs: list[tuple[int, int]]) -> list[int]:
    """A small vertex cover of the pair graph (greedy: the geom in most uncovered pairs first; ties by id).

    It never holds more than (kept geoms - 1) geoms (once all but one are in it, every pair is covered),
    so the 31 contype bits suffice for every diet of up to 32 kept geoms (MT50's largest keeps 27)."""
    left, cover = set(pairs), []
    while left:
        deg = Counter(g for p in left for g in p)
        g = min(deg, key=lambda k: (-deg[k], k))
        cover.append(g)
        left = {p for p in left if g not in p}
    return cover


def diet_model(model: mujoco.MjModel, entry: dict) -> tuple[mujoco.MjModel, tuple[str, ...]]:
    """A copy of a task model on which exactly the table's pairs collide, with its replacements and
    zeroed margins; returns the model and the edits in words. Raises if the result's candidate pairs
    are not exactly the table's (a pair filtered by the model, a label that does not resolve)."""
    m = copy.copy(model)
    pairs = [tuple(sorted((geom_id(m, a), geom_id(m, b)))) for a, b in entry["pairs"]]
    edits = []
    for label, rep in entry["replace"].items():
        set_shape(m, geom_id(m, label), rep)
        edits.append(f"{label}: {rep['was']} -> {rep['type']} {np.round(rep['size'], 4).tolist()}")
    for label in entry["zero_margin"]:
        g = geom_id(m, label)
        edits.append(f"{label}: margin {m.geom_margin[g]:.4g} gap {m.geom_gap[g]:.4g} -> 0")
        m.geom_margin[g] = m.geom_gap[g] = 0.0
    cover = _cover(pairs)
    if len(cover) > 31:
        raise NotImplementedError(f"{len(cover)} geoms cover the allowed pairs: more than the 31 contype bits")
    bit = {g: 1 << i for i, g in enumerate(cover)}
    m.geom_contype[:] = 0
    m.geom_conaffinity[:] = 0
    for g, b in bit.items():
        m.geom_conaffinity[g] = b
    for a, b in pairs:
        src, dst = (a, b) if b in bit else (b, a)
        m.geom_contype[src] |= bit[dst]
    got = candidate_pairs(m)
    if got != set(pairs):
        extra = sorted(pair_key(m, *p) for p in got - set(pairs))
        missing = sorted(pair_key(m, *p) for p in set(pairs) - got)
        raise RuntimeError(f"diet of {entry.get('task', '?')}: candidate pairs differ from the table "
                           f"(extra {extra}, missing {missing})")
    edits.append(f"{len(pairs)} allowed geom pairs of {entry['candidate_pairs']} (contype/conaffinity bits)")
    return m, tuple(edits)


# ---- the table ---------------------------------------------------------------------------------
def load_table(path: Path = DIET_PATH) -> dict:
    if not path.exists():
        return {}
    with open(path) as f:
        return json.load(f)["tasks"]


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    return load_table()


def entry(task: str) -> dict:
    """A task's diet (``envs/diet.json``); NoDietError naming the task and the tasks that have one."""
    table = _table()
    if task not in table:
        raise NoDietError(f"impl='jax': task '{task}' has no collision diet yet (envs/diet.json has "
                          f"{', '.join(sorted(table)) or 'none'}); make one with `python -m envs.diet --tasks {task}`")
    return table[task]


def survey_rounds(task: str) -> tuple[dict, list[dict], mujoco.MjModel]:
    """The survey of a task: the first plan, then rounds of random reaching (``more_rounds``) -> (pairs
    seen with substeps by kind, the rounds, the official model)."""
    plan = episode_plan(EXPERT_GOALS, NOISY, RANDOM_GOALS, REACH_GOALS)
    seen, m = survey(task, plan, SURVEY_NOISE_SEED)
    rounds = [{"noise_seed": SURVEY_NOISE_SEED, "plan": plan, "new_pairs": len(seen)}]
    more_rounds(task, seen, rounds)
    return dict(sorted(seen.items())), rounds, m


def _quiet(rounds: list[dict]) -> bool:
    return len(rounds) > QUIET_ROUNDS and not any(r["new_pairs"] for r in rounds[-QUIET_ROUNDS:])


def add_substeps(counts: dict, more: dict) -> dict:
    """Substeps seen by episode kind, ``counts`` + ``more`` (a new dict, kinds sorted)."""
    return {kind: counts.get(kind, 0) + more.get(kind, 0) for kind in sorted({*counts, *more})}


def more_rounds(task: str, seen: dict, rounds: list[dict]) -> None:
    """Add rounds of random reaching (noise seed = round index) to a survey, in place, until
    ``QUIET_ROUNDS`` rounds in a row see no new pair or there are ``MAX_ROUNDS``."""
    while len(rounds) < MAX_ROUNDS and not _quiet(rounds):
        more = episode_plan((), (), (), REACH_GOALS)
        extra, _ = survey(task, more, SURVEY_NOISE_SEED + len(rounds))
        new = set(extra) - set(seen)
        for k, counts in extra.items():
            seen[k] = add_substeps(seen.get(k, {}), counts)
        rounds.append({"noise_seed": SURVEY_NOISE_SEED + len(rounds), "plan": more, "new_pairs": len(new)})


def build_entry(task: str, log=print) -> dict:
    """Survey a task and derive its table entry."""
    t0 = time.perf_counter()
    seen, rounds, m = survey_rounds(task)
    out = derive_entry(task, seen, rounds, m, log=log)
    log(f"{task:28s} geoms {out['collidable_geoms']:3d} -> {out['kept_geoms']:2d}  "
        f"pairs {out['candidate_pairs']:4d} -> {len(out['pairs']):3d}  replaced {len(out['replace'])}  "
        f"margins 0: {len(out['zero_margin'])}  rounds {len(rounds)} "
        f"(new pairs {[r['new_pairs'] for r in rounds]})  ({time.perf_counter() - t0:.0f} s)")
    return out


def derive_entry(task: str, seen: dict, rounds: list[dict], m: mujoco.MjModel, log=print) -> dict:
    """A table entry from a survey (``survey_rounds``): allowed pairs, replacements (shape-checked),
    zeroed margins."""
    cand = candidate_pairs(m)
    congruent = congruent_closure(m, set(seen), cand)
    closure = finger_closure(m, {*seen, *congruent}, cand)
    pairs = sorted({*seen, *congruent, *closure})
    replace, zero = plan_edits(m, pairs)
    replace, shape_check = round_tall_cylinders(task, m, pairs, replace, log=log)
    collidable = {g for p in cand for g in p}
    kept = {g for p in pairs for g in p}
    out = {
        "task": task,
        "pairs": [list(p) for p in pairs],
        "substeps_seen": {f"{a} / {b}": c for (a, b), c in seen.items()},
        "congruent_closure": [list(p) for p in congruent],
        "finger_closure": [list(p) for p in closure],
        "replace": replace,
        "shape_check": shape_check,
        "zero_margin": zero,
        "collidable_geoms": len(collidable),
        "kept_geoms": len(kept),
        "candidate_pairs": len(cand),
        "episodes": {"benchmark": SURVEY_BENCHMARK, "seed": SURVEY_SEED, "steps": EPISODE_STEPS, "rounds": rounds},
    }
    unknown = [p for p in pairs if tuple(sorted((geom_id(m, p[0]), geom_id(m, p[1])))) not in cand]
    if unknown:
        raise RuntimeError(f"{task}: contacts outside MJX's candidate pairs: {unknown}")
    return out


def write_table(entries: dict, path: Path = DIET_PATH) -> None:
    table = load_table(path)
    table.update(entries)
    doc = {"about": "MJX jax collision diet per task; made by `python -m envs.diet --tasks ...` (envs/diet.py)",
           "versions": {"metaworld": version("metaworld"), "mujoco": mujoco.__version__},
           "tasks": dict(sorted(table.items()))}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def coverage(task: str, expert_goals=CHECK_EXPERT_GOALS, noisy=CHECK_NOISY, random_goals=CHECK_RANDOM_GOALS,
             reach_goals=CHECK_REACH_GOALS, noise_seed: int = CHECK_NOISE_SEED, steps: int = EPISODE_STEPS,
             actor=None, policy_goals=()) -> dict:
    """Fresh official episodes -> {"outside": {pair: substeps by kind}, "seen": n pairs, "episodes": plan}.
    With ``actor`` (obs -> action), also one episode per ``policy_goals`` goal driven by it."""
    allowed = {tuple(p) for p in entry(task)["pairs"]}
    plan = episode_plan(expert_goals, noisy, random_goals, reach_goals)
    plan += [{"kind": "policy", "goal": int(g), "sigma": None} for g in policy_goals]
    seen, _ = survey(task, plan, noise_seed, steps, actor)
    outside = {f"{a} / {b}": c for (a, b), c in seen.items() if (a, b) not in allowed}
    return {"outside": outside, "seen": len(seen), "episodes": plan}


def grow(task: str, result: dict, source: str, noise_seed: int | None = None, path: Path = DIET_PATH) -> dict:
    """Add the contacts a coverage run (``coverage``) found outside a task's diet to its table entry, as
    one more survey round (``source``: which episodes, e.g. "check" or a run dir), and re-derive the
    entry (closures, replacements, margins) as the survey does; written to ``path``. Returns the new
    entry. A later check on other episodes tells whether the grown table covers them."""
    seen, rounds = _stored_survey(task, path, "grow")
    for key, counts in result["outside"].items():
        pair = tuple(key.split(" / "))
        seen[pair] = add_substeps(seen.get(pair, {}), counts)
    rounds = [*rounds, {"source": source, "noise_seed": noise_seed, "plan": result["episodes"],
                        "new_pairs": len(result["outside"])}]
    return _rederive_and_write(task, seen, rounds, path)


def rederive(task: str, path: Path = DIET_PATH, log=print) -> dict:
    """Re-derive a task's table entry from its stored survey (``--rederive``: the closures, replacements
    with their shape check, margins; no new episodes), written to ``path``. Returns the new entry."""
    seen, rounds = _stored_survey(task, path, "re-derive")
    return _rederive_and_write(task, seen, rounds, path, log)


def _stored_survey(task: str, path: Path, what: str) -> tuple[dict, list[dict]]:
    """A task's stored survey in table ``path``: ({pair: {kind: substeps}}, rounds); NoDietError if none."""
    table = load_table(path)
    if task not in table:
        raise NoDietError(f"task '{task}' has no collision diet in {path} to {what}; make one with "
                          f"`python -m envs.diet --tasks {task}`")
    old = table[task]
    return {tuple(k.split(" / ")): dict(v) for k, v in old["substeps_seen"].items()}, list(old["episodes"]["rounds"])


def _rederive_and_write(task: str, seen: dict, rounds: list[dict], path: Path, log=print) -> dict:
    from envs import assets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = assets.official_class(task)().model
    new = derive_entry(task, dict(sorted(seen.items())), rounds, m, log=log)
    write_table({task: new}, path)
    _table.cache_clear()
    return new


def bench(task: str, batch: int = 16, steps: int = 40, seed: int = 0, max_contact_points: int | None = None) -> dict:
    """The ``jax`` backend's cost on a task's diet: seconds of the first call of a jitted env step at
    ``batch`` envs (tracing + XLA compile, cold unless a persistent cache is configured) and env
    steps/s over ``steps`` further calls with uniform random actions."""
    import jax

    from envs.sawyer import SawyerEnv

    env = SawyerEnv(task, impl="jax", max_contact_points=max_contact_points)
    state = env.reset(jax.random.PRNGKey(seed), batch)
    actions = jax.random.uniform(jax.random.PRNGKey(seed + 1), (steps + 1, batch, 4), minval=-1.0, maxval=1.0)
    step = jax.jit(env.step)
    t0 = time.perf_counter()
    state = jax.block_until_ready(step(state, actions[0]))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for a in actions[1:]:
        state = step(state, a)
    jax.block_until_ready(state)
    return {"task": task, "batch": batch, "first_call_s": first, "env_steps_per_s": steps * batch / (time.perf_counter() - t0)}


def most_contacts(task: str, episodes: int = 8, seed: int = 0) -> dict:
    """The most MJX contacts active at once on the ``jax`` backend (every slot of the diet, no cap),
    at any substep of full episodes: the official expert on ``episodes`` goals of the parity protocol,
    and uniform random actions on as many envs; with the diet's contact slots."""
    import jax
    import jax.numpy as jnp

    from envs.parity import expert, goal_indices
    from envs.sawyer import SawyerEnv

    env = SawyerEnv(task, impl="jax", eval_mode=True)
    goals = goal_indices(episodes, seed)
    state = env.reset(jax.random.PRNGKey(seed), 2 * episodes, goals=jnp.asarray(np.concatenate([goals, goals])))
    step, count = jax.jit(env.step), jax.jit(env.backend.max_active_contacts)
    policy, rng = expert(task), np.random.default_rng(seed)
    most = np.zeros(2 * episodes, int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(env.max_path_length):
            obs = np.asarray(state.obs, np.float64)
            action = np.concatenate([np.stack([np.clip(policy.get_action(o), -1, 1) for o in obs[:episodes]]),
                                     rng.uniform(-1, 1, (episodes, 4))]).astype(np.float32)
            most = np.maximum(most, np.asarray(count(state.data, jnp.asarray(action))))
            state = step(state, jnp.asarray(action))
    slots = int(env.backend._template_np._impl.contact.dist.shape[0])
    return {"task": task, "slots": slots, "expert": int(most[:episodes].max()), "random": int(most[episodes:].max())}


def main(argv=None) -> int:
    from envs.registry import UnknownTaskError, resolve_tasks

    p = argparse.ArgumentParser(prog="python -m envs.diet", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", required=True, help="mt10, mt50, or comma-separated task names")
    p.add_argument("--check", action="store_true", help="coverage check on fresh episodes instead of a survey")
    p.add_argument("--bench", type=int, default=0, metavar="BATCH",
                   help="instead: first-call seconds and env steps/s of the jax backend at this batch")
    p.add_argument("--max-contacts", type=int, default=None, metavar="K",
                   help="with --bench: the jax backend keeps the K deepest contacts per condim group (default: all)")
    p.add_argument("--contacts", type=int, default=0, metavar="EPISODES",
                   help="instead: the most MJX contacts active at once (expert and random episodes), against the slots")
    p.add_argument("--rederive", action="store_true",
                   help="instead: re-derive the tasks' entries from their stored surveys (closures, replacements "
                        "with the shape check, margins; no new episodes)")
    p.add_argument("--out", default=str(DIET_PATH), help="the table to update (survey, --grow, --rederive)")
    p.add_argument("--grow", action="store_true",
                   help="with --check: add the contacts found outside the diet to the table (one more survey round)")
    p.add_argument("--noise-seed", type=int, default=CHECK_NOISE_SEED,
                   help=f"with --check: the seed of its noise and random actions (default {CHECK_NOISE_SEED}; "
                        "another seed checks a grown table on fresh episodes)")
    args = p.parse_args(argv)
    try:
        tasks = resolve_tasks(args.tasks)
    except UnknownTaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.rederive:
        for task in tasks:
            try:
                new = rederive(task, Path(args.out))
            except NoDietError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            print(f"{task:28s} {len(new['pairs'])} pairs, replaced {len(new['replace'])} "
                  f"({', '.join(sorted({r['type'] for r in new['replace'].values()})) or 'none'}), "
                  f"margins 0: {len(new['zero_margin'])} (written to {args.out})", flush=True)
        return 0
    if args.contacts:
        for task in tasks:
            r = most_contacts(task, args.contacts)
            print(f"{task:28s} contact slots {r['slots']:4d}  most active at once: expert {r['expert']:3d}, "
                  f"random {r['random']:3d}", flush=True)
        return 0
    if args.bench:
        for task in tasks:
            r = bench(task, args.bench, max_contact_points=args.max_contacts)
            print(f"{task:28s} batch {r['batch']}  first call {r['first_call_s']:6.1f} s  "
                  f"{r['env_steps_per_s']:6.0f} env steps/s", flush=True)
        return 0
    if args.check:
        bad = 0
        for task in tasks:
            t0 = time.perf_counter()
            try:
                res = coverage(task, noise_seed=args.noise_seed)
            except NoDietError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            bad += bool(res["outside"])
            print(f"{task:28s} pairs seen {res['seen']:3d}  outside the diet {len(res['outside'])}"
                  f"{'  ' + '; '.join(f'{k} {v}' for k, v in res['outside'].items()) if res['outside'] else ''}"
                  f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
            if args.grow and res["outside"]:
                grown = grow(task, res, "check", args.noise_seed, Path(args.out))
                print(f"{'':28s} grown: {len(grown['pairs'])} pairs, replaced {len(grown['replace'])}, "
                      f"margins 0: {len(grown['zero_margin'])} (written to {args.out})", flush=True)
        return 1 if bad and not args.grow else 0
    entries = {}
    for task in tasks:
        entries[task] = build_entry(task)
        write_table({task: entries[task]}, Path(args.out))  # one task at a time: a long run keeps what it made
    return 0


if __name__ == "__main__":
    sys.exit(main())
