"""The ``warp`` backend: MJX with MuJoCo Warp (``impl='warp'``), the accelerator path.

Runs on NVIDIA GPUs and, slowly, on Warp's CPU device (how it is tested on CPU-only machines).

Per-env state. A Warp ``Data`` keeps its contact and constraint buffers *shared by all worlds* of a
batch (``naconmax`` contacts in total, ``njmax`` rows per world), so it cannot live in a vmapped env
state that is reset env by env. The env state is therefore the small ``WarpData`` below (what
carries over between control steps: positions, velocities, mocap poses and the solver's warm
start); each control step writes it into a ``Data`` template sized for the batch, runs
``frame_skip`` physics steps and one ``forward`` (the official ``mj_forward`` after
``do_simulation``), and reads the frame sensors back. Fixtures that official resets move are mocap
bodies of the task model (``envs/assets.py``), so no model field varies per env.

Model edits (listed in docs/port.md): MuJoCo Warp refuses geom pairs with a non-zero margin while
MULTICCD is on. Where a task model hits that, the margins of the offending geoms (the four
gripper claw/pad boxes, 0.001 in the official XML) are set to 0, the one edit that keeps MULTICCD's
multi-point mesh contacts. Everything else (Newton solver, 50 iterations, elliptic cone, timestep)
is official. By default a task with a collision diet runs on its dieted model (``DEFAULT_DIET``
below: only the table's geom pairs collide, the hand mesh and other large meshes are fitted boxes),
~1.1-1.3x faster on CPU with expert success unchanged; ``diet="off"`` is the official model, and the
edits are listed in ``backend.edits``.

Buffer sizes. ``naconmax`` (per env, times the batch) and ``njmax`` (per env) come from
``WARP_SIZES``: maxima measured along expert episodes of every task on this backend, with
headroom. An overflow is never silent: the step returns a flag and the env raises
``PhysicsOverflowError`` on the host naming the task and the measured counts.
"""

from __future__ import annotations

import copy
import functools
import logging
import warnings

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from envs.assets import TaskModel
from envs.backends.mjx_common import MjxBackend, MjxData, zeros_in_program
from envs.backends.mujoco_backend import unpack_frames
from envs.control import FRAME_SKIP
from envs.types import Kinematics

log = logging.getLogger("envs")

# (contacts per env, constraint rows per env) = 1.5 x the maxima of official MuJoCo's ncon / nefc
# (+ slack, rounded up to 8) over five episodes per task (expert on goals 0/17/33, random actions,
# expert with random bursts), measured 2026-11-25 with metaworld 3.0.0 / mujoco 3.16.0. The batch's
# contact buffer is naconmax = batch x contacts per env; overflow raises PhysicsOverflowError.
WARP_SIZES = {
    "assembly": (56, 192),  # measured 30 / 118
    "basketball": (32, 120),  # measured 17 / 70
    "bin-picking": (40, 144),  # measured 20 / 87
    "box-close": (80, 304),  # measured 48 / 195
    "button-press": (104, 328),  # measured 62 / 213
    "button-press-topdown": (72, 240),  # measured 41 / 153
    "button-press-topdown-wall": (80, 288),  # measured 49 / 185
    "button-press-wall": (72, 272),  # measured 43 / 175
    "coffee-button": (40, 144),  # measured 24 / 90
    "coffee-pull": (40, 152),  # measured 22 / 91
    "coffee-push": (40, 144),  # measured 21 / 87
    "dial-turn": (32, 120),  # measured 16 / 73
    "disassemble": (40, 136),  # measured 23 / 83
    "door-close": (32, 128),  # measured 17 / 76
    "door-lock": (40, 160),  # measured 24 / 99
    "door-open": (40, 152),  # measured 23 / 95
    "door-unlock": (40, 144),  # measured 21 / 87
    "drawer-close": (24, 88),  # measured 12 / 50
    "drawer-open": (16, 48),  # measured 4 / 26
    "faucet-close": (32, 120),  # measured 16 / 72
    "faucet-open": (16, 72),  # measured 8 / 40
    "hammer": (40, 136),  # measured 24 / 84
    "hand-insert": (80, 312),  # measured 48 / 200
    "handle-press": (32, 120),  # measured 16 / 74
    "handle-press-side": (48, 176),  # measured 26 / 111
    "handle-pull": (16, 56),  # measured 5 / 29
    "handle-pull-side": (40, 152),  # measured 22 / 95
    "lever-pull": (48, 176),  # measured 26 / 110
    "peg-insert-side": (96, 376),  # measured 59 / 241
    "peg-unplug-side": (40, 152),  # measured 24 / 93
    "pick-out-of-hole": (64, 240),  # measured 36 / 151
    "pick-place": (40, 168),  # measured 24 / 104
    "pick-place-wall": (40, 160),  # measured 22 / 97
    "plate-slide": (32, 80),  # measured 14 / 43
    "plate-slide-back": (32, 88),  # measured 16 / 53
    "plate-slide-back-side": (40, 128),  # measured 21 / 79
    "plate-slide-side": (48, 152),  # measured 26 / 92
    "push": (40, 152),  # measured 21 / 92
    "push-back": (24, 104),  # measured 13 / 59
    "push-wall": (32, 128),  # measured 17 / 76
    "reach": (16, 48),  # measured 4 / 25
    "reach-wall": (16, 48),  # measured 4 / 25
    "shelf-place": (48, 176),  # measured 27 / 112
    "soccer": (40, 160),  # measured 24 / 98
    "stick-pull": (72, 272),  # measured 42 / 171
    "stick-push": (48, 184),  # measured 27 / 114
    "sweep": (32, 128),  # measured 18 / 79
    "sweep-into": (72, 280),  # measured 42 / 177
    "window-close": (16, 64),  # measured 8 / 34
    "window-open": (32, 96),  # measured 14 / 56
}
DEFAULT_SIZES = (104, 376)  # the largest rows above
# On the "full" diet the hand is a box: box-box contacts carry more points than MULTICCD's mesh ones,
# so more constraint rows. Measured 2026-12-03 on MT10 (expert + random on goals 0/17/33, and the
# 20-episode parity run): max rows per env window-close 78 (official 34), reach 43 (25), door-open
# 84 (95), button-press-topdown 150, peg-insert-side 186; contacts per env stayed under WARP_SIZES.
# njmax on "meshes" and "full" (both make the hand a box) = this factor x WARP_SIZES' (window-close 128 for 78 measured).
DIET_NJMAX_FACTOR = 2


