"""Models, goal tables and reset tables, all derived from the installed official ``metaworld``.

* **Model**: the official task XML (from the installed package, not vendored), recompiled with
  MjSpec with two edits that keep the physics bit-identical (checked in ``tests/test_replay.py``):
  (1) every fixture body that the official ``reset_model`` moves by writing ``model.body_pos``
  becomes a *mocap* body, so its placement is per-env state (``mocap_pos``) instead of a model
  field — one model serves a whole batch of envs with different goals — with contact filtering
  restated so the colliding pairs stay official's (``task_model``); (2) frame sensors
  (position, quaternion, axes) for every frame a task reads, so a batched ``mujoco.rollout`` reports
  the kinematics the task logic needs. The official ``reset_mocap_welds`` model write is copied.
* **Goal tables**: the 50 fixed rand_vecs per task of the official ``MT10(seed)`` / ``MT50(seed)``.
* **Reset tables**: for each of the 50 goals, the official post-``reset()`` physics state, first
  observation and the per-episode constants the reward reads (``obj_init_pos``, ``init_tcp``,
  ``_target_pos``...). Official ``reset()`` is deterministic given the goal (it runs the 250-substep
  hand reset every time), so tabulating it is exact and saves 250 substeps per episode.

Tables are cached on disk (``$TOPPO_CACHE_DIR``, default ``~/.cache/toppo_jax``), keyed by the
metaworld and mujoco versions.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
import pickle
import warnings
from pathlib import Path

import mujoco
import numpy as np

STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS  # time, qpos, qvel, act, history, plugin (no mocap)
TABLE_FORMAT = 2  # bump when the layout of cached tables changes
FRAME_WIDTH = 16  # pos 3 + quat 4 + x/y/z axes 9
SAWYER_MOCAP = "mocap"
_OBJTYPE = {"body": mujoco.mjtObj.mjOBJ_XBODY, "site": mujoco.mjtObj.mjOBJ_SITE, "geom": mujoco.mjtObj.mjOBJ_GEOM}


def cache_dir() -> Path:
    root = Path(os.environ.get("TOPPO_CACHE_DIR", Path.home() / ".cache" / "toppo_jax"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _versions() -> str:
    import metaworld  # noqa: F401
    from importlib.metadata import version

    return f"mw{version('metaworld')}_mj{mujoco.__version__}_fmt{TABLE_FORMAT}"


def official_class(task: str):
    """The official env class of a canonical task name."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return ALL_V3_ENVIRONMENTS[f"{task}-v3"]


