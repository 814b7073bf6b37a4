"""The ``mujoco`` backend: official C MuJoCo, batched with ``mujoco.rollout`` on a persistent
thread pool, called from inside jitted code through ``jax.pure_callback``.

Exactness. MuJoCo's state is float64 and JAX runs in float32, so the physics state travels through
JAX as its float64 bytes viewed as ``uint32`` pairs (lossless; no global x64 switch). The control
law runs on the host in the official arithmetic. One rollout of ``frame_skip`` steps gives the next
state; a second, one-step rollout from that state on a copy of the model with contacts and
constraints switched off records the frame sensors, which MuJoCo computes in the position stage
before integrating: the kinematics of the new state that the official ``step`` reads its
observation from after ``mj_forward``. The second call costs a few percent of the first (measured
in docs/benchmarks.md), far less than a sixth full step or a per-env Python loop.

Known difference from official: ``mujoco.rollout`` does not return ``qacc_warmstart``, so each
control step starts the Newton solver cold where official warm-starts it from the previous step.
With Meta-World's tolerance of 1e-10 the two agree to solver tolerance (measured in
``tests/test_replay.py``).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct
from mujoco import rollout as mj_rollout

from envs.assets import FRAME_WIDTH, TaskModel
from envs.backends.base import PhysicsBackend
from envs.control import ACTION_SCALE, ACTION_SIZE, FRAME_SKIP, MOCAP_QUAT
from envs.types import Frame, Kinematics

# Mocap poses travel as (constant) controls: FULLPHYSICS, which rollout returns, excludes them.
CONTROL_SPEC = int(mujoco.mjtState.mjSTATE_CTRL.value | mujoco.mjtState.mjSTATE_MOCAP_POS.value | mujoco.mjtState.mjSTATE_MOCAP_QUAT.value)


@struct.dataclass
class MujocoData:
    state: jax.Array  # uint32 [2 * nstate]: float64 FULLPHYSICS state, bit-cast


def to_bits(x: np.ndarray) -> np.ndarray:
    """float64 [..., n] -> uint32 [..., 2n] (lossless)."""
    return np.ascontiguousarray(x, np.float64).view(np.uint32)


def from_bits(x: np.ndarray) -> np.ndarray:
    """uint32 [..., 2n] -> float64 [..., n]."""
    return np.ascontiguousarray(x, np.uint32).view(np.float64)


class HostWorkers:
    """The host threads that step task groups: the calling thread and ``nthread - 1`` helpers take
    work items (a slice of one group's envs) from one shared counter, each with its own calling-thread
    ``mujoco.rollout`` and its own MjData per model. ``mujoco.rollout`` releases the GIL, so the
    threads run the physics in parallel, and a step waits once for all groups instead of at a thread
    barrier per task group."""

    def __init__(self, nthread: int | None = None):
        self.nthread = max(1, nthread if nthread is not None else default_threads())
        self._executor = None
        self._rollouts = None
        self._datas: dict = {}  # backend -> [MjData per worker]
        self._lock = threading.Lock()  # devices of a mesh call in concurrently; rollouts and MjData are shared

    def _start(self):
        if self._rollouts is None:
            self._rollouts = [mj_rollout.Rollout(nthread=0) for _ in range(self.nthread)]
            if self.nthread > 1:
                self._executor = ThreadPoolExecutor(self.nthread - 1, thread_name_prefix="toppo-mujoco")

    def _data(self, backend, worker: int):
        if backend not in self._datas:
            self._datas[backend] = [mujoco.MjData(backend.tm.model) for _ in range(self.nthread)]
        return self._datas[backend][worker : worker + 1]

    def run(self, backends, states, actions) -> list[tuple[np.ndarray, ...]]:
        """Host step of every group (backend, uint32 state bits, float32 actions) -> its outputs."""
        with self._lock:
            self._start()
            jobs = [b.prepare(s, a) for b, s, a in zip(backends, states, actions)]
            total = sum(len(j.state) for j in jobs)
            # Slices small enough to balance the threads (~16 per thread), large enough to keep the
            # per-call overhead low.
            size = max(1, total // (16 * self.nthread))
            items = [(b, j, lo, min(lo + size, len(j.state))) for b, j in zip(backends, jobs) for lo in range(0, len(j.state), size)]
            for b in backends:
                self._data(b, 0)  # every worker's MjData exists before the threads read the dict
            counter = itertools.count()

            def drain(worker: int):
                while (k := next(counter)) < len(items):  # next() on a count is atomic under the GIL
                    b, j, lo, hi = items[k]
                    b.physics(self._rollouts[worker], self._data(b, worker), j, lo, hi)

            helpers = [self._executor.submit(drain, w) for w in range(1, self.nthread)]
            try:
                drain(0)
            finally:
                errors = [f.exception() for f in helpers]  # waits for every helper; the calling thread's error wins
            for err in errors:
                if err is not None:
                    raise err
            return [b.collect(j) for b, j in zip(backends, jobs)]


def default_threads() -> int:
    return int(os.environ.get("TOPPO_MUJOCO_THREADS", os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True)
class _Job:
    """One group's host step in flight: inputs in MuJoCo's layout and the outputs the workers fill."""

    lead: tuple
    state: np.ndarray  # float64 [n, nstate], mocap already moved
    physics: np.ndarray  # float64 [n, nphys], C-contiguous
    control: np.ndarray  # float64 [n, FRAME_SKIP, ncontrol]
    control1: np.ndarray  # float64 [n, 1, ncontrol]
    out_state: np.ndarray  # float64 [n, FRAME_SKIP, nphys]
    sens: np.ndarray  # float64 [n, 1, nsensordata]


class MujocoBackend(PhysicsBackend):
    name = "mujoco"

    def __init__(self, tm: TaskModel, mocap_low, mocap_high, nthread: int | None = None):
        self.tm = tm
        self.mocap_low = np.asarray(mocap_low, np.float64)
        self.mocap_high = np.asarray(mocap_high, np.float64)
        self.workers = HostWorkers(nthread)  # step_groups of a MultiTaskEnv uses its first task's for all groups
        self._zeros = None
        sl = tm.state_slices()
        k = tm.sawyer_mocap
        self._mpos = slice(sl["mocap_pos"].start + 3 * k, sl["mocap_pos"].start + 3 * k + 3)
        self._mquat = slice(sl["mocap_quat"].start + 4 * k, sl["mocap_quat"].start + 4 * k + 4)
        self._qpos, self._qvel = sl["qpos"], sl["qvel"]
        self.nsensordata = tm.model.nsensordata
        assert self.nsensordata == FRAME_WIDTH * len(tm.frames)
        # mj_forward's kinematics of a state: position-stage sensors of one step of a model with
        # contacts and constraints switched off (they do not affect positions).
        self._kin_model = copy.copy(tm.model)
        self._kin_model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT.value | mujoco.mjtDisableBit.mjDSBL_CONSTRAINT.value)

    # ---- host side -------------------------------------------------------------------------
    def host_step(self, state_bits: np.ndarray, action: np.ndarray):
        """Batched official step on the host: (uint32 [..., 2n], float32 [..., 4]) -> next state, sensors, qpos, qvel."""
        return self.workers.run([self], [state_bits], [action])[0]

    def prepare(self, state_bits: np.ndarray, action: np.ndarray) -> _Job:
        """The control law, in the official (float32 action) arithmetic: SawyerXYZEnv.set_xyz_action."""
        lead = state_bits.shape[:-1]
        state = from_bits(state_bits.reshape(-1, state_bits.shape[-1])).copy()
        act = np.asarray(action, np.float32).reshape(-1, ACTION_SIZE)
        delta = np.clip(act[:, :3], -1, 1) * np.float32(ACTION_SCALE)  # float32 action x scale, as official
        state[:, self._mpos] = np.clip(state[:, self._mpos] + delta, self.mocap_low, self.mocap_high)
        state[:, self._mquat] = MOCAP_QUAT
        ctrl = np.stack([act[:, 3], -act[:, 3]], axis=-1).astype(np.float64)
        control = np.concatenate([ctrl, state[:, self.tm.nphys :]], axis=-1)[:, None, :]
        n = len(state)
        return _Job(
            lead=lead, state=state, physics=np.ascontiguousarray(state[:, : self.tm.nphys]),
            control=np.ascontiguousarray(np.repeat(control, FRAME_SKIP, axis=1)), control1=control,
            out_state=np.empty((n, FRAME_SKIP, self.tm.nphys)), sens=np.empty((n, 1, self.nsensordata)),
        )

    def physics(self, rollout, datas, job: _Job, lo: int, hi: int) -> None:
        """Envs lo:hi of a job: ``frame_skip`` MuJoCo steps, then the kinematics of the new state.

        ``mujoco.rollout`` with skip_checks: every array is C-contiguous float64 of its exact shape
        (no singleton expansion; slices along the env axis are views the rollout writes into), one
        model per env; saves ~60 us of Python checks per call."""
        n = hi - lo
        rollout.rollout(
            [self.tm.model] * n, datas, job.physics[lo:hi], job.control[lo:hi], control_spec=CONTROL_SPEC,
            nstep=FRAME_SKIP, initial_warmstart=self._cold_start(n), state=job.out_state[lo:hi], skip_checks=True,
        )
        rollout.rollout(
            [self._kin_model] * n, datas, np.ascontiguousarray(job.out_state[lo:hi, -1]), job.control1[lo:hi],
            control_spec=CONTROL_SPEC, nstep=1, sensordata=job.sens[lo:hi], skip_checks=True,
        )

    def collect(self, job: _Job):
        """A finished job -> (uint32 next state bits, float32 sensors, qpos, qvel) with the input's leading axes."""
        nxt = job.state
        nxt[:, : self.tm.nphys] = job.out_state[:, -1]
        return (
            to_bits(nxt).reshape(*job.lead, -1),
            job.sens[:, 0].astype(np.float32).reshape(*job.lead, -1),
            nxt[:, self._qpos].astype(np.float32).reshape(*job.lead, -1),
            nxt[:, self._qvel].astype(np.float32).reshape(*job.lead, -1),
        )

    def _cold_start(self, n: int) -> np.ndarray:
        # Explicit zeros: without them a thread's MjData would warm-start from whichever env it ran last.
        zeros = self._zeros
        if zeros is None or len(zeros) < n:
            zeros = self._zeros = np.zeros((n, self.tm.model.nv))
        return zeros[:n]

    # ---- table / host conversions -----------------------------------------------------------
    def init_table(self, state64: np.ndarray) -> MujocoData:
        """float64 [n, nstate] port-layout states (the reset table) -> MujocoData with leading axis n."""
        return MujocoData(state=jnp.asarray(to_bits(state64)))

    def set_physics(self, data: MujocoData, state64: np.ndarray) -> MujocoData:
        """Overwrite a batch's physics with port-layout float64 states (state replay)."""
        return self.init_table(state64)

    def physics_state(self, data: MujocoData) -> np.ndarray:
        """A batch's physics as port-layout float64 states [B, nstate] (host side)."""
        return from_bits(np.asarray(data.state))

    # ---- JAX side --------------------------------------------------------------------------
    def _result_shapes(self, data: MujocoData) -> tuple[jax.ShapeDtypeStruct, ...]:
        m = self.tm.model
        lead = data.state.shape[:-1]
        return (
            jax.ShapeDtypeStruct(data.state.shape, jnp.uint32),
            jax.ShapeDtypeStruct((*lead, self.nsensordata), jnp.float32),
            jax.ShapeDtypeStruct((*lead, m.nq), jnp.float32),
            jax.ShapeDtypeStruct((*lead, m.nv), jnp.float32),
        )

    def _wrap(self, state, sens, qpos, qvel) -> tuple[MujocoData, Kinematics]:
        frames = jax.vmap(lambda s: unpack_frames(s, self.tm.frames))(sens)
        return MujocoData(state=state), Kinematics(frames=frames, qpos=qpos, qvel=qvel)

    def step(self, data: MujocoData, action: jax.Array) -> tuple[MujocoData, Kinematics]:
        """Batched control step: ``data`` and ``action`` [B, 4] carry a leading env axis."""
        return step_groups([self], [data], [action])[0]

    @classmethod
    def step_groups(cls, backends, datas, actions) -> list[tuple[MujocoData, Kinematics]]:
        """Every task group's control step in ONE host callback (the module-level ``step_groups``)."""
        return step_groups(backends, datas, actions)


def step_groups(backends, datas, actions, workers: HostWorkers | None = None) -> list[tuple[MujocoData, Kinematics]]:
    """The control step of several task groups (one backend, data and action batch each) in ONE host
    callback: XLA stops once per env step, not once per task, and ``workers`` (default: the first
    backend's) step the groups' envs in parallel."""
    workers = workers or backends[0].workers

    def host(*args):
        results = workers.run(backends, args[0::2], args[1::2])
        return tuple(x for r in results for x in r)

    shapes = tuple(s for b, d in zip(backends, datas) for s in b._result_shapes(d))
    operands = [x for d, a in zip(datas, actions) for x in (d.state, a.astype(jnp.float32))]
    flat = jax.pure_callback(host, shapes, *operands, vmap_method="broadcast_all")
    return [b._wrap(*flat[4 * i : 4 * i + 4]) for i, b in enumerate(backends)]


def unpack_frames(sens: jax.Array, keys: tuple[str, ...]) -> dict[str, Frame]:
    """Sensor vector (pos, quat, xaxis, yaxis, zaxis per frame) -> {key: Frame}."""
    out = {}
    for i, key in enumerate(keys):
        row = sens[i * FRAME_WIDTH : (i + 1) * FRAME_WIDTH]
        # MuJoCo's frame axes are the columns of xmat.
        mat = jnp.stack([row[7:10], row[10:13], row[13:16]], axis=-1)
        out[key] = Frame(pos=row[0:3], quat=row[3:7], mat=mat)
    return out