class PhysicsOverflowError(RuntimeError):
    """A Warp contact or constraint buffer overflowed: results of that step are wrong."""


@struct.dataclass
class WarpData(MjxData):  # qpos, qvel, mocap_pos, mocap_quat, qacc_warmstart, then Warp's buffer counters:
    nacon: jax.Array  # [] int32: contacts of the whole batch at the last step (buffer: naconmax)
    nefc: jax.Array  # [] int32: constraint rows of this env at the last step (buffer: njmax)


def edit_model(model: mujoco.MjModel) -> tuple[mujoco.MjModel, tuple[str, ...]]:
    """The task model MuJoCo Warp accepts: zero the margins that MULTICCD refuses (listed edits)."""
    from mujoco import mjx

    model = copy.copy(model)
    edits = []
    try:
        with warnings.catch_warnings():  # a probe: WarpBackend records the model's warnings once, as notes
            warnings.simplefilter("ignore")
            mjx.put_model(model, impl="warp")
    except NotImplementedError as e:
        if "margin" not in str(e):
            raise
        ids = np.nonzero(model.geom_margin > 0)[0]
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, int(i)) or str(i) for i in ids]
        model.geom_margin[ids] = 0.0
        edits.append(f"geom_margin 0.001 -> 0 on {', '.join(names)} (MuJoCo Warp: non-zero margin with MULTICCD)")
    return model, tuple(edits)


# Collision diet (``envs/diet.py``; issue 19 item 4), ``WarpBackend(diet=...)``:
#   "off"   the official model: every geom pair the model allows may collide;
#   "pairs" only the task's diet pairs (``envs/diet.json``) collide (contype/conaffinity bits), every
#           geom and margin official (MuJoCo Warp collides cylinders and meshes itself);
#   "full"  ``diet.diet_model``: the pairs, the table's fitted boxes for cylinders and large meshes
#           (the hand's 6,693-vertex mesh) and its zeroed margins on mesh pairs; not the ``jax``
#           backend's margin inflation (``envs/backends/margins.py``: MuJoCo Warp honours margins);
#   "meshes" the pairs and only the table's boxes for large meshes (the hand): cylinders and margins
#           stay official (Warp collides cylinders; "full" turned stick-pull's thermos cylinders into
#           boxes and the expert then failed every episode: 0.00 vs official 1.00).
# Default "meshes": the speed of "full" comes from the hand mesh becoming a box (measured 2026-12-03,
# Warp's CPU device, 2-core AMD EPYC shared, load 2.4-3.8; batch 40, random actions, interleaved
# medians, "full" vs "off": env steps/s x1.10 reach, x1.09 push, x1.29 drawer-open, x1.07
# peg-insert-side, x1.26 window-open; "pairs" alone x1.00-1.09, within noise), and "full"'s
# cylinder boxes broke stick-pull (0.00 vs 1.00; "meshes" 0.95, 20 episodes). MT10 expert parity on
# "full": equal to official on every task (docs/port.md). A task
# without a diet runs on the official model; asking for a diet variant by name on one raises NoDietError.
WARP_DIETS = ("off", "pairs", "meshes", "full")
DEFAULT_DIET = "meshes"