@functools.lru_cache(maxsize=None)
def official_env(task: str, reward_version: str = "v2"):
    """One official env instance per task and reward version (``reward_function_version``; used to build
    tables; never stepped by the port)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = official_class(task)(reward_function_version=reward_version)
    return env  # goal observability comes with set_task (partially_observable=False), as in MT benchmarks


def make_task_data(task: str, rand_vec: np.ndarray):
    """An official ``metaworld.Task`` carrying one rand_vec, goal observable (the MT protocol)."""
    import metaworld

    data = {"env_cls": official_class(task), "rand_vec": np.asarray(rand_vec, np.float64), "partially_observable": False}
    return metaworld.Task(env_name=f"{task}-v3", data=pickle.dumps(data))


def _cached(name: str, build):
    path = cache_dir() / f"{name}_{_versions()}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    arrays = build()
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a reader never sees a half-written table
    return arrays


def goal_table(benchmark: str, seed: int) -> dict[str, np.ndarray]:
    """{task: rand_vecs [50, d]} exactly as the official ``metaworld.<benchmark>(seed)`` draws them."""

    def build():
        import metaworld

        bench = getattr(metaworld, benchmark)(seed=seed)
        out: dict[str, list] = {}
        for t in bench.train_tasks:
            out.setdefault(t.env_name[:-3], []).append(pickle.loads(t.data)["rand_vec"])
        return {k: np.stack(v) for k, v in out.items()}

    return _cached(f"goals_{benchmark}_seed{seed}", build)


@dataclasses.dataclass(frozen=True)
class TaskModel:
    """The compiled MuJoCo model of one task and the layout of its sensors and state."""

    task: str
    model: mujoco.MjModel
    frames: tuple[str, ...]  # "body:hand", ... in sensor order
    fixtures: tuple[str, ...]  # official fixture bodies turned into mocap bodies
    nstate: int  # FULLPHYSICS followed by mocap_pos and mocap_quat (the port's state layout)
    nphys: int  # FULLPHYSICS size
    sawyer_mocap: int  # mocap index of the Sawyer hand mocap

    def state_slices(self) -> dict[str, slice]:
        """Where each field sits in a FULLPHYSICS state vector."""
        out, i = {}, 0
        for name, bit in sorted(mujoco.mjtState.__members__.items(), key=lambda kv: kv[1].value):
            if bit.value & STATE_SPEC.value and bin(bit.value).count("1") == 1:
                n = mujoco.mj_stateSize(self.model, bit)
                out[name[len("mjSTATE_"):].lower()] = slice(i, i + n)
                i += n
        out["mocap_pos"] = slice(i, i + 3 * self.model.nmocap)
        out["mocap_quat"] = slice(i + 3 * self.model.nmocap, i + 7 * self.model.nmocap)
        i += 7 * self.model.nmocap
        assert i == self.nstate, (i, self.nstate)
        return out


def fixture_bodies(task: str, goals: np.ndarray) -> tuple[str, ...]:
    """Bodies whose ``model.body_pos``/``body_quat`` the official reset writes, found by diffing the model."""
    env = official_env(task)
    base = mujoco.MjModel.from_xml_path(env.model_name)
    moved: set[int] = set()
    for rv in goals[:3]:
        env.set_task(make_task_data(task, rv))
        env.reset()
        diff = np.any(env.model.body_pos != base.body_pos, axis=1) | np.any(env.model.body_quat != base.body_quat, axis=1)
        moved |= set(np.flatnonzero(diff).tolist())
    return tuple(sorted(env.model.body(i).name for i in moved))


def _pair_filtered(m: mujoco.MjModel, b1: int, b2: int, filterparent: bool = True) -> bool:
    """MuJoCo's body-pair contact filter: same weld, or (filterparent) parent-child welds, neither the world."""
    w1, w2 = m.body_weldid[b1], m.body_weldid[b2]
    if w1 == w2:
        return True
    p1, p2 = m.body_weldid[m.body_parentid[w1]], m.body_weldid[m.body_parentid[w2]]
    return bool(filterparent and w1 != 0 and w2 != 0 and (w1 == p2 or w2 == p1))


def _spec(task: str, frames: tuple[str, ...], fixtures: tuple[str, ...]) -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_file(official_env(task).model_name)
    for name in fixtures:
        body = spec.body(name)
        if body.parent.name != "world" or body.first_joint() is not None:
            raise NotImplementedError(f"{task}: fixture body '{name}' is not a jointless child of the world")
        body.mocap = True
    axes = (mujoco.mjtSensor.mjSENS_FRAMEXAXIS, mujoco.mjtSensor.mjSENS_FRAMEYAXIS, mujoco.mjtSensor.mjSENS_FRAMEZAXIS)
    for key in frames:
        kind, name = key.split(":", 1)
        for stype in (mujoco.mjtSensor.mjSENS_FRAMEPOS, mujoco.mjtSensor.mjSENS_FRAMEQUAT, *axes):
            spec.add_sensor(type=stype, objtype=_OBJTYPE[kind], objname=name)
    return spec