def diet_model(model: mujoco.MjModel, task: str, variant: str | bool | None = None
               ) -> tuple[mujoco.MjModel, str, tuple[str, ...]]:
    """The model the warp backend runs for ``variant`` (None: ``DEFAULT_DIET``, True: "pairs", False:
    "off"): returns the model, the variant applied ("off" where the task has no diet and the default
    was asked for) and the edits in words."""
    from envs import diet

    explicit = variant is not None
    variant = {None: DEFAULT_DIET, True: "pairs", False: "off"}.get(variant, variant)
    if variant not in WARP_DIETS:
        raise ValueError(f"unknown warp diet '{variant}'; valid: {', '.join(WARP_DIETS)}")
    if variant == "off":
        return model, "off", ()
    try:
        entry = diet.entry(task)
    except diet.NoDietError:
        if explicit:
            raise
        return model, "off", ()
    if variant == "pairs":
        entry = {**entry, "replace": {}, "zero_margin": []}
    elif variant == "meshes":
        entry = {**entry, "replace": {k: v for k, v in entry["replace"].items() if v["was"].startswith("mesh")},
                 "zero_margin": []}
    model, edits = diet.diet_model(model, entry)
    return model, variant, tuple(f"diet {variant}: {e}" for e in edits)


class WarpBackend(MjxBackend):
    """The ``warp`` physics backend; ``step_groups`` is the default one (each group's own Warp step);
    host conversions and control law from ``MjxBackend``."""

    name = "warp"
    data_cls = WarpData

    def __init__(self, tm: TaskModel, mocap_low, mocap_high, *, nacon_per_env: int | None = None,
                 njmax: int | None = None, diet: str | bool | None = None):
        import warp as wp
        from mujoco import mjx

        wp.config.quiet = True
        self._setup(tm, mocap_low, mocap_high)
        dieted, self.diet, diet_edits = diet_model(tm.model, tm.task, diet)
        self.model, edits = edit_model(dieted)
        self.edits = diet_edits + edits
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mx = mjx.put_model(self.model, impl="warp")
        # e.g. "MULTICCD ... CCD pairs without multicontact support: [('CAPSULE', 'MESH')]": kept as a note.
        self.notes = tuple(str(w.message) for w in caught)
        for note in self.notes:
            log.info("warp model of %s: %s", tm.task, note)
        # Overflow is counted in WarpData.nacon/nefc and raised on the host, not printed per step.
        self.mx = mx.tree_replace({"opt._impl.warn_overflow": 0})
        sizes = WARP_SIZES.get(tm.task, DEFAULT_SIZES)
        if self.diet in ("meshes", "full"):  # the hand as a box makes more box-box contact rows
            sizes = (sizes[0], DIET_NJMAX_FACTOR * sizes[1])
        self.nacon_per_env = int(nacon_per_env or sizes[0])
        self.njmax = int(njmax or sizes[1])

    def extra_fields(self, n: int) -> dict:
        return {"nacon": jnp.zeros((n,), jnp.int32), "nefc": jnp.zeros((n,), jnp.int32)}

    def _overflow(self, nacon, nefc, naconmax):
        raise PhysicsOverflowError(
            f"MuJoCo Warp buffer overflow on task {self.task}: {int(nacon)} contacts for naconmax={int(naconmax)} "
            f"({self.nacon_per_env} per env), {int(nefc)} constraint rows for njmax={self.njmax}; "
            "raise WARP_SIZES in envs/backends/warp_backend.py (or nacon_per_env=/njmax=)"
        )

    # ---- the step ---------------------------------------------------------------------------
    @functools.lru_cache(maxsize=8)  # noqa: B019 (one backend per task; a handful of batch sizes)
    def _template_host(self, batch: int):
        from mujoco import mjx

        with jax.ensure_compile_time_eval():  # called while tracing the step
            d = mjx.make_data(self.model, impl="warp", naconmax=batch * self.nacon_per_env, njmax=self.njmax)
            return jax.tree.map(np.asarray, d)

    def _template(self, batch: int):
        # Zero buffers (contacts, constraint rows) are built in the program, not embedded as constants.
        return zeros_in_program(self._template_host(batch))

    def step(self, data: WarpData, action: jax.Array) -> tuple[WarpData, Kinematics]:
        """Batched control step: ``data`` and ``action`` [B, 4] carry a leading env axis."""
        from mujoco import mjx

        template = self._template(action.shape[0])
        mx = self.mx

        def one(row: WarpData, a: jax.Array):
            d = self.prepare(template, row, a)
            for _ in range(FRAME_SKIP):
                d = mjx.step(mx, d)
            d = mjx.forward(mx, d)
            nxt = WarpData(qpos=d.qpos, qvel=d.qvel, mocap_pos=d.mocap_pos, mocap_quat=d.mocap_quat,
                           qacc_warmstart=d.qacc_warmstart, nacon=d._impl.nacon[0].astype(jnp.int32),
                           nefc=d._impl.nefc.reshape(()).astype(jnp.int32))
            return nxt, d.sensordata

        nxt, sens = jax.vmap(one)(data, action.astype(jnp.float32))
        naconmax = action.shape[0] * self.nacon_per_env
        overflow = (jnp.max(nxt.nacon) > naconmax) | (jnp.max(nxt.nefc) > self.njmax)
        jax.lax.cond(overflow, lambda: jax.debug.callback(self._overflow, jnp.max(nxt.nacon), jnp.max(nxt.nefc), naconmax),
                     lambda: None)
        frames = jax.vmap(lambda s: unpack_frames(s, self.tm.frames))(sens)
        return nxt, Kinematics(frames=frames, qpos=nxt.qpos, qvel=nxt.qvel)