@functools.lru_cache(maxsize=None)
def task_model(task: str, frames: tuple[str, ...], fixtures: tuple[str, ...]) -> TaskModel:
    """Compile the official XML with fixture mocaps and frame sensors (see module docstring).

    A mocap fixture is no longer welded to the world, which changes MuJoCo's contact filtering:
    official skips fixture-vs-world pairs (same weld) but *keeps* fixture-vs-moving-child pairs
    (parent filtering never applies to the world); as a mocap body the fixture would flip both
    (door, window frames lose their stops). So when there are fixtures, parent filtering is
    switched off and every pair the official model filters becomes an explicit body exclude:
    the colliding pairs are exactly official's.
    """
    env = official_env(task)
    spec = _spec(task, frames, fixtures)
    if fixtures:
        official, port = env.model, spec.compile()
        spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_FILTERPARENT
        for i, body in enumerate(spec.bodies):  # excludes refer to bodies by name
            if not body.name:
                body.name = f"_body{i}"
        with_geoms = [b for b in range(port.nbody) if port.body_geomnum[b] > 0]
        for b1, b2 in itertools.combinations(with_geoms, 2):
            if _pair_filtered(official, b1, b2) and not _pair_filtered(port, b1, b2, filterparent=False):
                spec.add_exclude(bodyname1=spec.bodies[b1].name, bodyname2=spec.bodies[b2].name)
    model = spec.compile()
    model.eq_data[:] = env.model.eq_data  # official reset_mocap_welds() write
    return TaskModel(
        task=task,
        model=model,
        frames=frames,
        fixtures=fixtures,
        nstate=mujoco.mj_stateSize(model, STATE_SPEC) + 7 * model.nmocap,
        nphys=mujoco.mj_stateSize(model, STATE_SPEC),
        sawyer_mocap=int(model.body_mocapid[model.body(SAWYER_MOCAP).id]),
    )


def official_state_to_port(tm: TaskModel, env, data: mujoco.MjData | None = None) -> np.ndarray:
    """The official env's current physics state in the port's layout (FULLPHYSICS + mocap, float64)."""
    m = tm.model
    d = data if data is not None else mujoco.MjData(m)
    d.time = env.data.time
    d.qpos[:] = env.data.qpos
    d.qvel[:] = env.data.qvel
    d.mocap_pos[tm.sawyer_mocap] = env.data.mocap_pos[0]
    d.mocap_quat[tm.sawyer_mocap] = env.data.mocap_quat[0]
    for name in tm.fixtures:
        i = m.body_mocapid[m.body(name).id]
        d.mocap_pos[i] = env.model.body(name).pos
        d.mocap_quat[i] = env.model.body(name).quat
    phys = np.zeros(tm.nphys)
    mujoco.mj_getState(m, d, phys, STATE_SPEC)
    return np.concatenate([phys, d.mocap_pos.ravel(), d.mocap_quat.ravel()])


def reset_table(task: str, tm: TaskModel, goals: np.ndarray, constants, tag: str,
                reward_version: str = "v2") -> dict[str, np.ndarray]:
    """Per goal: official post-reset state (port layout), first obs, and reward constants, read from the
    official env built with ``reward_version`` (the tag must name it: V1 tables hold more constants)."""

    def build():
        env = official_env(task, reward_version)
        states, obs, consts = [], [], []
        for rv in goals:
            env.set_task(make_task_data(task, rv))
            o, _ = env.reset()
            states.append(official_state_to_port(tm, env))
            obs.append(o)
            consts.append({k: np.asarray(v, np.float64) for k, v in constants(env).items()})
        space = env.sawyer_observation_space
        out = {"state": np.stack(states), "obs": np.stack(obs), "obs_low": space.low, "obs_high": space.high}
        for k in consts[0]:
            out[f"const/{k}"] = np.stack([c[k] for c in consts])
        return out

    digest = hashlib.sha1(np.ascontiguousarray(goals).tobytes()).hexdigest()[:12]
    return _cached(f"reset_{task}_{tag}_{digest}", build)
